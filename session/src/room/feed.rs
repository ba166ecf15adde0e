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
//!
//! A client that is heard but still lacks what it was sent a retransmission timeout
//! ago (the smoothed round trip plus four deviations, RFC 6298's rule, measured on one
//! fresh tick at a time; a go-back drops the measurement, and a repeat of the tick
//! with the next ones can only lengthen it) lost it: that goes again at once, halving the
//! window. The timeout doubles with each such resend the client does not answer, up
//! to a second, so a client that is heard but never acknowledges gets a small window
//! a second. Without this a lossy link's catch-up crawled: each loss in a row doubled
//! the wait for silence, up to 4.8 s, while the client kept saying what it lacked.

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
/// The least wait before resending to a client that is heard but lacks what it was
/// sent...
const MIN_RETRANSMIT: Duration = Duration::from_millis(50);
/// ...and the most, after resends it did not answer (bounds what a client that speaks
/// but never acknowledges makes the room send).
const MAX_RETRANSMIT: Duration = Duration::from_secs(1);
/// The round trip's deviation counts for at least this (timer granularity).
const MIN_DEVIATION: Duration = Duration::from_millis(10);

/// What one client holds of the verified input, and what was sent it.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    /// Verified input the client holds up to.
    pub received: Tick,
    /// The client's frame's tick (never past `received`).
    pub stepped: Tick,
    sent_up_to: Tick,
    /// The newest tick ever sent (resends go back from `sent_up_to`, not from this).
    newest_sent: Tick,
    ack_moved: Duration,
    /// When the client last held more verified input (or the feed began).
    progressed: Duration,
    window: u64,
    resend_after: Duration,
    /// The round trip, once measured.
    rtt: Option<RoundTrip>,
    /// A tick first sent at this time whose acknowledgement will time the round trip.
    probe: Option<(Tick, Duration)>,
    /// The client was heard lacking ticks sent a retransmission timeout ago.
    lost: bool,
    /// Resends for that since the acknowledgement last moved.
    unanswered: u32,
}

/// A smoothed round trip and its mean deviation (RFC 6298).
#[derive(Debug, Clone, Copy)]
struct RoundTrip {
    smoothed: Duration,
    deviation: Duration,
}

impl RoundTrip {
    fn first(sample: Duration) -> RoundTrip {
        RoundTrip {
            smoothed: sample,
            deviation: sample / 2,
        }
    }

    fn update(&mut self, sample: Duration) {
        let error = self.smoothed.abs_diff(sample);
        self.deviation = (self.deviation * 3 + error) / 4;
        self.smoothed = (self.smoothed * 7 + sample) / 8;
    }

    /// How long an acknowledgement may take before what it lacks counts as lost.
    fn retransmit_timeout(&self) -> Duration {
        (self.smoothed + (self.deviation * 4).max(MIN_DEVIATION)).max(MIN_RETRANSMIT)
    }
}

impl Feed {
    /// A client whose frame starts at `base`, holding input up to it.
    pub(super) fn new(base: Tick, now: Duration) -> Feed {
        Feed {
            received: base,
            stepped: base,
            sent_up_to: base,
            newest_sent: base,
            ack_moved: now,
            progressed: now,
            window: MIN_WINDOW,
            resend_after: RESEND_AFTER,
            rtt: None,
            probe: None,
            lost: false,
            unanswered: 0,
        }
    }

    /// When the client last held more verified input (or the feed began).
    pub(super) fn progressed(&self) -> Duration {
        self.progressed
    }

    /// How long an acknowledgement may take before what it lacks counts as lost: the
    /// round trip's timeout (a guess before it is measured), doubled for each resend
    /// the client did not answer.
    fn retransmit_timeout(&self) -> Duration {
        let base = self
            .rtt
            .map_or(RESEND_AFTER, |rtt| rtt.retransmit_timeout());
        base.saturating_mul(1 << self.unanswered.min(16))
            .min(MAX_RETRANSMIT)
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
            self.progressed = now;
            self.resend_after = RESEND_AFTER;
            self.lost = false;
            self.unanswered = 0;
            if let Some((tick, sent)) = self.probe
                && received >= tick
            {
                let sample = now.saturating_sub(sent);
                match &mut self.rtt {
                    Some(rtt) => rtt.update(sample),
                    None => self.rtt = Some(RoundTrip::first(sample)),
                }
                self.probe = None;
            }
        } else if received == self.received && self.sent_up_to > self.received {
            // (An older acknowledgement overtaken by a newer one says nothing.)
            self.lost |= now >= self.ack_moved + self.retransmit_timeout();
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
        let lost = std::mem::take(&mut self.lost);
        // Silence is not called before an acknowledgement could have come back.
        let rtt_timeout = self.rtt.map_or(Duration::ZERO, |rtt| {
            rtt.retransmit_timeout().min(MAX_RESEND_AFTER)
        });
        let silent = now >= self.ack_moved + self.resend_after.max(rtt_timeout);
        if self.sent_up_to > self.received && (lost || silent) {
            self.sent_up_to = self.received;
            self.ack_moved = now;
            self.window = (self.window / 2).max(MIN_WINDOW);
            // Every tick from the acknowledgement goes again: whichever copy arrives,
            // its acknowledgement cannot time the round trip.
            self.probe = None;
            if lost {
                self.unanswered = self.unanswered.saturating_add(1);
            } else {
                self.resend_after = (self.resend_after * 2).min(MAX_RESEND_AFTER);
            }
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
        if self.probe.is_none() && to > self.newest_sent {
            self.probe = Some((to, now));
        }
        self.newest_sent = self.newest_sent.max(to);
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
    fn a_client_heard_lacking_what_it_was_sent_a_round_trip_ago_gets_it_again_at_once() {
        let mut feed = Feed::new(0, Duration::ZERO);
        // Round trips of 40 ms time the retransmission timeout: 40 + 4 × 20 = 120 ms
        // after the first sample, settling towards 40 + 4 × deviation.
        let mut now = Duration::ZERO;
        for _ in 0..20 {
            let (_, to) = feed.due(now, feed.received + 1, 0, 1).expect("a new tick");
            now += 40 * MS;
            feed.acknowledge(now, to, to, to);
        }
        let timeout = feed.rtt.expect("measured").retransmit_timeout();
        assert!(
            timeout >= MIN_RETRANSMIT && timeout < 100 * MS,
            "{timeout:?}"
        );
        let acked = feed.received;
        let sent = now;
        assert_eq!(
            feed.due(sent, acked + 10, 0, 1),
            Some((acked + 1, acked + 10))
        );
        // Heard too soon to tell: nothing again.
        feed.acknowledge(sent + 30 * MS, acked, acked, acked + 10);
        assert_eq!(feed.due(sent + 30 * MS, acked + 10, 0, 1), None);
        // Heard a timeout later still lacking them: they were lost; all again now...
        let heard = sent + timeout;
        feed.acknowledge(heard, acked, acked, acked + 10);
        assert_eq!(
            feed.due(heard, acked + 10, 0, 1),
            Some((acked + 1, acked + 10))
        );
        // ...and the wait for silence did not grow (it is for a client not heard).
        assert_eq!(feed.resend_after, RESEND_AFTER);
        assert_eq!(feed.due(heard + MS, acked + 10, 0, 1), None);
        // A client repeating a stale acknowledgement as fast as it can: each resend it
        // does not answer doubles the wait for the next (or the silence's, doubling
        // from 300 ms, comes first), up to a second.
        let mut at = vec![heard];
        let mut t = heard;
        while t < heard + Duration::from_secs(10) {
            t += MS;
            feed.acknowledge(t, acked, acked, acked + 10);
            if feed.due(t, acked + 10, 0, 1).is_some() {
                at.push(t);
            }
        }
        let waits: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
        assert_eq!(waits[0], (2 * timeout).as_millis());
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "{waits:?}");
        assert_eq!(waits.last(), Some(&MAX_RETRANSMIT.as_millis()));
        // Answered, the timeout is the round trip's again.
        feed.acknowledge(t, acked + 10, acked + 10, acked + 20);
        assert_eq!(
            feed.due(t, acked + 20, 0, 1),
            Some((acked + 11, acked + 20))
        );
        feed.acknowledge(t + timeout, acked + 10, acked + 10, acked + 20);
        assert_eq!(
            feed.due(t + timeout, acked + 20, 0, 1),
            Some((acked + 11, acked + 20))
        );
    }

    #[test]
    fn a_resend_that_carries_new_ticks_too_times_the_round_trip_on_a_new_one() {
        let mut feed = Feed::new(0, Duration::ZERO);
        assert_eq!(feed.due(Duration::ZERO, 5, 0, 1), Some((1, 5)));
        // Lost; after the silence everything goes again with a new tick; acknowledged
        // 10 ms later. Timing the first send of tick 5 would make the trip 410 ms; the
        // new tick, sent once, times it right.
        assert_eq!(feed.due(400 * MS, 6, 0, 1), Some((1, 6)));
        feed.acknowledge(410 * MS, 6, 6, 6);
        assert_eq!(feed.rtt.map(|r| r.smoothed), Some(10 * MS));
    }

    #[test]
    fn a_resend_times_no_round_trip() {
        let mut feed = Feed::new(0, Duration::ZERO);
        assert_eq!(feed.due(Duration::ZERO, 5, 0, 1), Some((1, 5)));
        // Lost; resent after the silence; the resend arrives 10 ms later. Timing the
        // first send would make the round trip 410 ms.
        assert_eq!(feed.due(400 * MS, 5, 0, 1), Some((1, 5)));
        feed.acknowledge(410 * MS, 5, 5, 5);
        assert!(feed.rtt.is_none());
        // The next fresh tick times it.
        assert_eq!(feed.due(420 * MS, 6, 0, 1), Some((6, 6)));
        feed.acknowledge(450 * MS, 6, 6, 6);
        assert_eq!(feed.rtt.map(|r| r.smoothed), Some(30 * MS));
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
