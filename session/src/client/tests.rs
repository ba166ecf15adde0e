//! The client driven by hand with the session's stub game.

use std::time::Duration;
use tickstep_engine::PlayerId;

use super::*;
use crate::protocol::{Entry, RoomInfo};
use crate::{ClientId, test_game};

/// Regression: a welcome into a slot outside the room was accepted.
#[test]
fn a_welcome_into_a_slot_outside_the_room_is_a_protocol_violation() {
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
        players: 3,
        tick_rate: 60,
        input_size: 4,
        min_lead: 1,
        checksum_every: 30,
        end_tick: None,
    };
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
