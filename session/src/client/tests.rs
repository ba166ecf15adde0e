//! The client driven by hand with the session's stub game.

use std::time::Duration;
use tickstep_engine::PlayerId;

use super::*;
use crate::protocol::{Entry, RoomInfo};
use crate::{ClientId, test_game};

/// A client of the stub game that asked to connect at 0, and a 60 Hz room of
/// `players` for its welcome.
fn connecting(players: u8) -> (Client<test_game::Tally, test_game::Input>, RoomInfo) {
    let frame = test_game::frame(1);
    let info = ReconnectInfo::new("s", "r", ClientId::from_seed(1));
    let mut client = Client::new(
        ClientConfig::default(),
        info,
        frame,
        test_game::simulation(),
    );
    client.connect(Duration::ZERO);
    let room = RoomInfo {
        players,
        tick_rate: 60,
        input_size: 4,
        min_lead: 1,
        checksum_every: 30,
        end_tick: None,
    };
    (client, room)
}

/// A welcome into slot 0 of `room`, from tick 0 with the room at `live`.
fn welcome_from_start(
    room: RoomInfo,
    live: Tick,
    timing: crate::protocol::Timing,
) -> ServerMessage {
    ServerMessage::Welcome {
        player: PlayerId(0),
        room,
        entry: Entry::FromStart,
        live,
        timing,
        resume: crate::ResumeToken([0; 16]),
    }
}

/// Regression: a welcome into a slot outside the room was accepted.
#[test]
fn a_welcome_into_a_slot_outside_the_room_is_a_protocol_violation() {
    let (mut client, room) = connecting(3);
    let welcome = ServerMessage::Welcome {
        player: PlayerId(3),
        room,
        entry: Entry::FromStart,
        live: 0,
        timing: Default::default(),
        resume: crate::ResumeToken([0; 16]),
    };
    client.handle_message(Duration::ZERO, welcome);
    assert!(matches!(
        client.state(),
        ClientState::Disconnected(DisconnectReason::Error(SessionError::UnexpectedMessage(_)))
    ));
    assert_eq!(client.player(), None);
}

/// Regression: a client 128 ms from the room handed out input before it had measured a
/// round trip, stamped with a lead that could not cover it: its first 18 ticks of input
/// all arrived late and were filled.
#[test]
fn no_input_is_asked_for_before_a_round_trip_is_measured() {
    let (mut client, room) = connecting(1);
    let ms = Duration::from_millis;
    let scheduled = |room_us, echo| crate::protocol::Timing {
        room_us: Some(room_us),
        echo,
        ..Default::default()
    };
    client.handle_message(
        ms(300),
        welcome_from_start(room, 0, scheduled(100_000, None)),
    );
    assert!(matches!(client.state(), ClientState::Running));
    assert_eq!(client.next_input_tick(ms(300)), None, "no round trip yet");
    // The room echoes an update the client sent at 300 ms, held 1 ms: 255 ms round trip.
    let echo = crate::protocol::Echo {
        client_us: 300_000,
        held_us: 1_000,
    };
    client.handle_message(
        ms(556),
        ServerMessage::Heartbeat {
            live: 0,
            timing: scheduled(356_000, Some(echo)),
        },
    );
    // Asked for every tick from the first on (the room's clock, ~483 ms, is not yet
    // half a second past any tick's turn).
    assert_eq!(client.next_input_tick(ms(556)), Some(1));
    assert_eq!(client.send_input(ms(556), 7), Some(1));
}

/// Regression: a client joining from tick 0 further behind than its history took
/// every verified tick the room sent, pushed out the input its frame had yet to step
/// over, and stalled there for good without a word.
#[test]
fn a_catch_up_longer_than_the_history_keeps_what_it_has_yet_to_step() {
    let frame = test_game::frame(1);
    let info = ReconnectInfo::new("s", "r", ClientId::from_seed(1));
    let config = ClientConfig {
        history: 100,
        ..ClientConfig::default()
    };
    let mut client = Client::new(config, info, frame, test_game::simulation());
    client.connect(Duration::ZERO);
    let (_, room) = connecting(1);
    let live = 1000;
    client.handle_message(
        Duration::ZERO,
        welcome_from_start(room, live, Default::default()),
    );
    // The room sends (and, unacknowledged, sends again) every tick up to live.
    let batches: Vec<ServerMessage> = (0..10)
        .map(|b| ServerMessage::Verified {
            live,
            timing: Default::default(),
            ticks: crate::protocol::VerifiedTicks {
                first: 1 + b * 100,
                presence: vec![1; 100],
                replaced: vec![0; 100],
                inputs: (1 + b * 100..=100 + b * 100)
                    .flat_map(|tick| (tick as u32).to_le_bytes())
                    .collect(),
                commands: Vec::new(),
            },
        })
        .collect();
    let mut now = Duration::ZERO;
    for _ in 0..100 {
        for batch in &batches {
            client.handle_message(now, batch.clone());
        }
        client.advance(now, 64);
        now += Duration::from_millis(16);
    }
    assert_eq!(client.frame().tick(), live, "{:?}", client.state());
    assert!(matches!(client.state(), ClientState::Running));
}

/// Regression: a room saying it took command number u32::MAX made the next command's
/// number overflow (a panic in debug builds, a wrap to 0 in release that the room
/// would drop as taken while `send_command` said it went).
#[test]
fn a_seat_whose_command_numbers_are_spent_refuses_more() {
    let (mut client, room) = connecting(1);
    let timing = crate::protocol::Timing {
        commands_taken: u32::MAX,
        ..Default::default()
    };
    client.handle_message(Duration::ZERO, welcome_from_start(room, 0, timing));
    assert!(matches!(client.state(), ClientState::Running));
    assert_eq!(
        client.send_command(Duration::ZERO, b"nova"),
        Err(CommandError::Exhausted)
    );
}
