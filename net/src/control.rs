//! What a host tells a running server loop ([`Control`]), and what the loop counts of
//! its transport ([`TransportStats`]), for metrics and a graceful stop.

use std::time::Duration;
use tickstep_session::Server;

/// An instruction to a running [`crate::serve`] loop, sent on its control channel.
/// Dropping every sender stops the loop as [`Control::Stop`] does.
pub enum Control<I> {
    /// Start no new games ([`Server::drain`]); stop once no game is in play or
    /// `within` has passed, whichever comes first, saying goodbye to every
    /// connection.
    Drain {
        /// How long running games may take to finish.
        within: Duration,
    },
    /// Say goodbye to every connection and stop now.
    Stop,
    /// Look at the server and the transport's counters between two rounds (metrics,
    /// health checks): `look` runs on the loop's thread, so keep it short.
    Inspect(Look<I>),
}

/// A look at the server and its transport's counters, run between two rounds.
pub type Look<I> = Box<dyn FnOnce(&Server<I>, &TransportStats) + Send>;

/// What the server loop's transport did since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Connections whose handshake completed and whose first message arrived.
    pub connections_accepted: u64,
    /// Handshakes that failed or timed out, or whose first message did not come.
    pub handshakes_failed: u64,
    /// Connections the server cut: a malformed message, or too far behind.
    pub connections_cut: u64,
    /// Messages received.
    pub messages_in: u64,
    /// Their bytes (session messages, without QUIC's framing and encryption).
    pub bytes_in: u64,
    /// Messages queued for sending (not those for a connection already gone, nor the
    /// one that found its send budget spent).
    pub messages_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
}

impl TransportStats {
    /// Adds `other`'s counts to these (several shards' as one).
    pub fn merge(&mut self, other: &TransportStats) {
        let TransportStats {
            connections_accepted,
            handshakes_failed,
            connections_cut,
            messages_in,
            bytes_in,
            messages_out,
            bytes_out,
        } = other;
        self.connections_accepted += connections_accepted;
        self.handshakes_failed += handshakes_failed;
        self.connections_cut += connections_cut;
        self.messages_in += messages_in;
        self.bytes_in += bytes_in;
        self.messages_out += messages_out;
        self.bytes_out += bytes_out;
    }
}
