//! What the server side has to send: the transport's to-do list, filled by rooms and
//! drained by [`crate::Server::poll_transmit`].

use std::collections::VecDeque;

use crate::ConnId;
use crate::protocol::ServerMessage;

/// What the server wants the transport to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTransmit {
    /// Send a message on a connection.
    Send {
        /// The connection.
        to: ConnId,
        /// The message.
        message: ServerMessage,
    },
    /// Close a connection (after sending what was queued before this).
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// Transmits waiting to be polled, in order.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    transmits: VecDeque<ServerTransmit>,
}

impl Outbox {
    /// Queues `message` for `to`.
    pub(crate) fn send(&mut self, to: ConnId, message: ServerMessage) {
        self.transmits
            .push_back(ServerTransmit::Send { to, message });
    }

    /// Queues closing `conn` after what was queued before.
    pub(crate) fn close(&mut self, conn: ConnId) {
        self.transmits.push_back(ServerTransmit::Close { conn });
    }

    /// The oldest transmit.
    pub(crate) fn pop(&mut self) -> Option<ServerTransmit> {
        self.transmits.pop_front()
    }
}
