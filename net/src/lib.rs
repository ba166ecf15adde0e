//! tickstep-net: real transports for the session: TCP on tokio. Length-delimited frames carry the
//! postcard-encoded protocol messages (capped before allocating), heartbeats find a
//! silent peer within a timeout, and a goodbye names the reason for an intentional
//! close. [`serve`] runs a [`tickstep_session::Server`]; [`NetClient`] drives a
//! [`tickstep_session::Client`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod connection;
pub mod frame;
mod server;

pub use client::{NetClient, advance_for};
pub use connection::{CloseReason, Connection, Inbound, Queued, TransportConfig};
pub use server::{ServerHost, serve};
