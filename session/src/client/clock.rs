//! `RoomClock`: the client's estimate of the room's clock, its round trip and jitter,
//! and its input lead.
//!
//! Every server message carries the room's clock and the echo of the client's (see
//! [`Timing`]). The round trip is the median of recent echoes (outliers do not move a
//! median; a real change does within half a window), the jitter their mean deviation.
//! The room's clock is the reading of the least-delayed recent message plus the
//! shortest one-way trip; the estimate in use slews toward it at most a tenth faster
//! or slower than real time (so ticks played out at an even rate stay even) and snaps
//! only past a large error. The lead — how many ticks past the room's tick input is
//! stamped for — starts from the model `one way + 3 × jitter + a tick`, then follows
//! the slack the room reports: it rises at once when input arrives late or barely in
//! time, and falls a tick at a time after a stretch of ample slack.

use std::collections::VecDeque;
use std::time::Duration;

#[cfg(test)]
use crate::protocol::Echo;
use crate::protocol::Timing;

/// Round-trip samples kept (the median of these is the RTT).
const RTT_SAMPLES: usize = 16;
/// How long a room-clock sample counts.
const OFFSET_WINDOW: Duration = Duration::from_secs(2);
/// Room-clock samples kept at most.
const OFFSET_SAMPLES: usize = 128;
/// Slack ample for this long lowers the lead by a tick.
const AMPLE_FOR: Duration = Duration::from_secs(1);
/// An estimate this far off jumps to the measurement instead of slewing, µs.
const SNAP_US: i64 = 50_000;
/// The estimates move at most one part in this many of the time passed.
const SLEW_DIVISOR: i64 = 10;

/// The client's view of the room's clock and its own timing.
#[derive(Clone, Debug, Default)]
pub(crate) struct RoomClock {
    /// Recent round trips, µs, oldest first.
    rtts: VecDeque<u64>,
    /// Recent `room_us - local_us` readings, with when they arrived.
    offsets: VecDeque<(Duration, i64)>,
    /// The estimate in use of `room_us - local_us`, slewed toward the measurements.
    offset: Option<i64>,
    /// The playout delay in use, µs, slewed toward its target.
    delay_us: i64,
    /// When the estimates last moved.
    slewed_at: Duration,
    /// Ticks added to (or, negative, taken from) the model's lead by the room's reports.
    correction: i64,
    /// Thin-slack reports before this are about input stamped before the last raise.
    raised_until: Duration,
    /// Since when every slack report was ample.
    ample_since: Option<Duration>,
}

impl RoomClock {
    /// Takes what a server message says about timing, received at `now`. `period_us` is
    /// the room's tick length.
    pub(crate) fn observe(&mut self, now: Duration, timing: &Timing, period_us: u64) -> Slack {
        let now_us = micros(now);
        if let Some(echo) = timing.echo.filter(|e| e.client_us <= now_us) {
            let rtt = (now_us - echo.client_us).saturating_sub(echo.held_us as u64);
            if self.rtts.len() == RTT_SAMPLES {
                self.rtts.pop_front();
            }
            self.rtts.push_back(rtt);
        }
        if let Some(room_us) = timing.room_us {
            self.offsets
                .push_back((now, room_us.saturating_sub(now_us as i64)));
            while self.offsets.len() > OFFSET_SAMPLES
                || self
                    .offsets
                    .front()
                    .is_some_and(|&(at, _)| at + OFFSET_WINDOW < now && self.offsets.len() > 1)
            {
                self.offsets.pop_front();
            }
        }
        self.slew(now);
        match timing.slack_us {
            Some(slack) => self.feedback(now, slack as i64, period_us),
            None => Slack::Fine,
        }
    }

    /// Moves the estimates in use toward the measurements, by at most a tenth of the
    /// time since they last moved (snapping the room's clock past [`SNAP_US`]).
    fn slew(&mut self, now: Duration) {
        let step = (micros(now.saturating_sub(self.slewed_at)) as i64 / SLEW_DIVISOR).max(1);
        self.slewed_at = now;
        if let Some(target) = self.measured_offset() {
            self.offset = Some(match self.offset {
                Some(offset) if (target - offset).abs() <= SNAP_US => {
                    offset + (target - offset).clamp(-step, step)
                }
                _ => target,
            });
        }
        let delay = micros(self.rtt() / 2 + 2 * self.jitter()) as i64;
        self.delay_us += (delay - self.delay_us).clamp(-step, step);
    }

    /// `room_us - local_us` as the least-delayed recent message measures it.
    fn measured_offset(&self) -> Option<i64> {
        let best = self.offsets.iter().map(|&(_, offset)| offset).max()?;
        let fastest = self.rtts.iter().min().copied().unwrap_or(0) / 2;
        Some(best.saturating_add(fastest as i64))
    }

    /// Adjusts the lead to a slack report.
    fn feedback(&mut self, now: Duration, slack: i64, period_us: u64) -> Slack {
        let period = period_us as i64;
        let thin = period / 4;
        if slack < thin {
            self.ample_since = None;
            if now >= self.raised_until {
                // Enough ticks to bring this input back above the thin line.
                self.correction += (thin - slack + period - 1) / period;
                self.raised_until = now + self.rtt() + Duration::from_micros(period_us);
            }
            return if slack < 0 { Slack::Late } else { Slack::Thin };
        }
        if slack > 2 * period + thin {
            let since = *self.ample_since.get_or_insert(now);
            if now >= since + AMPLE_FOR {
                self.correction -= 1;
                self.ample_since = Some(now);
            }
        } else {
            self.ample_since = None;
        }
        Slack::Fine
    }

    /// The median round trip (zero before any sample).
    pub(crate) fn rtt(&self) -> Duration {
        let mut sorted: Vec<u64> = self.rtts.iter().copied().collect();
        sorted.sort_unstable();
        Duration::from_micros(sorted.get(sorted.len() / 2).copied().unwrap_or(0))
    }

    /// The mean deviation of the round trips from their median.
    pub(crate) fn jitter(&self) -> Duration {
        if self.rtts.is_empty() {
            return Duration::ZERO;
        }
        let median = micros(self.rtt());
        let total: u64 = self.rtts.iter().map(|&r| r.abs_diff(median)).sum();
        Duration::from_micros(total / self.rtts.len() as u64)
    }

    /// The room's clock (µs since its tick 0 was due) estimated for `now`, once a
    /// message said where it stands.
    pub(crate) fn room_us(&self, now: Duration) -> Option<i64> {
        Some((micros(now) as i64).saturating_add(self.offset?))
    }

    /// When, on the client's clock, the room's clock will read `room_us`.
    pub(crate) fn local_at(&self, room_us: i64) -> Option<Duration> {
        Some(Duration::from_micros(
            room_us.saturating_sub(self.offset?).max(0) as u64,
        ))
    }

    /// The room's tick estimated for `now` (negative before tick 0 is due).
    pub(crate) fn room_tick(&self, now: Duration, period_us: u64) -> Option<i64> {
        Some(self.room_us(now)?.div_euclid(period_us.max(1) as i64))
    }

    /// How many ticks past the room's tick to stamp input for: the model, corrected
    /// by the room's reports, at least `min_lead`.
    pub(crate) fn lead(&self, period_us: u64, min_lead: u32) -> u64 {
        let period = period_us.max(1);
        let one_way = micros(self.rtt()) / 2;
        let margin = 3 * micros(self.jitter());
        let model = (one_way + margin).div_ceil(period) as i64 + 1;
        (model + self.correction).clamp(min_lead.max(1) as i64, 255) as u64
    }

    /// How far behind the room's tick to play out verified ticks, so that they are
    /// there in time despite jitter: the one-way trip plus twice the jitter (slewed, so
    /// the playout rate stays even).
    pub(crate) fn playout_delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.max(0) as u64)
    }
}

/// What a slack report said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slack {
    /// In time with room to spare.
    Fine,
    /// In time, barely: the lead rose.
    Thin,
    /// Late: the tick waited (or filled it); the lead rose.
    Late,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: u64 = 16_667;
    const MS: Duration = Duration::from_millis(1);

    fn timing(room_us: i64, echo_us: u64, slack_us: Option<i32>) -> Timing {
        Timing {
            room_us: Some(room_us),
            echo: (echo_us > 0).then_some(Echo {
                client_us: echo_us,
                held_us: 0,
            }),
            slack_us,
            commands_taken: 0,
        }
    }

    /// Messages with a one-way delay of `one_way` plus `extra(i)`, the room's clock
    /// `skew` µs ahead of the client's, echoing a client send `rtt` before.
    fn feed(clock: &mut RoomClock, from: u64, n: u64, one_way: u64, extra: impl Fn(u64) -> u64) {
        let skew = 5_000_000i64;
        for i in from..from + n {
            let arrive = Duration::from_millis(1000 + i * 16);
            let delay = one_way + extra(i);
            let sent_room = micros(arrive) as i64 - delay as i64 + skew;
            let echo = micros(arrive) - 2 * delay;
            clock.observe(arrive, &timing(sent_room, echo, None), PERIOD);
        }
    }

    #[test]
    fn the_room_clock_is_read_through_the_fastest_message_and_outliers_do_not_move_the_rtt() {
        let mut clock = RoomClock::default();
        assert_eq!(clock.room_us(Duration::ZERO), None);
        // 40 ms each way, every fourth message 60 ms later.
        feed(&mut clock, 0, 40, 40_000, |i| {
            if i % 4 == 0 { 60_000 } else { 0 }
        });
        assert_eq!(clock.rtt(), 80 * MS);
        let now = Duration::from_secs(2);
        let error = clock.room_us(now).unwrap() - (micros(now) as i64 + 5_000_000);
        assert!(error.abs() < 1_000, "within a millisecond: {error} µs");
        assert_eq!(
            clock.room_tick(now, PERIOD),
            Some(7_000_000 / PERIOD as i64)
        );
    }

    #[test]
    fn the_lead_covers_the_trip_and_the_jitter_and_follows_a_latency_jump() {
        let mut clock = RoomClock::default();
        feed(&mut clock, 0, 16, 20_000, |i| (i % 3) * 5_000);
        let low = clock.lead(PERIOD, 1);
        assert!(
            (2..=4).contains(&low),
            "20 ms each way with some jitter: {low}"
        );
        feed(&mut clock, 16, 16, 120_000, |i| (i % 3) * 5_000);
        let high = clock.lead(PERIOD, 1);
        assert!(high >= low + 6, "120 ms each way: {high}");
        assert!(
            clock.lead(PERIOD, 20) >= 20,
            "never under the room's minimum"
        );
    }

    #[test]
    fn late_input_raises_the_lead_at_once_and_ample_slack_lowers_it_slowly() {
        let mut clock = RoomClock::default();
        let before = clock.lead(PERIOD, 1);
        let t = Duration::from_secs(1);
        let late = clock.observe(t, &timing(0, 0, Some(-20_000)), PERIOD);
        assert_eq!(late, Slack::Late);
        let raised = clock.lead(PERIOD, 1);
        assert_eq!(
            raised,
            before + 2,
            "20 ms late plus a quarter tick: two ticks"
        );
        clock.observe(t + MS, &timing(0, 0, Some(-20_000)), PERIOD);
        assert_eq!(
            clock.lead(PERIOD, 1),
            raised,
            "input stamped before the raise"
        );
        // A second of ample slack lowers it by one tick, and only one.
        for ms in (100..=1150).step_by(50) {
            let at = t + Duration::from_millis(ms);
            assert_eq!(
                clock.observe(at, &timing(0, 0, Some(60_000)), PERIOD),
                Slack::Fine
            );
        }
        assert_eq!(clock.lead(PERIOD, 1), raised - 1);
    }
}
