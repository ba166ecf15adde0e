//! `InputLog`: verified input by tick, compact and bounded, with random access.
//!
//! Ticks are kept in runs of one presence (the same players present and replaced).
//! A run either shares one set of inputs among all its ticks (held keys, idle or
//! absent players: a repeated tick costs a counter increment, not another copy) or
//! keeps a set per tick (input that changes every tick, as a mouse's aim does: a tick
//! costs its inputs and no run of its own). A run of sets per tick that meets the same
//! input three times in a row gives those ticks a shared run. Commands, rare and
//! discrete, are kept apart by tick and do not break runs. The log keeps at most
//! `history` ticks: pushing past that evicts the oldest, and asking for an evicted tick
//! is a clear error (the caller needs a snapshot instead).

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

/// Consecutive ticks with the same presence, sharing one set of inputs or holding one
/// set per tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first: Tick,
    len: u32,
    /// One set of inputs per tick (else one set for every tick).
    per_tick: bool,
    present: u64,
    replaced: u64,
    /// Where its first tick's inputs are, counting every input the log ever held.
    start: u64,
}

impl Run {
    fn last(&self) -> Tick {
        self.first + u64::from(self.len - 1)
    }
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
    /// The runs' inputs, `players` per set, in run order.
    inputs: VecDeque<I>,
    /// Inputs evicted from the front of `inputs` so far (where `Run::start` counts from).
    evicted: u64,
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
            evicted: 0,
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
        self.runs.back().map(Run::last)
    }

    /// Ticks held.
    pub fn len(&self) -> u64 {
        self.ticks
    }

    /// True when no tick is held.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Runs of identical input held (one per change of input or presence), counted
    /// over the ticks held.
    pub fn runs(&self) -> usize {
        let mut runs = 0;
        let mut previous: Option<(u64, u64, usize)> = None;
        for run in &self.runs {
            let sets = if run.per_tick { run.len } else { 1 };
            for set in 0..sets as usize {
                let at = self.index(run) + set * self.players;
                let changed = previous.is_none_or(|(present, replaced, before)| {
                    (present, replaced) != (run.present, run.replaced)
                        || !self.set_at(before).eq(self.set_at(at))
                });
                runs += usize::from(changed);
                previous = Some((run.present, run.replaced, at));
            }
        }
        runs
    }

    /// Bytes the log holds on the heap (its buffers' capacity, commands included).
    pub fn heap_bytes(&self) -> usize {
        let commands: usize = self.commands.iter().map(|c| c.bytes.capacity()).sum();
        self.runs.capacity() * size_of::<Run>()
            + self.inputs.capacity() * size_of::<I>()
            + self.commands.capacity() * size_of::<Command>()
            + commands
    }

    /// Where `run`'s first set of inputs is in `inputs`.
    fn index(&self, run: &Run) -> usize {
        (run.start - self.evicted) as usize
    }

    /// The set of inputs at `index` of `inputs`.
    fn set_at(&self, index: usize) -> std::collections::vec_deque::Iter<'_, I> {
        self.inputs.range(index..index + self.players)
    }

    /// The newest tick's set of inputs: the last one held.
    fn newest_set(&self) -> usize {
        self.inputs.len() - self.players
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
        let presence_holds = self
            .runs
            .back()
            .is_some_and(|run| (run.present, run.replaced) == (present, replaced));
        if presence_holds && self.set_at(self.newest_set()).eq(inputs.raw()) {
            return self.repeat_newest();
        }
        let start = self.evicted + self.inputs.len() as u64;
        self.inputs.extend(inputs.raw().iter().copied());
        match self.runs.back_mut() {
            // A run of one tick, or of a set per tick, takes another set.
            Some(run) if presence_holds && (run.per_tick || run.len == 1) && run.len < u32::MAX => {
                run.per_tick = true;
                run.len += 1;
            }
            _ => self.runs.push_back(Run {
                first: inputs.tick(),
                len: 1,
                per_tick: false,
                present,
                replaced,
                start,
            }),
        }
        self.count_new_tick();
        Ok(())
    }

    /// Appends the tick after the newest with the newest tick's input and no commands
    /// (a replay's "same as before" record).
    pub fn repeat_newest(&mut self) -> Result<(), InputLogError> {
        let Some(mut run) = self.runs.pop_back() else {
            return Err(InputLogError::NotYet {
                tick: 0,
                newest: None,
            });
        };
        if run.last().checked_add(1).is_none() {
            self.runs.push_back(run);
            let last = u64::MAX;
            return Err(InputLogError::OutOfOrder {
                expected: last,
                got: last,
            });
        }
        let (players, newest) = (self.players, self.newest_set());
        let end = self.evicted + self.inputs.len() as u64;
        // The third tick in a row with one input in a run of a set per tick: the three
        // share a run, served by the second's set (the newest's copy goes).
        let third =
            run.per_tick && run.len >= 2 && self.set_at(newest - players).eq(self.set_at(newest));
        let next = if third {
            self.inputs.truncate(newest);
            if run.len == 2 {
                (run.per_tick, run.len) = (false, 3);
                None
            } else {
                run.len -= 2;
                let (first, start) = (run.last() + 1, end - 2 * players as u64);
                Some(Run {
                    first,
                    len: 3,
                    per_tick: false,
                    start,
                    ..run
                })
            }
        } else {
            // A shared set covers it, or the tick gets a set of its own: a copy.
            if run.per_tick || run.len == u32::MAX {
                for i in newest..newest + players {
                    let input = self.inputs[i];
                    self.inputs.push_back(input);
                }
            }
            if run.len < u32::MAX {
                run.len += 1;
                None
            } else {
                let first = run.last() + 1;
                Some(Run {
                    first,
                    len: 1,
                    per_tick: false,
                    start: end,
                    ..run
                })
            }
        };
        self.runs.push_back(run);
        self.runs.extend(next);
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
        let players = self.players;
        if let Some(front) = self.runs.front_mut() {
            front.first += 1;
            front.len -= 1;
            self.ticks -= 1;
            // A tick's own set goes with it; a shared set with the run's last tick.
            let set_goes = front.per_tick || front.len == 0;
            if front.per_tick {
                front.start += players as u64;
            }
            if front.len == 0 {
                self.runs.pop_front();
            }
            if set_goes {
                self.inputs.drain(..players);
                self.evicted += players as u64;
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
        let run = &self.runs[index];
        let set = if run.per_tick { tick - run.first } else { 0 };
        let base = self.index(run) + set as usize * self.players;
        out.reset(tick);
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
                // The layout: each run's sets follow the last's, and nothing is left over.
                let mut at = log.evicted;
                for run in &log.runs {
                    proptest::prop_assert_eq!(run.start, at);
                    at += 3 * if run.per_tick { u64::from(run.len) } else { 1 };
                }
                proptest::prop_assert_eq!(at, log.evicted + log.inputs.len() as u64);
                let changes = model.iter().zip(model.iter().skip(1)).filter(|(a, b)| {
                    (a.present_mask(), a.replaced_mask(), a.raw())
                        != (b.present_mask(), b.replaced_mask(), b.raw())
                });
                proptest::prop_assert_eq!(log.runs(), 1 + changes.count());
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

    /// What a tick costs: input that changes every tick, its inputs alone (no run of
    /// its own); input held, nothing. Measured on the runs and sets held, not timing.
    #[test]
    fn a_tick_costs_its_inputs_when_they_change_and_nothing_when_they_hold() {
        let mut log = InputLog::new(2, 10_000);
        for tick in 1..=10_000 {
            log.push(&tick_inputs(tick, [tick as u32, 7], 0b11))
                .unwrap();
        }
        assert_eq!((log.runs.len(), log.inputs.len()), (1, 20_000));
        assert_eq!(log.runs(), 10_000, "every tick changed");
        // Their 80,000 bytes of input, in a buffer at most twice that (a run per tick
        // took 32 bytes more a tick).
        assert!(
            log.heap_bytes() <= 2 * 80_000 + 1024,
            "{}",
            log.heap_bytes()
        );
        for tick in 10_001..=20_000 {
            log.push(&tick_inputs(tick, [3, 7], 0b11)).unwrap();
        }
        assert_eq!(log.runs.len(), 1, "held input: one run");
        assert_eq!(log.inputs.len(), 2);
        assert_eq!(log.runs(), 1);
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
