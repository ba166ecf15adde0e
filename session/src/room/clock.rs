//! `Clock`: the room's tick clock and input. Tick T falls due at `start + T / rate`;
//! it is final once every player expected to send input did, or once its tolerance
//! deadline passed, when missing input is filled. Final ticks go into a bounded input
//! history that (re)joiners catch up from.

use bytemuck::Pod;
use std::collections::VecDeque;
use std::time::Duration;
use tickstep_engine::{PlayerId, Tick, TickInputs};
use tickstep_replay::InputLog;

use super::config::{FillPolicy, MAX_AHEAD, RoomConfig, RoomConfigError};
use crate::protocol::VerifiedTicks;

/// What a room has done, for hosts, tools and load tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// The newest verified tick.
    pub tick: Tick,
    /// Ticks finalised without every slot's own input: some input filled in, or a
    /// slot absent (empty or its player inactive). With none, the game equals an
    /// offline run of every player's input.
    pub filled_ticks: u64,
    /// Ticks finalised more than one tick period after their deadline (due time plus
    /// input tolerance): the server fell behind its own clock.
    pub late_ticks: u64,
}

/// Input received for one tick that is not final yet.
#[derive(Debug)]
struct Pending<I> {
    /// Players whose input is in.
    received: u64,
    /// Their input, by slot.
    inputs: Vec<I>,
}

/// The tick clock, the input not yet final, and the verified history.
#[derive(Debug)]
pub(crate) struct Clock<I> {
    finalized: Tick,
    /// Ticks `finalized + 1 ..= finalized + MAX_AHEAD`, oldest first.
    pending: VecDeque<Pending<I>>,
    /// Each slot's last verified input (what `RepeatLast` fills with).
    last: Vec<I>,
    log: InputLog<I>,
    scratch: TickInputs<I>,
    stats: RoomStats,
}

impl<I: Pod + PartialEq> Clock<I> {
    /// A clock at tick 0 for the room `config` describes.
    pub(super) fn new(config: &RoomConfig) -> Result<Clock<I>, RoomConfigError> {
        let players = config.players as usize;
        let history = config.ticks_in(config.history).max(1);
        let scratch =
            TickInputs::new(players).map_err(|_| RoomConfigError::Players(config.players))?;
        Ok(Clock {
            finalized: 0,
            pending: (0..MAX_AHEAD)
                .map(|_| Pending {
                    received: 0,
                    inputs: vec![I::zeroed(); players],
                })
                .collect(),
            last: vec![I::zeroed(); players],
            log: InputLog::new(players, history),
            scratch,
            stats: RoomStats::default(),
        })
    }

    /// The newest verified tick.
    pub(super) fn finalized(&self) -> Tick {
        self.finalized
    }

    /// The verified input history.
    pub(super) fn log(&self) -> &InputLog<I> {
        &self.log
    }

    /// The oldest tick whose input is still held (1 before any).
    pub(super) fn oldest(&self) -> Tick {
        self.log.oldest().unwrap_or(1)
    }

    /// Whether a frame at `tick` can catch up from the history: every tick after it is
    /// held (or none has been verified yet).
    pub(super) fn covers(&self, tick: Tick) -> bool {
        tick >= self.finalized || self.log.oldest().is_some_and(|o| o <= tick + 1)
    }

    /// Whether the history still holds every tick after `tick`.
    pub(super) fn holds_after(&self, tick: Tick) -> bool {
        self.log.oldest().is_some_and(|o| o <= tick + 1)
    }

    /// What the room has done so far.
    pub(super) fn stats(&self) -> RoomStats {
        RoomStats {
            tick: self.finalized,
            ..self.stats
        }
    }

    /// Takes `player`'s input for consecutive ticks from `first` (`bytes` holds one
    /// input after another). Input for final ticks, too far ahead, or already given is
    /// ignored: the first word for a tick counts.
    pub(super) fn accept(&mut self, player: PlayerId, first: Tick, bytes: &[u8]) {
        let size = size_of::<I>();
        if size == 0 || !bytes.len().is_multiple_of(size) {
            return;
        }
        let p = player.0 as usize;
        for (i, input) in bytes.chunks_exact(size).enumerate() {
            let Some(tick) = first.checked_add(i as u64) else {
                break;
            };
            if tick <= self.finalized || tick > self.finalized + MAX_AHEAD {
                continue;
            }
            let pending = &mut self.pending[(tick - self.finalized - 1) as usize];
            if pending.received & (1 << p) == 0 && p < pending.inputs.len() {
                pending.inputs[p] = bytemuck::pod_read_unaligned(input);
                pending.received |= 1 << p;
            }
        }
    }

    /// Finalises every tick due by `now` in a game started at `started_at`, up to
    /// `end`: a due tick waits for the input of every player in `expected` until its
    /// tolerance deadline. Players in `present` are connected: their missing input is
    /// filled; the others are absent. Returns whether anything was finalised.
    pub(super) fn finalize_due(
        &mut self,
        config: &RoomConfig,
        now: Duration,
        started_at: Duration,
        expected: u64,
        present: u64,
    ) -> bool {
        let before = self.finalized;
        while config.end_tick.is_none_or(|end| self.finalized < end) {
            let tick = self.finalized + 1;
            let due = config.due(started_at, tick);
            if now < due {
                break;
            }
            let all_in = expected & !self.pending[0].received == 0;
            if !all_in && now < due + config.input_tolerance {
                break;
            }
            let deadline = due + config.input_tolerance + config.period();
            self.stats.late_ticks += (now > deadline) as u64;
            self.finalize(config.fill, tick, present);
        }
        self.finalized > before
    }

    fn finalize(&mut self, fill: FillPolicy, tick: Tick, present: u64) {
        let Some(Pending {
            received,
            mut inputs,
        }) = self.pending.pop_front()
        else {
            return;
        };
        self.scratch.reset(tick);
        let mut filled = false;
        for (p, input) in inputs.iter().enumerate() {
            if present & (1 << p) == 0 {
                filled = true;
                continue;
            }
            let input = if received & (1 << p) != 0 {
                *input
            } else {
                filled = true;
                match fill {
                    FillPolicy::RepeatLast => self.last[p],
                    FillPolicy::Default => I::zeroed(),
                }
            };
            self.last[p] = input;
            // Cannot fail: `p` is below the slot count the buffer was made with.
            let _ = self.scratch.set(PlayerId(p as u8), input);
        }
        inputs.fill(I::zeroed());
        self.pending.push_back(Pending {
            received: 0,
            inputs,
        });
        self.stats.filled_ticks += filled as u64;
        // Cannot fail: ticks are pushed in order and the player count matches.
        let _ = self.log.push(&self.scratch);
        self.finalized = tick;
    }

    /// When the next tick needs the clock, given the game started at `started_at` and
    /// the room was last driven at `driven`: its due time, or, when it is already due
    /// and waiting for input, its tolerance deadline. `None` at the end tick.
    pub(super) fn next_deadline(
        &self,
        config: &RoomConfig,
        started_at: Duration,
        driven: Duration,
    ) -> Option<Duration> {
        if config.end_tick.is_some_and(|end| self.finalized >= end) {
            return None;
        }
        let due = config.due(started_at, self.finalized + 1);
        Some(if due <= driven {
            due + config.input_tolerance
        } else {
            due
        })
    }

    /// The verified ticks `from..=to` (those still held), in messages of at most
    /// `per_message` ticks.
    pub(super) fn verified(
        &mut self,
        from: Tick,
        to: Tick,
        per_message: u64,
    ) -> Vec<VerifiedTicks> {
        let row = self.scratch.players() * size_of::<I>();
        let mut batches = Vec::new();
        let mut first = from;
        while first <= to {
            let last = to.min(first + per_message.max(1) - 1);
            let mut ticks = VerifiedTicks {
                first,
                presence: Vec::with_capacity((last - first + 1) as usize),
                inputs: Vec::with_capacity((last - first + 1) as usize * row),
            };
            for tick in first..=last {
                if self.log.read(tick, &mut self.scratch).is_err() {
                    break;
                }
                ticks.presence.push(self.scratch.present_mask());
                ticks
                    .inputs
                    .extend_from_slice(bytemuck::cast_slice(self.scratch.raw()));
            }
            batches.push(ticks);
            first = last + 1;
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickstep_engine::{Checksum, SchemaHash};

    fn config() -> RoomConfig {
        RoomConfig::new(2, "t", SchemaHash::default(), Checksum::default())
    }

    const T0: Duration = Duration::ZERO;

    fn held(clock: &mut Clock<u32>, tick: Tick) -> Vec<Option<u32>> {
        let mut inputs = TickInputs::new(2).unwrap();
        clock.log.read(tick, &mut inputs).unwrap();
        (0..2).map(|p| inputs.get(PlayerId(p)).copied()).collect()
    }

    #[test]
    fn a_tick_is_final_once_due_and_every_expected_input_is_in() {
        let config = config();
        let mut clock = Clock::<u32>::new(&config).unwrap();
        clock.accept(PlayerId(0), 1, bytemuck::bytes_of(&7u32));
        let due = config.due(T0, 1);
        assert!(
            !clock.finalize_due(&config, due, T0, 0b11, 0b11),
            "waits for player 1"
        );
        clock.accept(PlayerId(1), 1, bytemuck::bytes_of(&8u32));
        assert!(!clock.finalize_due(&config, due - Duration::from_millis(1), T0, 0b11, 0b11));
        assert!(clock.finalize_due(&config, due, T0, 0b11, 0b11));
        assert_eq!(clock.finalized(), 1);
        assert_eq!(held(&mut clock, 1), vec![Some(7), Some(8)]);
        assert_eq!(clock.stats().filled_ticks, 0);
    }

    #[test]
    fn late_input_is_filled_at_the_tolerance_and_absent_players_are_left_out() {
        let config = config();
        let mut clock = Clock::<u32>::new(&config).unwrap();
        clock.accept(PlayerId(0), 1, bytemuck::bytes_of(&[5u32, 6]));
        let due = config.due(T0, 1);
        let deadline = due + config.input_tolerance;
        assert!(!clock.finalize_due(&config, deadline - Duration::from_millis(1), T0, 0b11, 0b11));
        assert!(clock.finalize_due(&config, deadline, T0, 0b11, 0b11));
        assert_eq!(
            held(&mut clock, 1),
            vec![Some(5), Some(0)],
            "filled with the last (zero)"
        );
        // Player 1 absent: not waited for, not present.
        clock.finalize_due(&config, config.due(T0, 2), T0, 0b01, 0b01);
        assert_eq!(held(&mut clock, 2), vec![Some(6), None]);
        assert_eq!(clock.stats().filled_ticks, 2);
    }

    #[test]
    fn input_for_final_or_far_ticks_and_repeats_do_not_count() {
        let config = config();
        let mut clock = Clock::<u32>::new(&config).unwrap();
        clock.accept(PlayerId(0), 1, bytemuck::bytes_of(&1u32));
        clock.accept(PlayerId(0), 1, bytemuck::bytes_of(&9u32));
        clock.accept(PlayerId(1), 1, bytemuck::bytes_of(&2u32));
        clock.accept(PlayerId(0), MAX_AHEAD + 5, bytemuck::bytes_of(&3u32));
        clock.accept(PlayerId(0), 1, &[1, 2, 3]);
        clock.finalize_due(&config, config.due(T0, 1), T0, 0b11, 0b11);
        assert_eq!(
            held(&mut clock, 1),
            vec![Some(1), Some(2)],
            "the first word counts"
        );
        clock.accept(PlayerId(0), 1, bytemuck::bytes_of(&4u32));
        assert_eq!(
            held(&mut clock, 1),
            vec![Some(1), Some(2)],
            "final ticks stay"
        );
    }

    #[test]
    fn the_clock_stops_at_the_end_tick() {
        let mut config = config();
        config.end_tick = Some(3);
        let mut clock = Clock::<u32>::new(&config).unwrap();
        clock.finalize_due(&config, Duration::from_secs(10), T0, 0, 0b11);
        assert_eq!(clock.finalized(), 3);
        assert_eq!(
            clock.next_deadline(&config, T0, Duration::from_secs(10)),
            None
        );
        let batches = clock.verified(1, 3, 2);
        assert_eq!(batches.len(), 2);
        assert_eq!((batches[0].first, batches[0].presence.len()), (1, 2));
        assert_eq!(batches[1].inputs.len(), 8);
    }
}
