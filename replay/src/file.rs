//! Replay files: writing a game as it is played and reading it back.
//!
//! A replay is a header record, the initial snapshot, then per tick its verified input
//! (or "same as the tick before"), a frame checksum every `checksum_every` ticks and a
//! checkpoint snapshot every `checkpoint_every` ticks, and an end record when the
//! recording finished normally. See [`crate::record`] for the framing.

use bytemuck::Pod;
use std::io::{self, Write};
use tickstep_engine::{
    Checksum, Digest, Frame, PlayerId, Schema, SchemaHash, Tick, TickInputs, checksum,
};
use tickstep_snapshot::SnapshotError;

use crate::record::{Next, Record, RecordKind, RecordReader, write_record};
use crate::{InputLog, InputLogError};

/// The first bytes of a replay's header payload.
pub const REPLAY_MAGIC: [u8; 8] = *b"TICKRPLY";
/// The replay format version this build writes and reads.
pub const REPLAY_VERSION: u32 = 2;

/// What a replay records besides the game: rates and the game's own configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayHeader {
    /// The schema the game ran with.
    pub schema_hash: SchemaHash,
    /// Ticks per second the game ran at.
    pub tick_rate: u32,
    /// Player slots.
    pub players: u32,
    /// Bytes of one player's input.
    pub input_size: u32,
    /// A checksum record every this many ticks (0: none).
    pub checksum_every: u32,
    /// A checkpoint snapshot every this many ticks (0: none).
    pub checkpoint_every: u32,
    /// The game's configuration, opaque to tickstep (the arena stores JSON).
    pub config: Vec<u8>,
}

const HEADER_FIXED_LEN: usize = 8 + 4 + 32 + 4 * 6;

impl ReplayHeader {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_FIXED_LEN + self.config.len());
        out.extend_from_slice(&REPLAY_MAGIC);
        out.extend_from_slice(&REPLAY_VERSION.to_le_bytes());
        out.extend_from_slice(self.schema_hash.as_bytes());
        for n in [
            self.tick_rate,
            self.players,
            self.input_size,
            self.checksum_every,
            self.checkpoint_every,
            self.config.len() as u32,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.config);
        out
    }

    fn decode(payload: &[u8]) -> Result<ReplayHeader, ReplayError> {
        if payload.len() < HEADER_FIXED_LEN || payload[..8] != REPLAY_MAGIC {
            return Err(ReplayError::NotAReplay);
        }
        let u32_at = |at: usize| {
            u32::from_le_bytes([
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            ])
        };
        let version = u32_at(8);
        if version != REPLAY_VERSION {
            return Err(ReplayError::UnsupportedVersion {
                found: version,
                supported: REPLAY_VERSION,
            });
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&payload[12..44]);
        let config_len = u32_at(64) as usize;
        if payload.len() != HEADER_FIXED_LEN + config_len {
            return Err(ReplayError::BadRecord {
                offset: 0,
                problem: "header length does not match its config length",
            });
        }
        Ok(ReplayHeader {
            schema_hash: Digest(hash),
            tick_rate: u32_at(44),
            players: u32_at(48),
            input_size: u32_at(52),
            checksum_every: u32_at(56),
            checkpoint_every: u32_at(60),
            config: payload[HEADER_FIXED_LEN..].to_vec(),
        })
    }
}

/// Why a replay could not be read. Truncation at the end is not an error (see
/// [`Replay::truncated_at`]); damage in the middle is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The file does not start with a replay header.
    #[error("not a tickstep replay (no TICKRPLY header record)")]
    NotAReplay,
    /// Written by a format version this build cannot read.
    #[error("replay format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// This build's.
        supported: u32,
    },
    /// Recorded by a build with a different schema.
    #[error("replay schema {found} does not match this game's schema {expected}")]
    SchemaMismatch {
        /// This build's schema hash.
        expected: SchemaHash,
        /// The replay's.
        found: SchemaHash,
    },
    /// The header's input size or player count does not fit this game's input type.
    #[error("replay records {found} bytes of input per player; this game's input is {expected}")]
    InputSizeMismatch {
        /// This game's input size.
        expected: usize,
        /// The replay's.
        found: u32,
    },
    /// A record in the middle of the file is damaged.
    #[error("replay record at byte {offset} is corrupt (its checksum or kind is wrong)")]
    CorruptRecord {
        /// Where it starts.
        offset: usize,
    },
    /// A record is intact but out of place or malformed.
    #[error("replay record at byte {offset} is invalid: {problem}")]
    BadRecord {
        /// Where it starts.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The file ends before its header and initial snapshot are complete.
    #[error("replay is cut off before its initial snapshot; nothing can be replayed")]
    TooShort,
    /// A snapshot inside the replay is invalid.
    #[error("replay snapshot at byte {offset}: {error}")]
    Snapshot {
        /// Where its record starts.
        offset: usize,
        /// Why it is invalid.
        error: SnapshotError,
    },
    /// The replay has no input for a tick that was asked for.
    #[error(transparent)]
    Input(#[from] InputLogError),
    /// A step failed (input out of order: a bug).
    #[error("simulation refused a step: {0}")]
    Step(String),
}

/// A checkpoint snapshot, verified when the replay was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint<'a> {
    /// Its tick.
    pub tick: Tick,
    /// The frame checksum it carries.
    pub checksum: Checksum,
    /// The snapshot bytes.
    pub bytes: &'a [u8],
}

/// A replay read into memory: borrowed snapshots, the whole input stream, checksums.
#[derive(Debug)]
pub struct Replay<'a, I> {
    /// The header.
    pub header: ReplayHeader,
    /// The initial snapshot's bytes and tick.
    pub initial: (Tick, &'a [u8]),
    /// Every recorded tick's input.
    pub inputs: InputLog<I>,
    /// Recorded frame checksums by tick, in tick order.
    pub checksums: Vec<(Tick, Checksum)>,
    /// Checkpoint snapshots by tick, in tick order.
    pub checkpoints: Vec<Checkpoint<'a>>,
    /// The end record's tick, if the recording finished normally.
    pub ended_at: Option<Tick>,
    /// Where the readable part stops when the recording did not finish (a crash, or a
    /// recording still in progress): the offset of the first incomplete record, or the
    /// file's length if it ends cleanly between records without an end record.
    pub truncated_at: Option<usize>,
}

fn bad(offset: usize, problem: &'static str) -> ReplayError {
    ReplayError::BadRecord { offset, problem }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

impl<'a, I: Pod + PartialEq> Replay<'a, I> {
    /// The last tick with recorded input (the initial snapshot's tick if none).
    pub fn last_tick(&self) -> Tick {
        self.inputs.newest().unwrap_or(self.initial.0)
    }

    /// Reads `bytes` as a replay of a game with `schema` and input type `I`, checking
    /// every record. A file cut short reads up to its last complete record.
    pub fn parse(bytes: &'a [u8], schema: &Schema) -> Result<Replay<'a, I>, ReplayError> {
        let mut reader = RecordReader::new(bytes);
        let header = match reader.next_record() {
            Next::Record(Record {
                kind: RecordKind::Header,
                payload,
                ..
            }) => ReplayHeader::decode(payload)?,
            Next::Record(_) | Next::Corrupt(_) => return Err(ReplayError::NotAReplay),
            Next::End | Next::Truncated(_) => return Err(ReplayError::TooShort),
        };
        if header.schema_hash != schema.hash() {
            return Err(ReplayError::SchemaMismatch {
                expected: schema.hash(),
                found: header.schema_hash,
            });
        }
        if header.input_size as usize != size_of::<I>() {
            return Err(ReplayError::InputSizeMismatch {
                expected: size_of::<I>(),
                found: header.input_size,
            });
        }
        if header.players as usize > tickstep_engine::MAX_PLAYERS {
            return Err(bad(0, "more players than tickstep supports"));
        }
        let initial = match reader.next_record() {
            Next::Record(Record {
                kind: RecordKind::InitialSnapshot,
                payload,
                offset,
            }) => (verify_snapshot(payload, schema, offset)?.0, payload),
            Next::Record(record) => {
                return Err(bad(record.offset, "expected the initial snapshot"));
            }
            Next::Corrupt(offset) => return Err(ReplayError::CorruptRecord { offset }),
            Next::End | Next::Truncated(_) => return Err(ReplayError::TooShort),
        };
        let players = header.players as usize;
        let mut replay = Replay {
            header,
            initial,
            inputs: InputLog::new(players, u64::MAX),
            checksums: Vec::new(),
            checkpoints: Vec::new(),
            ended_at: None,
            truncated_at: None,
        };
        let mut scratch = TickInputs::<I>::new(players).map_err(|_| bad(0, "player count"))?;
        loop {
            let record = match reader.next_record() {
                Next::Record(record) => record,
                // No end record: the recording stopped (cleanly cut) before finishing.
                Next::End if replay.ended_at.is_none() => {
                    replay.truncated_at = Some(bytes.len());
                    break;
                }
                Next::End => break,
                Next::Truncated(offset) => {
                    replay.truncated_at = Some(offset);
                    break;
                }
                Next::Corrupt(offset) => return Err(ReplayError::CorruptRecord { offset }),
            };
            if replay.ended_at.is_some() {
                return Err(bad(record.offset, "record after the end record"));
            }
            replay.take(record, schema, &mut scratch)?;
        }
        Ok(replay)
    }

    fn take(
        &mut self,
        record: Record<'a>,
        schema: &Schema,
        scratch: &mut TickInputs<I>,
    ) -> Result<(), ReplayError> {
        let offset = record.offset;
        let payload = record.payload;
        // Snapshot ticks are at most MAX_TICK and every record adds at most one tick.
        let next_tick = self.last_tick().saturating_add(1);
        match record.kind {
            RecordKind::Input => {
                decode_input(payload, next_tick, scratch).map_err(|why| bad(offset, why))?;
                self.inputs.push(scratch)?;
            }
            RecordKind::RepeatInput => {
                if payload.len() != 8 || u64_at(payload, 0) != next_tick {
                    return Err(bad(offset, "repeat record is not for the next tick"));
                }
                if self.inputs.is_empty() {
                    return Err(bad(offset, "repeat record with no input before it"));
                }
                self.inputs.repeat_newest()?;
            }
            RecordKind::Checksum => {
                if payload.len() != 40 {
                    return Err(bad(offset, "checksum record has the wrong length"));
                }
                let tick = u64_at(payload, 0);
                let after_start = tick > self.initial.0 && tick < next_tick;
                if !after_start || self.checksums.last().is_some_and(|&(t, _)| t >= tick) {
                    return Err(bad(offset, "checksum record out of order"));
                }
                let mut digest = [0u8; 32];
                digest.copy_from_slice(&payload[8..]);
                self.checksums.push((tick, Digest(digest)));
            }
            RecordKind::Checkpoint => {
                let (tick, checksum) = verify_snapshot(payload, schema, offset)?;
                let after_start = tick > self.initial.0 && tick < next_tick;
                if !after_start || self.checkpoints.last().is_some_and(|c| c.tick >= tick) {
                    return Err(bad(offset, "checkpoint out of order"));
                }
                self.checkpoints.push(Checkpoint {
                    tick,
                    checksum,
                    bytes: payload,
                });
            }
            RecordKind::End => {
                if payload.len() != 8 || u64_at(payload, 0) != self.last_tick() {
                    return Err(bad(offset, "end record does not match the last tick"));
                }
                self.ended_at = Some(self.last_tick());
            }
            RecordKind::Header | RecordKind::InitialSnapshot => {
                return Err(bad(offset, "second header or initial snapshot"));
            }
        }
        Ok(())
    }
}

/// Verifies a snapshot inside the replay; returns its tick and checksum.
fn verify_snapshot(
    payload: &[u8],
    schema: &Schema,
    offset: usize,
) -> Result<(Tick, Checksum), ReplayError> {
    tickstep_snapshot::verify(payload, schema)
        .map(|verified| (verified.header.tick, verified.header.checksum))
        .map_err(|error| ReplayError::Snapshot { offset, error })
}

/// Reads an input record for `tick` into `out`:
///
/// ```text
/// tick u64 | present u64 | replaced u64 | inputs (players × input size)
///   | commands u16 | per command: player u8, length u16, bytes
/// ```
fn decode_input<I: Pod>(
    payload: &[u8],
    tick: Tick,
    out: &mut TickInputs<I>,
) -> Result<(), &'static str> {
    let players = out.players();
    let fixed = 24 + players * size_of::<I>();
    if payload.len() < fixed + 2 {
        return Err("input record is too short");
    }
    if u64_at(payload, 0) != tick {
        return Err("input record is not for the next tick");
    }
    let (present, replaced) = (u64_at(payload, 8), u64_at(payload, 16));
    if players < 64 && present >> players != 0 {
        return Err("input record marks nonexistent player slots present");
    }
    if replaced & !present != 0 {
        return Err("input record marks absent players replaced");
    }
    out.reset(tick);
    for (player, bytes) in payload[24..fixed]
        .chunks_exact(size_of::<I>().max(1))
        .enumerate()
    {
        if present & (1 << player) != 0 {
            let _ = out.set(PlayerId(player as u8), bytemuck::pod_read_unaligned(bytes));
        }
    }
    out.set_masks(present, replaced);
    let count = u16::from_le_bytes([payload[fixed], payload[fixed + 1]]);
    let mut rest = &payload[fixed + 2..];
    for _ in 0..count {
        let [player, lo, hi, tail @ ..] = rest else {
            return Err("input record's commands are cut short");
        };
        let len = u16::from_le_bytes([*lo, *hi]) as usize;
        if tail.len() < len {
            return Err("input record's commands are cut short");
        }
        out.push_command(PlayerId(*player), &tail[..len])
            .map_err(|_| "input record holds an impossible command")?;
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return Err("input record has bytes after its commands");
    }
    Ok(())
}

/// Records a game as it is played: call [`ReplayWriter::record`] after every step.
pub struct ReplayWriter<W: Write, I> {
    out: W,
    players: usize,
    checksum_every: u64,
    checkpoint_every: u64,
    /// The last recorded input's presence and replacement masks and values, to spot
    /// repeats.
    previous_masks: Option<(u64, u64)>,
    previous: Vec<I>,
    payload: Vec<u8>,
    snapshot: Vec<u8>,
}

impl<W: Write, I: Pod + PartialEq> ReplayWriter<W, I> {
    /// Starts a replay of a game described by `header`, from `initial`.
    pub fn new<G: Pod>(mut out: W, header: &ReplayHeader, initial: &Frame<G>) -> io::Result<Self> {
        if header.input_size as usize != size_of::<I>() {
            let problem = "header's input size differs from the input type's";
            return Err(io::Error::new(io::ErrorKind::InvalidInput, problem));
        }
        write_record(&mut out, RecordKind::Header, &header.encode())?;
        let mut snapshot = Vec::new();
        tickstep_snapshot::encode(initial, &mut snapshot);
        write_record(&mut out, RecordKind::InitialSnapshot, &snapshot)?;
        Ok(ReplayWriter {
            out,
            players: header.players as usize,
            checksum_every: header.checksum_every as u64,
            checkpoint_every: header.checkpoint_every as u64,
            previous_masks: None,
            previous: Vec::new(),
            payload: Vec::new(),
            snapshot,
        })
    }

    /// Records `inputs` and the frame they produced (`frame.tick() == inputs.tick()`):
    /// the input (or a repeat marker), and a checksum and a checkpoint when due.
    pub fn record<G: Pod>(&mut self, inputs: &TickInputs<I>, frame: &Frame<G>) -> io::Result<()> {
        self.record_input(inputs)?;
        let tick = frame.tick();
        if self.checksum_every > 0 && tick.is_multiple_of(self.checksum_every) {
            self.payload.clear();
            self.payload.extend_from_slice(&tick.to_le_bytes());
            self.payload.extend_from_slice(checksum(frame).as_bytes());
            write_record(&mut self.out, RecordKind::Checksum, &self.payload)?;
        }
        if self.checkpoint_every > 0 && tick.is_multiple_of(self.checkpoint_every) {
            tickstep_snapshot::encode(frame, &mut self.snapshot);
            write_record(&mut self.out, RecordKind::Checkpoint, &self.snapshot)?;
        }
        Ok(())
    }

    /// Records only the verified input of a tick, for a recorder that does not run the
    /// game (a relay server): no checksums or checkpoints.
    pub fn record_input(&mut self, inputs: &TickInputs<I>) -> io::Result<()> {
        if inputs.players() != self.players {
            let problem = "input has a different number of players than the header";
            return Err(io::Error::new(io::ErrorKind::InvalidInput, problem));
        }
        let tick = inputs.tick();
        let masks = (inputs.present_mask(), inputs.replaced_mask());
        let repeat = self.previous_masks == Some(masks)
            && self.previous == inputs.raw()
            && inputs.command_count() == 0;
        self.payload.clear();
        self.payload.extend_from_slice(&tick.to_le_bytes());
        if repeat {
            write_record(&mut self.out, RecordKind::RepeatInput, &self.payload)?;
            return Ok(());
        }
        self.payload.extend_from_slice(&masks.0.to_le_bytes());
        self.payload.extend_from_slice(&masks.1.to_le_bytes());
        self.payload
            .extend_from_slice(bytemuck::cast_slice(inputs.raw()));
        // At most MAX_COMMANDS_PER_TICK commands of at most MAX_COMMAND_LEN bytes.
        self.payload
            .extend_from_slice(&(inputs.command_count() as u16).to_le_bytes());
        for (player, bytes) in inputs.commands() {
            self.payload.push(player.0);
            self.payload
                .extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            self.payload.extend_from_slice(bytes);
        }
        write_record(&mut self.out, RecordKind::Input, &self.payload)?;
        self.previous_masks = Some(masks);
        self.previous.clear();
        self.previous.extend_from_slice(inputs.raw());
        Ok(())
    }

    /// Writes the end record at `last_tick` and returns the output, flushed.
    pub fn finish(mut self, last_tick: Tick) -> io::Result<W> {
        write_record(&mut self.out, RecordKind::End, &last_tick.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Flushes what was recorded so far (a crash after this loses nothing before it).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
