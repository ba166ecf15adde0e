//! What the server side has to send: the transport's to-do list, filled by rooms and
//! drained by [`crate::Server::poll_transmit`].

use std::collections::VecDeque;

use crate::ConnId;
use crate::protocol::{ServerMessage, TickCommand, VerifiedTicks};

/// Spare verified-tick buffers kept for reuse at most: a room-tick needs one per
/// member, and a round of a server's loop may tick many rooms before it drains them.
const MAX_SPARE: usize = 256;
/// A buffer whose lists hold room for more than this many bytes (a catch-up's batch,
/// a tick crowded with commands) is dropped, not kept: the spares hold 1 MiB at most.
const MAX_SPARE_BYTES: usize = 4096;

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
    /// Buffers of sent `Verified` messages, handed back through `recycle`.
    spare: Vec<VerifiedTicks>,
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

    /// An empty verified-tick buffer: a recycled one when there is one.
    pub(crate) fn verified_buffer(&mut self) -> VerifiedTicks {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps the buffers of a sent `Verified` message for [`Outbox::verified_buffer`]
    /// (a bounded number, none that grew large); anything else is dropped.
    pub(crate) fn recycle(&mut self, transmit: ServerTransmit) {
        if let ServerTransmit::Send {
            message: ServerMessage::Verified { ticks, .. },
            ..
        } = transmit
        {
            self.keep(ticks);
        }
    }

    /// Keeps `ticks`'s buffers, if there is room and they are small (its commands'
    /// bytes are freed now).
    pub(crate) fn keep(&mut self, mut ticks: VerifiedTicks) {
        if self.spare.len() < MAX_SPARE && footprint(&ticks) <= MAX_SPARE_BYTES {
            ticks.commands.clear();
            self.spare.push(ticks);
        }
    }
}

/// The bytes `ticks`'s lists have room for.
fn footprint(ticks: &VerifiedTicks) -> usize {
    (ticks.presence.capacity() + ticks.replaced.capacity()) * size_of::<u64>()
        + ticks.inputs.capacity()
        + ticks.commands.capacity() * size_of::<TickCommand>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Timing;

    fn verified(ticks: VerifiedTicks) -> ServerTransmit {
        ServerTransmit::Send {
            to: ConnId(1),
            message: ServerMessage::Verified {
                live: 1,
                timing: Timing::default(),
                ticks,
            },
        }
    }

    #[test]
    fn a_sent_verified_messages_buffers_come_back_and_the_spares_stay_bounded() {
        let mut out = Outbox::default();
        let mut ticks = out.verified_buffer();
        ticks.inputs.extend_from_slice(&[1, 2, 3]);
        let kept = ticks.inputs.as_ptr();
        out.recycle(verified(ticks));
        let reused = out.verified_buffer();
        assert_eq!(reused.inputs.as_ptr(), kept, "the same buffer");
        // A catch-up's large batch is let go, whichever list grew.
        let mut large = VerifiedTicks::default();
        large.inputs.reserve(MAX_SPARE_BYTES + 1);
        out.recycle(verified(large));
        let mut long = VerifiedTicks::default();
        long.presence.reserve(MAX_SPARE_BYTES / 8 + 1);
        out.recycle(verified(long));
        let mut commands = VerifiedTicks::default();
        commands
            .commands
            .reserve(MAX_SPARE_BYTES / size_of::<TickCommand>() + 1);
        out.recycle(verified(commands));
        assert!(out.spare.is_empty());
        // Other transmits carry nothing to keep.
        out.recycle(ServerTransmit::Close { conn: ConnId(1) });
        assert!(out.spare.is_empty());
        for _ in 0..MAX_SPARE + 10 {
            out.recycle(verified(VerifiedTicks::default()));
        }
        assert_eq!(out.spare.len(), MAX_SPARE);
    }
}
