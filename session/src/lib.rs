#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! The lockstep session, sans-IO: a room [`Server`] and a [`Client`] as state machines
//! that take received messages and the current time and return messages to send and
//! events. No sockets, threads or clocks inside: a transport (TCP in `net`, the
//! deterministic [`sim`] network in tests and the demo) drives them.
//!
//! Time is a [`Duration`](std::time::Duration) since an epoch the driver picks; only
//! differences between times matter.
//!
//! The flow: clients send input for tick T + input delay; a room finalises tick T when
//! every playing player's input is in or a tolerance deadline passes (filling what is
//! missing), and broadcasts the verified input; every client steps its frame on it and
//! reports its checksum every K ticks; the room compares reports and names a desync.
//! A player who drops comes back to the same slot with the same secret [`ClientId`] and
//! enters the running game from a snapshot (its own local one if fresh, otherwise one
//! the room asks a buddy for and checks against the checksums peers reported), then
//! catches up over the verified input it missed.

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
    Client, ClientConfig, ClientEvent, ClientState, ClientTransmit, DisconnectReason,
    DownloadProgress,
};
pub use error::{Refusal, SessionError};
pub use ids::{ClientId, ConnId, ParseClientIdError};
pub use outbox::ServerTransmit;
pub use protocol::{
    ClientMessage, DecodeError, Entry, Hello, MAX_MESSAGE_LEN, PROTOCOL_VERSION, RoomInfo,
    ServerMessage, SnapshotSource, VerifiedTicks, decode, encode,
};
pub use reconnect::{LocalSnapshot, ReconnectInfo, ReconnectInfoError, ReconnectPolicy};
pub use room::{
    FillPolicy, MAX_TICK_RATE, RoomConfig, RoomConfigError, RoomEvent, RoomStats, SlotHolder,
};
pub use server::{OpenRoomError, Server, ServerConfig, ServerEvent};
