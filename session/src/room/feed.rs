//! `Feed`: the verified input streaming to one entered player. Every message may be
//! lost, so each one carries, besides the new ticks, the few newest the client has not
//! acknowledged yet (a lost message costs nothing when the next arrives), and after a
//! silence in acknowledgements everything from the acknowledgement goes again
//! (go-back-N); a window bounds what is in flight.

use std::time::Duration;
use tickstep_engine::Tick;

/// Unacknowledged verified ticks in flight to one client.
const SEND_WINDOW: u64 = 1024;
/// Verified ticks are resent from the client's acknowledgement after this silence.
const RESEND_AFTER: Duration = Duration::from_millis(300);
/// Unacknowledged ticks repeated with each new one.
const REPEATED: u64 = 3;

/// What one client holds of the verified input, and what was sent it.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    /// Verified input the client holds up to.
    pub received: Tick,
    /// The client's frame's tick (never past `received`).
    pub stepped: Tick,
    sent_up_to: Tick,
    ack_moved: Duration,
}

impl Feed {
    /// A client whose frame starts at `base`, holding input up to it.
    pub(super) fn new(base: Tick, now: Duration) -> Feed {
        Feed {
            received: base,
            stepped: base,
            sent_up_to: base,
            ack_moved: now,
        }
    }

    /// The client says it holds input up to `received` and stepped to `stepped`; it
    /// cannot hold input the room has not made (`finalized`).
    pub(super) fn acknowledge(
        &mut self,
        now: Duration,
        received: Tick,
        stepped: Tick,
        finalized: Tick,
    ) {
        let received = received.min(finalized);
        if received > self.received {
            self.received = received;
            self.ack_moved = now;
        }
        self.stepped = self.stepped.max(stepped.min(self.received));
    }

    /// The ticks to send now, given the newest verified tick `live` and the oldest tick
    /// still held: what was not sent yet with up to [`REPEATED`] unacknowledged ticks
    /// before it, or, after a silence in acknowledgements, everything from the
    /// acknowledgement. Marks them sent.
    pub(super) fn due(&mut self, now: Duration, live: Tick, oldest: Tick) -> Option<(Tick, Tick)> {
        if self.sent_up_to > self.received && now >= self.ack_moved + RESEND_AFTER {
            self.sent_up_to = self.received;
            self.ack_moved = now;
        }
        let unsent = self.sent_up_to.max(self.received) + 1;
        let to = live.min(self.received + SEND_WINDOW);
        if unsent > to {
            return None;
        }
        let from = unsent
            .saturating_sub(REPEATED)
            .max(self.received + 1)
            .max(oldest);
        self.sent_up_to = to;
        Some((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn new_ticks_travel_with_the_newest_unacknowledged_and_all_go_back_after_a_silence() {
        let mut feed = Feed::new(10, Duration::ZERO);
        assert_eq!(feed.due(Duration::ZERO, 10, 1), None);
        assert_eq!(feed.due(MS, 14, 1), Some((11, 14)));
        assert_eq!(
            feed.due(2 * MS, 15, 1),
            Some((12, 15)),
            "three unacknowledged again"
        );
        assert_eq!(feed.due(3 * MS, 15, 1), None, "nothing new");
        feed.acknowledge(4 * MS, 13, 13, 15);
        assert_eq!(
            feed.due(5 * MS, 16, 1),
            Some((14, 16)),
            "only the unacknowledged"
        );
        assert_eq!(feed.due(6 * MS, 16, 1), None, "acknowledged moved: wait");
        assert_eq!(
            feed.due(400 * MS, 16, 1),
            Some((14, 16)),
            "resent after silence"
        );
    }

    #[test]
    fn acknowledgements_cannot_pass_the_room_and_the_window_bounds_flight() {
        let mut feed = Feed::new(0, Duration::ZERO);
        feed.acknowledge(MS, 50, 60, 20);
        assert_eq!((feed.received, feed.stepped), (20, 20));
        assert_eq!(feed.due(MS, 5000, 1), Some((21, 20 + SEND_WINDOW)));
        // Ticks evicted from the history are skipped.
        let mut late = Feed::new(0, Duration::ZERO);
        assert_eq!(late.due(MS, 100, 40), Some((40, 100)));
    }
}
