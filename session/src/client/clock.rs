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
use crate::protocol::{Timing, micros};

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
#[derive(Clone, Debug)]
pub(crate) struct RoomClock {
    /// The room's ticks per second.
    rate: u32,
    /// The room's smallest lead.
    min_lead: u32,
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
    /// Ticks added to (or, negative, taken from) the model's lead by the room's reports,
    /// kept so that the lead stays within `min_lead..=MAX_LEAD`.
    correction: i64,
    /// Thin-slack reports before this are about input stamped before the last raise.
    raised_until: Duration,
    /// Since when every slack report was ample.
    ample_since: Option<Duration>,
}

/// The largest lead, in ticks (input further ahead than the room takes is wasted).
pub(crate) const MAX_LEAD: u32 = 255;

impl Default for RoomClock {
    fn default() -> Self {
        RoomClock {
            rate: 60,
            min_lead: 1,
            rtts: VecDeque::new(),
            offsets: VecDeque::new(),
            offset: None,
            delay_us: 0,
            slewed_at: Duration::ZERO,
            correction: 0,
            raised_until: Duration::ZERO,
            ample_since: None,
        }
    }
}

impl RoomClock {
    /// Sets the room's tick rate (1..) and smallest lead (`..=MAX_LEAD`), as its
    /// welcome says.
    pub(crate) fn set_room(&mut self, rate: u32, min_lead: u32) {
        self.rate = rate.max(1);
        self.min_lead = min_lead.clamp(1, MAX_LEAD);
    }

    /// One tick's length in µs (rounded; for thresholds, never for tick arithmetic).
    fn period_us(&self) -> i64 {
        1_000_000 / self.rate as i64
    }

    /// Takes what a server message says about timing, received at `now`.
    pub(crate) fn observe(&mut self, now: Duration, timing: &Timing) -> Slack {
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
            Some(slack) => self.feedback(now, slack as i64),
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
                Some(offset) if target.abs_diff(offset) <= SNAP_US as u64 => {
                    offset.saturating_add(target.saturating_sub(offset).clamp(-step, step))
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
    fn feedback(&mut self, now: Duration, slack: i64) -> Slack {
        let period = self.period_us();
        let thin = period / 4;
        let model = self.model_lead();
        let (low, high) = (self.min_lead as i64 - model, MAX_LEAD as i64 - model);
        if slack < thin {
            self.ample_since = None;
            if now >= self.raised_until {
                // Enough ticks to bring this input back above the thin line.
                let deficit = (thin.saturating_sub(slack)).saturating_add(period - 1) / period;
                self.correction = self.correction.saturating_add(deficit).clamp(low, high);
                self.raised_until = now + self.rtt() + Duration::from_micros(period as u64);
            }
            return if slack < 0 { Slack::Late } else { Slack::Thin };
        }
        if slack > 2 * period + thin {
            let since = *self.ample_since.get_or_insert(now);
            if now >= since + AMPLE_FOR {
                self.correction = (self.correction - 1).clamp(low, high);
                self.ample_since = Some(now);
            }
        } else {
            self.ample_since = None;
        }
        Slack::Fine
    }

    /// Whether a round trip was measured: until then the room's clock is estimated
    /// without the one-way trip and the lead without the round trip.
    pub(crate) fn has_round_trip(&self) -> bool {
        !self.rtts.is_empty()
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

    /// The room's tick estimated for `now` (negative before tick 0 is due): exact, as
    /// the room counts (tick T is due at T / rate seconds).
    pub(crate) fn room_tick(&self, now: Duration) -> Option<i64> {
        Some(tick_at(self.room_us(now)?, self.rate))
    }

    /// When, on the client's clock, the room's clock reaches `tick`.
    pub(crate) fn tick_starts_at(&self, tick: i64) -> Option<Duration> {
        let room_us = (tick as i128 * 1_000_000).div_euclid(self.rate as i128) + 1;
        let local = room_us - self.offset? as i128;
        Some(Duration::from_micros(
            local.clamp(0, u64::MAX as i128) as u64
        ))
    }

    /// The lead the round trip and jitter call for: one way plus three times the
    /// jitter, in whole ticks, plus one.
    fn model_lead(&self) -> i64 {
        let reach = micros(self.rtt()) / 2 + 3 * micros(self.jitter());
        let ticks = (reach as u128 * self.rate as u128).div_ceil(1_000_000);
        ticks.min(MAX_LEAD as u128) as i64 + 1
    }

    /// How many ticks past the room's tick to stamp input for: the model, corrected
    /// by the room's reports, within `min_lead..=MAX_LEAD`.
    pub(crate) fn lead(&self) -> u64 {
        (self.model_lead() + self.correction).clamp(self.min_lead as i64, MAX_LEAD as i64) as u64
    }

    /// The tick a render loop should show at `now`, and how far into the next: the
    /// room's clock less the playout delay (the one-way trip plus twice the jitter,
    /// slewed, so the playout rate stays even).
    pub(crate) fn playout(&self, now: Duration) -> Option<(i64, f32)> {
        let behind = self.room_us(now)?.saturating_sub(self.delay_us.max(0));
        let tick = tick_at(behind, self.rate);
        let start = (tick as i128 * 1_000_000).div_euclid(self.rate as i128);
        let into = (behind as i128 - start) as f32 * self.rate as f32 / 1_000_000.0;
        Some((tick, into.clamp(0.0, 0.999_999)))
    }
}

/// The tick whose span holds room time `room_us`, at `rate` ticks a second.
fn tick_at(room_us: i64, rate: u32) -> i64 {
    let tick = (room_us as i128 * rate as i128).div_euclid(1_000_000);
    tick.clamp(i64::MIN as i128, i64::MAX as i128) as i64
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

#[cfg(test)]
mod tests {
    use super::*;

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
    /// 5 s ahead of the client's, each echoing a client send a round trip before.
    fn feed(clock: &mut RoomClock, from: u64, n: u64, one_way: u64, extra: impl Fn(u64) -> u64) {
        let skew = 5_000_000i64;
        for i in from..from + n {
            let arrive = Duration::from_millis(1000 + i * 16);
            let delay = one_way + extra(i);
            let sent_room = micros(arrive) as i64 - delay as i64 + skew;
            let echo = micros(arrive) - 2 * delay;
            clock.observe(arrive, &timing(sent_room, echo, None));
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
            clock.room_tick(now),
            Some(7 * 60),
            "7 s of room time at 60 Hz"
        );
        let start = clock.tick_starts_at(421).unwrap();
        assert_eq!(clock.room_tick(start), Some(421));
        assert_eq!(clock.room_tick(start - MS), Some(420));
    }

    #[test]
    fn ticks_are_counted_exactly_as_the_room_counts_them_over_a_long_game() {
        let mut clock = RoomClock::default();
        clock.set_room(60, 1);
        clock.observe(Duration::ZERO, &timing(0, 0, None));
        // An hour in: tick 216,000 is due at exactly 3,600 s.
        assert_eq!(clock.room_tick(Duration::from_secs(3600)), Some(216_000));
        assert_eq!(
            clock.room_tick(Duration::from_secs(3600) - MS),
            Some(215_999)
        );
        clock.set_room(144, 1);
        assert_eq!(clock.room_tick(Duration::from_secs(3600)), Some(518_400));
    }

    #[test]
    fn the_lead_covers_the_trip_and_the_jitter_and_follows_a_latency_jump() {
        let mut clock = RoomClock::default();
        feed(&mut clock, 0, 16, 20_000, |i| (i % 3) * 5_000);
        let low = clock.lead();
        assert!(
            (2..=4).contains(&low),
            "20 ms each way with some jitter: {low}"
        );
        feed(&mut clock, 16, 16, 120_000, |i| (i % 3) * 5_000);
        let high = clock.lead();
        assert!(high >= low + 6, "120 ms each way: {high}");
        clock.set_room(60, 20);
        assert_eq!(clock.lead(), 20, "never under the room's minimum");
    }

    #[test]
    fn late_input_raises_the_lead_at_once_and_ample_slack_lowers_it_slowly() {
        let mut clock = RoomClock::default();
        let before = clock.lead();
        let t = Duration::from_secs(1);
        let late = clock.observe(t, &timing(0, 0, Some(-20_000)));
        assert_eq!(late, Slack::Late);
        let raised = clock.lead();
        assert_eq!(
            raised,
            before + 2,
            "20 ms late plus a quarter tick: two ticks"
        );
        clock.observe(t + MS, &timing(0, 0, Some(-20_000)));
        assert_eq!(clock.lead(), raised, "input stamped before the raise");
        // A second of ample slack lowers it by one tick, and only one.
        for ms in (100..=1150).step_by(50) {
            let at = t + Duration::from_millis(ms);
            assert_eq!(clock.observe(at, &timing(0, 0, Some(60_000))), Slack::Fine);
        }
        assert_eq!(clock.lead(), raised - 1);
    }

    #[test]
    fn an_hour_of_ample_slack_at_the_minimum_lead_still_lets_it_rise_at_once() {
        let mut clock = RoomClock::default();
        let mut at = Duration::from_secs(1);
        for _ in 0..3600 {
            at += Duration::from_secs(1);
            clock.observe(at, &timing(0, 0, Some(200_000)));
        }
        assert_eq!(clock.lead(), 1);
        clock.observe(at + MS, &timing(0, 0, Some(-40_000)));
        assert_eq!(
            clock.lead(),
            4,
            "40 ms late: three ticks more, not three minus an hour"
        );
    }

    #[test]
    fn wild_readings_saturate_instead_of_overflowing() {
        let mut clock = RoomClock::default();
        for (i, room_us) in [i64::MAX, i64::MIN, i64::MAX, 0].into_iter().enumerate() {
            let at = Duration::from_secs(i as u64 + 1);
            clock.observe(at, &timing(room_us, u64::MAX, Some(i32::MIN)));
            let _ = (
                clock.room_tick(at),
                clock.tick_starts_at(i64::MAX),
                clock.playout(at),
            );
        }
        assert!(clock.lead() <= MAX_LEAD as u64);
    }
}
