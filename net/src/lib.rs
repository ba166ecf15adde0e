//! tickstep-net: the session over QUIC (quinn, rustls with the ring provider) on tokio.
//! The server is authenticated by its certificate ([`Identity`]: PEM files or a
//! self-signed one made at start), which clients pin by SHA-256 or check against a CA
//! ([`Trust`]); the connection is encrypted, so the secret client id never crosses the
//! wire in clear. Each connection carries one stream of length-delimited frames
//! (capped before allocating) and, for messages the session may lose, QUIC datagrams.
//! [`front_door`] accepts connections and hands each to the shard hosting its room,
//! where [`serve`] runs a [`tickstep_session::Server`]; [`NetClient`] drives a
//! [`tickstep_session::Client`]. Browsers come in through a [`WebDoor`]: the page's
//! files over HTTP and the session over a WebSocket, into the same shards.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agones;
mod client;
mod connection;
mod control;
mod door;
pub mod frame;
pub mod http;
pub mod metrics;
mod server;
mod tls;
pub mod web;

pub use client::{NetClient, Tamper, advance_for, client_endpoint};
pub use connection::{CloseReason, Connection, Delivery, Inbound, Queued, TransportConfig};
pub use control::{Control, Look, TransportStats};
pub use door::{
    DoorLimits, DoorStats, DoorStatsHandle, FrontDoor, MAX_HANDSHAKES, RETRY_ABOVE, ShardInbox,
    front_door,
};
pub use server::{ServerHost, serve, server_endpoint, udp_socket};
pub use tls::{ALPN, Fingerprint, Identity, SetupError, Trust};
pub use web::{Page, Pages, WebDoor};
