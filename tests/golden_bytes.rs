//! Golden bytes: the exact encoding of snapshot format v1, replay format v2 and every
//! protocol message, pinned in `tests/fixtures/*.hex` (one named item per line, as
//! hex). A refactor that changes a byte fails here. Changing a format on purpose means
//! bumping its version constant and regenerating the fixture:
//!
//! ```sh
//! TICKSTEP_BLESS=1 cargo test --test golden_bytes
//! ```
//!
//! The fixtures pin behaviour; they were produced by this code, not derived by hand.
//! What they add beyond that is the reverse direction: every pinned item still decodes
//! to the value it was made from, so old bytes stay readable.

use bytemuck::{Pod, Zeroable};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tickstep_engine::{
    Checksum, Digest, Fp, Frame, PlayerId, Schema, SchemaHash, Simulation, TickInputs, Vec2,
    WorldError, checksum,
};
use tickstep_replay::{REPLAY_VERSION, Replay, ReplayHeader, ReplayWriter};
use tickstep_session::{
    ClientId, ClientMessage, Command, Echo, Entry, Hello, PROTOCOL_VERSION, Refusal, ResumeToken,
    RoomInfo, ServerMessage, SnapshotSource, TickCommand, Timing, VerifiedTicks, decode, encode,
};
use tickstep_snapshot::format::FORMAT_VERSION;
use tickstep_snapshot::split;

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Body {
    pos: Vec2,
    vel: Vec2,
}

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Health(u32, u32);

#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct World {
    seed: u64,
    steps: u64,
}

fn schema() -> std::sync::Arc<Schema> {
    Schema::builder::<World>("golden", 1)
        .component::<Body>("body")
        .component::<Health>("health")
        .build()
        .expect("schema")
}

/// A small frame touching every section: two component columns, a despawned entity
/// (free list), globals and a tick past 0.
fn frame() -> Frame<World> {
    let mut frame = Frame::new(schema(), 8, World { seed: 7, steps: 0 }).expect("frame");
    let world = frame.world_mut();
    let body = |x: i64| Body {
        pos: Vec2::new(Fp::from_int(x), Fp::from_int(-x)),
        vel: Vec2::new(Fp::ONE, Fp::ZERO),
    };
    world.spawn_with((body(1), Health(10, 0))).expect("spawn");
    let gone = world.spawn_with((body(2),)).expect("spawn");
    world.spawn_with((Health(3, 1),)).expect("spawn");
    world.despawn(gone).expect("despawn");
    let mut simulation = simulation();
    let mut inputs = TickInputs::new(2).expect("inputs");
    for tick in 1..=2 {
        inputs.reset(tick);
        inputs.set(PlayerId(0), tick as u16).expect("slot");
        simulation.step(&mut frame, &inputs).expect("step");
    }
    frame
}

fn simulation() -> Simulation<World, u16> {
    Simulation::new().with_system(|frame: &mut Frame<World>, inputs: &TickInputs<u16>| {
        let pushed: u64 = inputs.iter().map(|(_, &i)| u64::from(i)).sum();
        frame.globals_mut().steps += 1 + pushed;
        for (_, body) in frame.world_mut().query_mut::<&mut Body>()? {
            body.pos += body.vel;
        }
        Ok::<(), WorldError>(())
    })
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn hex(bytes: &[u8]) -> String {
    tickstep_engine::Hex(bytes).to_string()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex");
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// Compares `items` (name, bytes) with the fixture `name`, or rewrites it when
/// `TICKSTEP_BLESS` is set. Returns the fixture's bytes by name.
fn check(name: &str, items: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    let path = fixture(name);
    if std::env::var_os("TICKSTEP_BLESS").is_some() {
        let text: String = items
            .iter()
            .map(|(item, bytes)| format!("{item} {}\n", hex(bytes)))
            .collect();
        std::fs::create_dir_all(path.parent().expect("dir")).expect("fixture dir");
        std::fs::write(&path, text).expect("fixture written");
    }
    let text = std::fs::read_to_string(&path).expect("fixture present");
    let pinned: BTreeMap<String, Vec<u8>> = text
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(item, bytes)| (item.to_string(), unhex(bytes)))
        .collect();
    let changed: Vec<&str> = items
        .iter()
        .filter(|(item, bytes)| pinned.get(item) != Some(bytes))
        .map(|(item, _)| item.as_str())
        .collect();
    assert!(
        changed.is_empty() && pinned.len() == items.len(),
        "{name}: the encoding of {changed:?} changed (or items were added or removed). \
         If that is intended, bump the format's version and regenerate with \
         TICKSTEP_BLESS=1 cargo test --test golden_bytes"
    );
    pinned
}

#[test]
fn snapshot_format_v1_bytes_are_pinned() {
    assert_eq!(FORMAT_VERSION, 1, "a new version needs a new fixture");
    let frame = frame();
    let mut bytes = Vec::new();
    tickstep_snapshot::encode(&frame, &mut bytes);
    let pinned = check("snapshot-v1.hex", &[("frame".into(), bytes)]);
    let restored: Frame<World> =
        tickstep_snapshot::restore_new(&pinned["frame"], schema(), 8).expect("pinned restores");
    assert_eq!(checksum(&restored), checksum(&frame));
    assert_eq!(restored.globals(), frame.globals());
}

#[test]
fn replay_format_v2_bytes_are_pinned() {
    assert_eq!(REPLAY_VERSION, 2, "a new version needs a new fixture");
    let mut frame = frame();
    let header = ReplayHeader {
        schema_hash: schema().hash(),
        tick_rate: 60,
        players: 2,
        input_size: 2,
        checksum_every: 2,
        checkpoint_every: 4,
        config: b"{\"golden\":1}".to_vec(),
    };
    let mut writer = ReplayWriter::new(Vec::new(), &header, &frame).expect("writer");
    let mut playing = simulation();
    let mut inputs = TickInputs::<u16>::new(2).expect("inputs");
    let mut recorded = Vec::new();
    for tick in 3..=8 {
        inputs.reset(tick);
        inputs.set(PlayerId(1), (tick % 3) as u16).expect("slot");
        if tick % 4 == 0 {
            inputs.set_replaced(PlayerId(0), 9).expect("slot");
        }
        if tick == 5 {
            inputs.push_command(PlayerId(1), b"nova").expect("command");
            inputs.push_command(PlayerId(0), &[]).expect("command");
        }
        recorded.push(inputs.clone());
        playing.step(&mut frame, &inputs).expect("step");
        writer.record(&inputs, &frame).expect("record");
    }
    let bytes = writer.finish(8).expect("finish");
    let pinned = check("replay-v2.hex", &[("replay".into(), bytes)]);
    let replay = Replay::<u16>::parse(&pinned["replay"], &schema()).expect("pinned parses");
    assert_eq!(replay.last_tick(), 8);
    for tick_inputs in &recorded {
        let mut read = TickInputs::new(2).expect("inputs");
        replay
            .inputs
            .read(tick_inputs.tick(), &mut read)
            .expect("held");
        assert_eq!(&read, tick_inputs, "flags and commands read back");
    }
    let verified = tickstep_replay::verify(&replay, &schema(), &mut simulation(), |_| {})
        .expect("pinned verifies");
    assert_eq!(verified.final_checksum, checksum(&frame));
}

fn digest(n: u8) -> Digest {
    Digest([n; 32])
}

fn timing() -> Timing {
    Timing {
        room_us: Some(-250_000),
        echo: Some(Echo {
            client_us: 4_999_000,
            held_us: 1_500,
        }),
        slack_us: Some(-3_000),
        commands_taken: 2,
    }
}

fn client_messages() -> Vec<(&'static str, ClientMessage)> {
    let chunk = split(&[1, 2, 3, 4, 5], 4).next().expect("chunk");
    vec![
        (
            "hello",
            ClientMessage::Hello(Box::new(Hello {
                protocol: PROTOCOL_VERSION,
                app_version: "golden 1".into(),
                schema: digest(1) as SchemaHash,
                initial: digest(2) as Checksum,
                room: "main".into(),
                client_id: ClientId::from_seed(5),
                rejoin: true,
                local_snapshot: Some((90, digest(3))),
                sent_at: 1_234_567,
                resume: Some(ResumeToken([9; 16])),
                watch: false,
            })),
        ),
        (
            "hello_watch",
            ClientMessage::Hello(Box::new(Hello {
                protocol: PROTOCOL_VERSION,
                app_version: "golden 1".into(),
                schema: digest(1) as SchemaHash,
                initial: digest(2) as Checksum,
                room: "main".into(),
                client_id: ClientId::from_seed(6),
                rejoin: false,
                local_snapshot: None,
                sent_at: 7_654_321,
                resume: None,
                watch: true,
            })),
        ),
        (
            "update",
            ClientMessage::Update {
                sent_at: 5_000_000,
                commands: vec![Command {
                    seq: 3,
                    tick: 303,
                    bytes: b"nova".to_vec(),
                }],
                received: 300,
                stepped: 299,
                first_input: 302,
                inputs: vec![1, 0, 2, 0],
                checksums: vec![(270, digest(4)), (240, digest(5))],
            },
        ),
        (
            "upload_chunk",
            ClientMessage::UploadChunk { upload: 7, chunk },
        ),
        (
            "upload_unavailable",
            ClientMessage::UploadUnavailable { upload: 8 },
        ),
        (
            "resend_chunks",
            ClientMessage::ResendChunks {
                transfer: 9,
                chunks: vec![0, 3],
            },
        ),
        ("leave", ClientMessage::Leave),
    ]
}

fn server_messages() -> Vec<(&'static str, ServerMessage)> {
    let chunk = split(&[9, 8, 7], 2).nth(1).expect("chunk");
    vec![
        (
            "welcome",
            ServerMessage::Welcome {
                player: PlayerId(1),
                room: RoomInfo {
                    players: 2,
                    tick_rate: 60,
                    input_size: 2,
                    min_lead: 1,
                    checksum_every: 30,
                    end_tick: Some(1800),
                },
                entry: Entry::LocalSnapshot { tick: 90 },
                live: 120,
                timing: timing(),
                resume: ResumeToken([8; 16]),
            },
        ),
        ("refused", ServerMessage::Refused(Refusal::PlayerTtlExpired)),
        (
            "refused_version",
            ServerMessage::Refused(Refusal::VersionMismatch {
                client: 1,
                server: 2,
            }),
        ),
        ("start", ServerMessage::Start { timing: timing() }),
        (
            "verified",
            ServerMessage::Verified {
                live: 122,
                timing: timing(),
                ticks: VerifiedTicks {
                    first: 121,
                    presence: vec![0b11, 0b01],
                    replaced: vec![0b10, 0],
                    inputs: vec![1, 0, 2, 0, 3, 0, 0, 0],
                    commands: vec![TickCommand {
                        tick: 122,
                        player: PlayerId(0),
                        bytes: b"nova".to_vec(),
                    }],
                },
            },
        ),
        (
            "snapshot_chunk",
            ServerMessage::SnapshotChunk {
                transfer: 4,
                tick: 90,
                checksum: digest(6),
                source: SnapshotSource::Buddy,
                live: 130,
                chunk,
            },
        ),
        (
            "upload_request",
            ServerMessage::UploadRequest {
                upload: 5,
                tick: 60,
            },
        ),
        (
            "resend_upload",
            ServerMessage::ResendUpload {
                upload: 5,
                chunks: vec![2],
            },
        ),
        (
            "desync",
            ServerMessage::Desync {
                tick: 150,
                disagreeing: vec![PlayerId(0)],
            },
        ),
        (
            "heartbeat",
            ServerMessage::Heartbeat {
                live: 151,
                timing: timing(),
            },
        ),
        ("end", ServerMessage::End { tick: 1800 }),
        (
            "watching",
            ServerMessage::Watching {
                room: RoomInfo {
                    players: 2,
                    tick_rate: 60,
                    input_size: 2,
                    min_lead: 1,
                    checksum_every: 30,
                    end_tick: None,
                },
                entry: Entry::AwaitSnapshot,
                live: 300,
                timing: timing(),
            },
        ),
    ]
}

#[test]
fn every_protocol_message_has_pinned_bytes() {
    let name = format!("protocol-v{PROTOCOL_VERSION}.hex");
    let clients = client_messages();
    let servers = server_messages();
    let items: Vec<(String, Vec<u8>)> = clients
        .iter()
        .map(|(n, m)| (format!("client.{n}"), encode(m)))
        .chain(
            servers
                .iter()
                .map(|(n, m)| (format!("server.{n}"), encode(m))),
        )
        .collect();
    let pinned = check(&name, &items);
    for (n, message) in &clients {
        let bytes = &pinned[&format!("client.{n}")];
        assert_eq!(&decode::<ClientMessage>(bytes).expect("decodes"), message);
    }
    for (n, message) in &servers {
        let bytes = &pinned[&format!("server.{n}")];
        assert_eq!(&decode::<ServerMessage>(bytes).expect("decodes"), message);
    }
}
