//! `InputLog`: verified input by tick, compact and bounded, with random access.
//!
//! Consecutive ticks whose input is identical (held keys, idle players, absent players)
//! share one run, so a repeated tick costs a counter increment, not another copy.
//! Commands, rare and discrete, are kept apart by tick and do not break runs. The log
//! keeps at most `history` ticks: pushing past that evicts the oldest, and asking for
//! an evicted tick is a clear error (the caller needs a snapshot instead).

use bytemuck::Pod;
use std::collections::VecDeque;
use tickstep_engine::{PlayerId, Tick, TickInputs};

/// Why the log could not answer or accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputLogError {
    /// The tick was evicted (older than the history kept).
    #[error(
        "input for tick {tick} is no longer held (oldest held is {oldest}); restore a snapshot instead"
    )]
    Evicted {
        /// The tick asked for.
        tick: Tick,
        /// The oldest tick still held.
        oldest: Tick,
    },
    /// The tick has not been verified yet.
    #[error("input for tick {tick} has not arrived (newest is {newest:?})")]
    NotYet {
        /// The tick asked for.
        tick: Tick,
        /// The newest tick held, if any.
        newest: Option<Tick>,
    },
    /// Input must be pushed for consecutive ticks.
    #[error("input for tick {got} pushed, but the log expects tick {expected}")]
    OutOfOrder {
        /// The tick the log expects next.
        expected: Tick,
        /// The tick pushed.
        got: Tick,
    },
    /// The input has a different number of player slots than the log.
    #[error("input has {got} player slots, the log {expected}")]
    PlayerCount {
        /// The log's player slots.
        expected: usize,
        /// The input's.
        got: usize,
    },
}

/// A run of consecutive ticks with identical input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first: Tick,
    len: u64,
    present: u64,
    replaced: u64,
}

/// A command and the tick it landed on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Command {
    tick: Tick,
    player: PlayerId,
    bytes: Vec<u8>,
}

/// Verified input by tick: compact, bounded, randomly accessible.
#[derive(Clone, Debug)]
pub struct InputLog<I> {
    players: usize,
    history: u64,
    runs: VecDeque<Run>,
    /// `players` inputs per run, in run order.
    inputs: VecDeque<I>,
    /// Commands of the ticks held, in tick order.
    commands: VecDeque<Command>,
    /// Ticks held (the sum of the runs' lengths).
    ticks: u64,
}

impl<I: Pod + PartialEq> InputLog<I> {
    /// An empty log for `players` slots keeping at most `history` ticks (at least 1).
    pub fn new(players: usize, history: u64) -> InputLog<I> {
        InputLog {
            players,
            history: history.max(1),
            runs: VecDeque::new(),
            inputs: VecDeque::new(),
            commands: VecDeque::new(),
            ticks: 0,
        }
    }

    /// Player slots per tick.
    pub fn players(&self) -> usize {
        self.players
    }

    /// Most ticks kept.
    pub fn history(&self) -> u64 {
        self.history
    }

    /// The oldest tick held.
    pub fn oldest(&self) -> Option<Tick> {
        self.runs.front().map(|run| run.first)
    }

    /// The newest tick held.
    pub fn newest(&self) -> Option<Tick> {
        self.runs.back().map(|run| run.first + (run.len - 1))
    }

    /// Ticks held.
    pub fn len(&self) -> u64 {
        self.ticks
    }

    /// True when no tick is held.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Runs stored (one per change of input): the log's real size.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Appends the verified input of the tick after the newest (any tick when empty),
    /// evicting the oldest tick if the log is full.
    pub fn push(&mut self, inputs: &TickInputs<I>) -> Result<(), InputLogError> {
        if inputs.players() != self.players {
            return Err(InputLogError::PlayerCount {
                expected: self.players,
                got: inputs.players(),
            });
        }
        if let Some(newest) = self.newest()
            && Some(inputs.tick()) != newest.checked_add(1)
        {
            return Err(InputLogError::OutOfOrder {
                expected: newest.saturating_add(1),
                got: inputs.tick(),
            });
        }
        let (present, replaced) = (inputs.present_mask(), inputs.replaced_mask());
        self.commands
            .extend(inputs.commands().map(|(player, bytes)| Command {
                tick: inputs.tick(),
                player,
                bytes: bytes.to_vec(),
            }));
        let repeats = self.runs.back().is_some_and(|run| {
            run.present == present
                && run.replaced == replaced
                && self
                    .inputs
                    .range(self.inputs.len() - self.players..)
                    .eq(inputs.raw())
        });
        if repeats {
            return self.repeat_newest();
        }
        self.runs.push_back(Run {
            first: inputs.tick(),
            len: 1,
            present,
            replaced,
        });
        self.inputs.extend(inputs.raw().iter().copied());
        self.count_new_tick();
        Ok(())
    }

    /// Appends the tick after the newest with the newest tick's input and no commands
    /// (a replay's "same as before" record).
    pub fn repeat_newest(&mut self) -> Result<(), InputLogError> {
        let Some(run) = self.runs.back_mut() else {
            return Err(InputLogError::NotYet {
                tick: 0,
                newest: None,
            });
        };
        if run.first.checked_add(run.len).is_none() {
            let last = u64::MAX;
            return Err(InputLogError::OutOfOrder {
                expected: last,
                got: last,
            });
        }
        run.len += 1;
        self.count_new_tick();
        Ok(())
    }

    /// Counts a tick just added, evicting the oldest if the log is now over its history.
    fn count_new_tick(&mut self) {
        self.ticks += 1;
        if self.ticks > self.history {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(front) = self.runs.front_mut() {
            front.first += 1;
            front.len -= 1;
            self.ticks -= 1;
            if front.len == 0 {
                self.runs.pop_front();
                self.inputs.drain(..self.players);
            }
        }
        let oldest = self.oldest().unwrap_or(Tick::MAX);
        while self.commands.front().is_some_and(|c| c.tick < oldest) {
            self.commands.pop_front();
        }
    }

    /// Writes the input of `tick` into `out` (allocation-free).
    pub fn read(&self, tick: Tick, out: &mut TickInputs<I>) -> Result<(), InputLogError> {
        let (Some(oldest), Some(newest)) = (self.oldest(), self.newest()) else {
            return Err(InputLogError::NotYet { tick, newest: None });
        };
        if tick < oldest {
            return Err(InputLogError::Evicted { tick, oldest });
        }
        if tick > newest {
            let newest = Some(newest);
            return Err(InputLogError::NotYet { tick, newest });
        }
        if out.players() != self.players {
            return Err(InputLogError::PlayerCount {
                expected: self.players,
                got: out.players(),
            });
        }
        // Runs are in tick order: the run holding `tick` is the last starting at or before it.
        let index = self.runs.partition_point(|run| run.first <= tick) - 1;
        let run = self.runs[index];
        out.reset(tick);
        let base = index * self.players;
        for player in 0..self.players {
            if run.present & (1 << player) != 0 {
                // Cannot fail: `player` is below the slot count, which matches.
                let _ = out.set(PlayerId(player as u8), self.inputs[base + player]);
            }
        }
        out.set_masks(run.present, run.replaced);
        let first = self.commands.partition_point(|c| c.tick < tick);
        for command in self.commands.range(first..).take_while(|c| c.tick == tick) {
            // Cannot fail: pushed from a tick that held it.
            let _ = out.push_command(command.player, &command.bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick_inputs(tick: Tick, values: [u32; 2], present: u64) -> TickInputs<u32> {
        let mut inputs = TickInputs::new(2).unwrap();
        inputs.reset(tick);
        for p in 0..2u8 {
            if present & (1 << p) != 0 {
                inputs.set(PlayerId(p), values[p as usize]).unwrap();
            }
        }
        inputs
    }

    #[test]
    fn repeated_input_shares_a_run_and_reads_back_exactly() {
        let mut log = InputLog::new(2, 100);
        for tick in 1..=10 {
            let value = if tick <= 6 { 5 } else { tick as u32 };
            log.push(&tick_inputs(tick, [value, 1], 0b11)).unwrap();
        }
        assert_eq!(log.runs(), 5, "ticks 1-6 share one run");
        let mut out = TickInputs::new(2).unwrap();
        for tick in 1..=10 {
            log.read(tick, &mut out).unwrap();
            let value = if tick <= 6 { 5 } else { tick as u32 };
            assert_eq!(out, tick_inputs(tick, [value, 1], 0b11));
        }
    }

    #[test]
    fn presence_changes_break_runs() {
        let mut log = InputLog::new(2, 100);
        log.push(&tick_inputs(1, [5, 0], 0b01)).unwrap();
        log.push(&tick_inputs(2, [5, 0], 0b11)).unwrap();
        let mut out = TickInputs::new(2).unwrap();
        log.read(1, &mut out).unwrap();
        assert_eq!(out.get(PlayerId(1)), None);
        log.read(2, &mut out).unwrap();
        assert_eq!(out.get(PlayerId(1)), Some(&0));
    }

    #[test]
    fn history_evicts_the_oldest_with_a_clear_error() {
        let mut log = InputLog::new(2, 3);
        for tick in 5..=9 {
            log.push(&tick_inputs(tick, [tick as u32, 0], 0b11))
                .unwrap();
        }
        assert_eq!(
            (log.oldest(), log.newest(), log.len()),
            (Some(7), Some(9), 3)
        );
        let mut out = TickInputs::new(2).unwrap();
        assert_eq!(
            log.read(6, &mut out),
            Err(InputLogError::Evicted { tick: 6, oldest: 7 })
        );
        assert_eq!(
            log.read(10, &mut out),
            Err(InputLogError::NotYet {
                tick: 10,
                newest: Some(9)
            })
        );
        assert!(log.read(8, &mut out).is_ok());
        assert_eq!(
            log.push(&tick_inputs(12, [0, 0], 0)),
            Err(InputLogError::OutOfOrder {
                expected: 10,
                got: 12
            })
        );
    }

    #[test]
    fn replaced_inputs_and_commands_read_back_and_leave_with_their_ticks() {
        let mut log = InputLog::new(2, 3);
        for tick in 1..=5 {
            let mut inputs = tick_inputs(tick, [1, 1], 0b01);
            inputs.set_replaced(PlayerId(1), 1).unwrap();
            if tick % 2 == 1 {
                inputs.push_command(PlayerId(0), &[tick as u8]).unwrap();
            }
            log.push(&inputs).unwrap();
        }
        assert_eq!(log.runs(), 1, "commands do not break runs");
        let mut out = TickInputs::new(2).unwrap();
        log.read(5, &mut out).unwrap();
        assert_eq!(out.replaced_mask(), 0b10);
        assert_eq!(
            out.commands().collect::<Vec<_>>(),
            vec![(PlayerId(0), &[5u8][..])]
        );
        log.read(4, &mut out).unwrap();
        assert_eq!(out.command_count(), 0);
        assert_eq!(
            log.commands.len(),
            2,
            "tick 1's command left with tick 1 and 2"
        );
    }

    /// One step of a log's life: a tick pushed (each player's value from a small
    /// alphabet, so runs form and break; a player absent, replaced, or sending a
    /// command now and then), or the newest tick repeated.
    #[derive(Clone, Debug)]
    enum Step {
        Push {
            values: [u32; 3],
            absent: u8,
            replaced: u8,
            command: Option<u8>,
        },
        Repeat,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (
                proptest::array::uniform3(0u32..3),
                prop_oneof![6 => Just(0u8), 1 => 0u8..8],
                prop_oneof![6 => Just(0u8), 1 => 0u8..8],
                proptest::option::weighted(0.1, any::<u8>()),
            )
                .prop_map(|(values, absent, replaced, command)| Step::Push {
                    values,
                    absent,
                    replaced,
                    command,
                }),
            1 => Just(Step::Repeat),
        ]
    }

    proptest::proptest! {
        /// Against a model that keeps every tick's input whole: whatever the pattern of
        /// repeats, changes, absences, commands and evictions, every tick held reads
        /// back as pushed, and every other one is refused with the right error.
        #[test]
        fn the_log_reads_back_what_a_plain_list_of_ticks_holds(
            history in 1u64..40,
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let mut log = InputLog::<u32>::new(3, history);
            let mut model: VecDeque<TickInputs<u32>> = VecDeque::new();
            let mut tick: Tick = 999;
            for step in steps {
                tick += 1;
                let inputs = match step {
                    Step::Push { values, absent, replaced, command } => {
                        let mut inputs = TickInputs::new(3).unwrap();
                        inputs.reset(tick);
                        for p in 0..3u8 {
                            let player = PlayerId(p);
                            if replaced & (1 << p) != 0 {
                                inputs.set_replaced(player, values[p as usize]).unwrap();
                            } else if absent & (1 << p) == 0 {
                                inputs.set(player, values[p as usize]).unwrap();
                            }
                        }
                        if let Some(byte) = command {
                            inputs.push_command(PlayerId(byte % 3), &[byte]).unwrap();
                        }
                        log.push(&inputs).unwrap();
                        inputs
                    }
                    Step::Repeat => {
                        let Some(newest) = model.back() else {
                            proptest::prop_assert!(log.repeat_newest().is_err());
                            tick -= 1;
                            continue;
                        };
                        let mut inputs = TickInputs::new(3).unwrap();
                        inputs.reset(tick);
                        for p in 0..3u8 {
                            let player = PlayerId(p);
                            if let Some(&value) = newest.get(player) {
                                inputs.set(player, value).unwrap();
                            }
                        }
                        inputs.set_masks(newest.present_mask(), newest.replaced_mask());
                        log.repeat_newest().unwrap();
                        inputs
                    }
                };
                model.push_back(inputs);
                if model.len() as u64 > history {
                    model.pop_front();
                }
                let oldest = model.front().unwrap().tick();
                let newest = model.back().unwrap().tick();
                proptest::prop_assert_eq!(
                    (log.oldest(), log.newest(), log.len()),
                    (Some(oldest), Some(newest), model.len() as u64)
                );
                let mut out = TickInputs::new(3).unwrap();
                for expected in &model {
                    log.read(expected.tick(), &mut out).unwrap();
                    proptest::prop_assert_eq!(&out, expected);
                }
                proptest::prop_assert_eq!(
                    log.read(oldest - 1, &mut out),
                    Err(InputLogError::Evicted { tick: oldest - 1, oldest })
                );
                proptest::prop_assert_eq!(
                    log.read(newest + 1, &mut out),
                    Err(InputLogError::NotYet { tick: newest + 1, newest: Some(newest) })
                );
            }
        }
    }

    #[test]
    fn eviction_inside_a_long_run_keeps_the_rest() {
        let mut log = InputLog::new(2, 4);
        for tick in 1..=10 {
            log.push(&tick_inputs(tick, [7, 7], 0b11)).unwrap();
        }
        assert_eq!((log.runs(), log.oldest(), log.len()), (1, Some(7), 4));
    }
}
