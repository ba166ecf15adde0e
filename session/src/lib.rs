//! tickstep-session: the lockstep session, sans-IO. A [`Server`] hosting rooms and a
//! [`Client`] per player are state machines that take received messages and the
//! current time and hand back messages to send, events, and when to call them next.
//! No sockets, threads or clocks inside: a transport (`tickstep-net`), the
//! deterministic [`sim`] network (tests, the demo) or a fuzzer drives them.
//!
//! What this crate pursues, in order:
//! 1. **Every peer plays the same verified input.** A room finalises each tick's input
//!    and broadcasts it; clients step only on it and report checksums; a desync is
//!    named with its tick, its players and evidence.
//! 2. **A dropped player comes back without stopping anyone.** Its slot is kept for its
//!    secret [`ClientId`]; it re-enters from its own local snapshot or a buddy's, checked
//!    against the checksums the peers reported, and catches up.
//! 3. **Any message may be lost, repeated or reordered** and bad input from a peer is a
//!    typed refusal ([`Refusal`]), never a panic.
//!
//! Time is a [`Duration`](std::time::Duration) since an epoch the driver picks; only
//! differences matter. A host loop, for a server and a client sharing a perfect
//! in-memory network (the same calls a real transport makes):
//!
//! ```
//! use bytemuck::{Pod, Zeroable};
//! use std::time::Duration;
//! use tickstep_engine::{checksum, Frame, Schema, Simulation, TickInputs};
//! use tickstep_session::*;
//!
//! #[derive(Clone, Copy, Default, Pod, Zeroable)]
//! #[repr(C)]
//! struct Score(u64);
//!
//! // The game: every tick each player's input (a u32) adds to the score.
//! let schema = Schema::builder::<Score>("doc", 1).build()?;
//! let initial = Frame::new(schema, 4, Score(0))?;
//! let game = || Simulation::new().with_system(|f: &mut Frame<Score>, i: &TickInputs<u32>| {
//!     f.globals_mut().0 += i.iter().map(|(_, &v)| v as u64).sum::<u64>();
//! });
//!
//! // The server side: a room for one player that ends at tick 60.
//! let mut server = Server::<u32>::new(ServerConfig::default());
//! let mut room = RoomConfig::new(1, "doc 1", &initial);
//! room.end_tick = Some(60);
//! server.open_room("main", room)?;
//!
//! // The client side.
//! let config = ClientConfig { app_version: "doc 1".into(), ..ClientConfig::default() };
//! let info = ReconnectInfo::new("in-memory", "main", ClientId::from_seed(1));
//! let mut client = Client::new(config, info, initial.clone(), game());
//! let conn = ConnId(1);
//!
//! let mut now = Duration::ZERO;
//! client.connect(now);
//! while !client.state().is_disconnected() {
//!     // The client: time, stepping, input, then what it wants sent.
//!     client.handle_timeout(now);
//!     client.advance(now, 1000);
//!     while client.next_input_tick(now).is_some() {
//!         client.send_input(now, 2);
//!     }
//!     while let Some(transmit) = client.poll_transmit(now) {
//!         if let ClientTransmit::Send(message) = transmit {
//!             let bytes = encode(&message); // what crosses the network
//!             server.handle_message(now, conn, decode(&bytes)?);
//!         }
//!     }
//!     while let Some(_event) = client.poll_event() {}
//!     // The server: time, then what it wants sent.
//!     server.handle_timeout(now);
//!     while let Some(transmit) = server.poll_transmit() {
//!         if let ServerTransmit::Send { message, .. } = &transmit {
//!             client.handle_message(now, decode(&encode(message))?);
//!         }
//!         server.recycle(transmit); // sent: its buffers serve a later message
//!     }
//!     while let Some(_event) = server.poll_event() {}
//!     // Sleep until the next timer (or message, on a real network).
//!     let next = [client.poll_timeout(), server.poll_timeout()].into_iter().flatten().min();
//!     now = next.unwrap_or(now).max(now + Duration::from_millis(1));
//! }
//! assert_eq!(client.frame().tick(), 60);
//! assert_eq!(client.frame().globals().0, 2 * 60, "every tick played the client's input");
//! assert_eq!(client.state(), ClientState::Disconnected(DisconnectReason::GameEnded));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The flow: each client stamps its input for the room's tick plus its own lead (sized
//! from its round trip, corrected by the slack the room reports); a room finalises tick
//! T when every player sending input has, or after a short hold for a late one (then
//! filling it in, flagged), and broadcasts the verified input; every client steps its
//! frame on it and reports its checksum every K ticks; the room compares reports and
//! names a desync.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod ids;
mod outbox;
mod protocol;
mod reconnect;
mod room;
mod server;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(test)]
mod test_game;
mod transfer;

pub use client::{
    Client, ClientConfig, ClientEvent, ClientState, ClientStats, ClientTransmit, CommandError,
    DisconnectReason, DownloadProgress, LatencyHistogram, Playout,
};
pub use error::{Refusal, SessionError};
pub use ids::{ClientId, ConnId, EntropyError, ParseClientIdError, ResumeToken};
pub use outbox::ServerTransmit;
pub use protocol::{
    ClientMessage, Command, DecodeError, Echo, Entry, Hello, MAX_LIST, MAX_MESSAGE_LEN,
    PROTOCOL_VERSION, RoomInfo, ServerMessage, SnapshotSource, TickCommand, Timing, VerifiedTicks,
    decode, encode, encode_into, hello_protocol,
};
pub use reconnect::{LocalSnapshot, ReconnectInfo, ReconnectInfoError, ReconnectPolicy};
pub use room::{
    FillPolicy, MAX_HOLD, MAX_SEND_EVERY, MAX_TICK_RATE, MAX_WATCHERS, RoomConfig, RoomConfigError,
    RoomEvent, RoomPhase, RoomStats, SlotHolder,
};
pub use server::{OpenRoomError, Server, ServerConfig, ServerEvent, ServerStats, host_address};
