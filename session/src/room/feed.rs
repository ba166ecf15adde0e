//! `Feed`: the verified input streaming to one entered player. Every message may be
//! lost, so each one carries, besides the new ticks, the few newest the client has not
//! acknowledged yet (a lost message costs nothing when the next arrives), and after a
//! silence in acknowledgements everything from the acknowledgement goes again
//! (go-back-N).
//!
//! A window bounds what is in flight, like a congestion window: it grows by what each
//! acknowledgement confirms (so a catch-up ramps up in a few round trips) and halves
//! at each silence, and the wait before resending doubles while the silence lasts. A
//! client that never acknowledges costs the room a small window now and then, not a
//! stream.

use std::time::Duration;
use tickstep_engine::Tick;

/// The most unacknowledged verified ticks in flight to one client.
const MAX_WINDOW: u64 = 1024;
/// The window a feed starts with, and the least it shrinks to.
const MIN_WINDOW: u64 = 32;
/// Verified ticks are resent from the client's acknowledgement after this silence...
const RESEND_AFTER: Duration = Duration::from_millis(300);
/// ...doubling while the silence lasts, up to this.
const MAX_RESEND_AFTER: Duration = Duration::from_millis(4800);
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
    window: u64,
    resend_after: Duration,
}

impl Feed {
    /// A client whose frame starts at `base`, holding input up to it.
    pub(super) fn new(base: Tick, now: Duration) -> Feed {
        Feed {
            received: base,
            stepped: base,
            sent_up_to: base,
            ack_moved: now,
            window: MIN_WINDOW,
            resend_after: RESEND_AFTER,
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
            self.window = (self.window + (received - self.received)).min(MAX_WINDOW);
            self.received = received;
            self.ack_moved = now;
            self.resend_after = RESEND_AFTER;
        }
        self.stepped = self.stepped.max(stepped.min(self.received));
    }

    /// The ticks to send now, given the newest verified tick `live`, the oldest tick
    /// still held and the ticks each message batches (`batch`, the room's
    /// `send_every`): what was not sent yet with up to [`REPEATED`] batches of
    /// unacknowledged ticks before it (one lost message costs nothing when the next
    /// arrives), or, after a silence in acknowledgements, everything from the
    /// acknowledgement. Marks them sent.
    pub(super) fn due(
        &mut self,
        now: Duration,
        live: Tick,
        oldest: Tick,
        batch: u64,
    ) -> Option<(Tick, Tick)> {
        if self.sent_up_to > self.received && now >= self.ack_moved + self.resend_after {
            self.sent_up_to = self.received;
            self.ack_moved = now;
            self.window = (self.window / 2).max(MIN_WINDOW);
            self.resend_after = (self.resend_after * 2).min(MAX_RESEND_AFTER);
        }
        let unsent = self.sent_up_to.max(self.received) + 1;
        let to = live.min(self.received + self.window);
        if unsent > to {
            return None;
        }
        // The silence is timed from when something became outstanding, not from an
        // acknowledgement long before it (batches may be far apart).
        if self.sent_up_to <= self.received {
            self.ack_moved = now;
        }
        let from = unsent
            .saturating_sub(REPEATED * batch.max(1))
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
        assert_eq!(feed.due(Duration::ZERO, 10, 1, 1), None);
        assert_eq!(feed.due(MS, 14, 1, 1), Some((11, 14)));
        assert_eq!(
            feed.due(2 * MS, 15, 1, 1),
            Some((12, 15)),
            "three unacknowledged again"
        );
        assert_eq!(feed.due(3 * MS, 15, 1, 1), None, "nothing new");
        feed.acknowledge(4 * MS, 13, 13, 15);
        assert_eq!(
            feed.due(5 * MS, 16, 1, 1),
            Some((14, 16)),
            "only the unacknowledged"
        );
        assert_eq!(feed.due(6 * MS, 16, 1, 1), None, "acknowledged moved: wait");
        assert_eq!(
            feed.due(400 * MS, 16, 1, 1),
            Some((14, 16)),
            "resent after silence"
        );
    }

    #[test]
    fn batches_repeat_three_batches_and_their_silence_counts_from_sending() {
        let mut feed = Feed::new(0, Duration::ZERO);
        // A batch of 4 goes at 1 s, long after the last acknowledgement (none).
        assert_eq!(feed.due(1000 * MS, 4, 0, 4), Some((1, 4)));
        assert_eq!(feed.due(1001 * MS, 4, 0, 4), None, "not silent since 0");
        feed.acknowledge(1010 * MS, 4, 4, 4);
        assert_eq!(feed.due(1020 * MS, 8, 0, 4), Some((5, 8)));
        // Unacknowledged, each batch goes again with the next three.
        assert_eq!(feed.due(1030 * MS, 12, 0, 4), Some((5, 12)));
        assert_eq!(feed.due(1040 * MS, 16, 0, 4), Some((5, 16)));
        assert_eq!(feed.due(1050 * MS, 20, 0, 4), Some((5, 20)));
        assert_eq!(feed.due(1060 * MS, 24, 0, 4), Some((9, 24)));
    }

    #[test]
    fn acknowledgements_cannot_pass_the_room_and_the_window_bounds_flight() {
        let mut feed = Feed::new(0, Duration::ZERO);
        feed.acknowledge(MS, 50, 60, 20);
        assert_eq!((feed.received, feed.stepped), (20, 20));
        assert_eq!(
            feed.due(MS, 5000, 1, 1),
            Some((21, 20 + MIN_WINDOW + 20)),
            "the window grew by the 20 acknowledged"
        );
        // Ticks evicted from the history are skipped.
        let mut late = Feed::new(0, Duration::ZERO);
        late.acknowledge(MS, 10, 10, 10);
        assert_eq!(late.due(MS, 100, 40, 1), Some((40, 10 + MIN_WINDOW + 10)));
    }

    #[test]
    fn the_window_grows_with_acknowledgements_and_shrinks_with_silence() {
        let mut feed = Feed::new(0, Duration::ZERO);
        let live = 100_000;
        // A catch-up: every acknowledgement confirms the whole window, which doubles.
        let mut now = Duration::ZERO;
        let mut windows = Vec::new();
        for _ in 0..7 {
            now += 10 * MS;
            let (_, to) = feed.due(now, live, 0, 1).expect("more to send");
            windows.push(to - feed.received);
            feed.acknowledge(now, to, to, live);
        }
        assert_eq!(windows, vec![32, 64, 128, 256, 512, 1024, 1024]);

        // A client that stops acknowledging: after the window it was sent, go-back-N
        // with a halving window and a doubling wait, so the room sends a trickle.
        let (acked, silent_from) = (feed.received, now);
        let (first, mut sent, mut resends) = (feed.due(now + MS, live, 0, 1), 0, Vec::new());
        assert_eq!(first, Some((acked + 1, acked + 1024)));
        while now < Duration::from_secs(60) {
            now += 10 * MS;
            if let Some((from, to)) = feed.due(now, live, 0, 1) {
                assert_eq!(from, acked + 1, "only ever the unacknowledged again");
                sent += to + 1 - from;
                resends.push(((now - silent_from).as_millis(), to - acked));
            }
        }
        let at: Vec<u128> = resends.iter().map(|&(at, _)| at).collect();
        let windows: Vec<u64> = resends.iter().map(|&(_, w)| w).collect();
        // The silence counts from the send 1 ms after the last acknowledgement, seen
        // on the next 10 ms poll: 310 ms, then 600, 1200, 2400, 4800, 4800 more.
        assert_eq!(&at[..6], &[310, 910, 2110, 4510, 9310, 14110]);
        assert_eq!(&windows[..6], &[512, 256, 128, 64, 32, 32]);
        assert!(
            sent <= 512 + 256 + 128 + 64 + 32 * 12,
            "{sent} ticks in a minute of silence"
        );
    }
}
