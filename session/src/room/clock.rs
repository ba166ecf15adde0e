//! `Clock`: the room's tick clock and input. Tick T falls due at `zero + T / rate`;
//! it is final once every player it waits for sent input, or once its hold deadline
//! passed, when a connected player's missing input is filled in (flagged `Replaced`);
//! players not there are `Absent`. Commands land on the tick they ask for, or the first
//! open one. Final ticks go into a bounded input history that (re)joiners catch up from.

use std::collections::VecDeque;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{MAX_COMMAND_LEN, MAX_COMMANDS_PER_TICK, PlayerId, Tick, TickInputs};
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
    /// hold): the server fell behind its own clock.
    pub late_ticks: u64,
}

/// What arrived for one tick that is not final yet (its input is in `Clock::inputs`).
#[derive(Debug)]
struct Pending {
    /// Players whose input is in.
    received: u64,
    /// Commands that landed on the tick, in order.
    commands: Vec<(PlayerId, Vec<u8>)>,
}

/// Who a tick is for: per slot, the first tick the player's own input counts from
/// (`None`: not there). A player present from tick F is `Own` or `Replaced` at ticks
/// from F on and `Absent` before.
pub(crate) type PresentFrom = [Option<Tick>];

/// The tick clock, the input not yet final, and the verified history.
#[derive(Debug)]
pub(crate) struct Clock<I> {
    finalized: Tick,
    /// Ticks `finalized + 1 ..= finalized + MAX_AHEAD`, oldest first.
    pending: VecDeque<Pending>,
    /// The input received for those ticks: tick T's, by slot, from
    /// `(T % MAX_AHEAD) * players` (one buffer, not one per tick).
    inputs: Vec<I>,
    players: usize,
    /// Each slot's last verified input (what `RepeatLast` fills with).
    last: Vec<I>,
    log: InputLog<I>,
    scratch: TickInputs<I>,
    stats: RoomStats,
}

impl<I: Input> Clock<I> {
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
                    commands: Vec::new(),
                })
                .collect(),
            inputs: vec![I::zeroed(); MAX_AHEAD as usize * players],
            players,
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

    /// Whether a frame at `tick` can catch up from the history: nothing after it has
    /// been verified yet, or the history still holds every tick after it.
    pub(super) fn covers(&self, tick: Tick) -> bool {
        tick >= self.finalized || self.holds_after(tick)
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
    /// input after another), arriving at `now` in a game whose tick 0 was due at
    /// `zero`. Input for final ticks, too far ahead, or already given is ignored: the
    /// first word for a tick counts. Returns the smallest slack (µs before its tick was
    /// due; negative: late) of the inputs taken.
    pub(super) fn accept(
        &mut self,
        config: &RoomConfig,
        zero: Duration,
        now: Duration,
        player: PlayerId,
        first: Tick,
        bytes: &[u8],
    ) -> Option<i32> {
        let size = size_of::<I>();
        if size == 0 || !bytes.len().is_multiple_of(size) {
            return None;
        }
        let p = player.0 as usize;
        let mut earliest = None;
        for (i, input) in bytes.chunks_exact(size).enumerate() {
            let Some(tick) = first.checked_add(i as u64) else {
                break;
            };
            if tick <= self.finalized || tick > self.finalized + MAX_AHEAD {
                continue;
            }
            let at = self.first_input_of(tick) + p;
            let pending = &mut self.pending[(tick - self.finalized - 1) as usize];
            if pending.received & (1 << p) == 0 && p < self.players {
                self.inputs[at] = bytemuck::pod_read_unaligned(input);
                pending.received |= 1 << p;
                earliest = earliest.or(Some(tick));
            }
        }
        earliest.map(|tick| slack_us(config.due(zero, tick), now))
    }

    /// Puts `player`'s command on `tick`, or on the first open tick after it that has
    /// room when `tick` is final or full. Returns the tick it landed on.
    pub(super) fn command(&mut self, player: PlayerId, tick: Tick, bytes: &[u8]) -> Option<Tick> {
        if bytes.len() > MAX_COMMAND_LEN {
            return None;
        }
        let asked = tick.max(self.finalized + 1) - self.finalized - 1;
        let first = (asked as usize).min(self.pending.len() - 1);
        let slot = (first..self.pending.len())
            .find(|&i| self.pending[i].commands.len() < MAX_COMMANDS_PER_TICK)?;
        self.pending[slot].commands.push((player, bytes.to_vec()));
        Some(self.finalized + 1 + slot as u64)
    }

    /// Takes back the command `player` landed last on `tick` (it could not count).
    pub(super) fn withdraw_command(&mut self, tick: Tick, player: PlayerId) {
        let Some(slot) = tick.checked_sub(self.finalized + 1) else {
            return;
        };
        if let Some(pending) = self.pending.get_mut(slot as usize)
            && let Some(at) = pending.commands.iter().rposition(|(p, _)| *p == player)
        {
            pending.commands.remove(at);
        }
    }

    /// Forgets what `player` sent for the ticks not yet final, and the input it would
    /// be filled with: its seat was freed, and whoever takes the slot next plays its
    /// own input from its first tick, not what the last holder sent ahead (the first
    /// input for a tick counts) or repeats of it.
    pub(super) fn forget(&mut self, player: PlayerId) {
        let p = player.0 as usize;
        if p >= self.players {
            return;
        }
        for pending in &mut self.pending {
            // An input whose bit is clear is never read, and is overwritten when taken.
            pending.received &= !(1 << p);
            pending.commands.retain(|(from, _)| *from != player);
        }
        self.last[p] = I::zeroed();
    }

    /// Finalises every tick due by `now` in a game whose tick 0 was due at `zero`, up
    /// to the end tick: a due tick waits for the input of every player in `expected`
    /// until its hold deadline. `present` says who the tick is for: a present player's
    /// missing input is filled in; the others are absent. Returns whether anything was
    /// finalised.
    pub(super) fn finalize_due(
        &mut self,
        config: &RoomConfig,
        now: Duration,
        zero: Duration,
        expected: u64,
        present: &PresentFrom,
    ) -> bool {
        let before = self.finalized;
        while config.end_tick.is_none_or(|end| self.finalized < end) {
            let tick = self.finalized + 1;
            let due = config.due(zero, tick);
            if now < due {
                break;
            }
            let present = present
                .iter()
                .enumerate()
                .filter(|(_, from)| from.is_some_and(|f| f <= tick))
                .fold(0u64, |mask, (p, _)| mask | 1 << p);
            // A player's input counts (and is waited for) only from its first tick on.
            let all_in = expected & present & !self.pending[0].received == 0;
            if !all_in && now < due + config.hold {
                break;
            }
            let deadline = due + config.hold + config.period();
            self.stats.late_ticks += (now > deadline) as u64;
            self.finalize(config.fill, tick, present);
        }
        self.finalized > before
    }

    /// Where `tick`'s input starts in `inputs`.
    fn first_input_of(&self, tick: Tick) -> usize {
        (tick % MAX_AHEAD) as usize * self.players
    }

    fn finalize(&mut self, fill: FillPolicy, tick: Tick, present: u64) {
        let Some(Pending {
            received,
            mut commands,
        }) = self.pending.pop_front()
        else {
            return;
        };
        let first = self.first_input_of(tick);
        let inputs = &mut self.inputs[first..first + self.players];
        self.scratch.reset(tick);
        let mut filled = false;
        for (p, input) in inputs.iter().enumerate() {
            let player = PlayerId(p as u8);
            if present & (1 << p) == 0 {
                filled = true;
                continue;
            }
            // Cannot fail: `p` is below the slot count the buffer was made with.
            if received & (1 << p) != 0 {
                self.last[p] = *input;
                let _ = self.scratch.set(player, *input);
            } else {
                filled = true;
                let input = match fill {
                    FillPolicy::RepeatLast => self.last[p],
                    FillPolicy::Default => I::zeroed(),
                };
                self.last[p] = input;
                let _ = self.scratch.set_replaced(player, input);
            }
        }
        for (player, bytes) in commands.drain(..) {
            // Cannot fail: at most MAX_COMMANDS_PER_TICK commands of checked length.
            let _ = self.scratch.push_command(player, &bytes);
        }
        inputs.fill(I::zeroed());
        self.pending.push_back(Pending {
            received: 0,
            commands,
        });
        self.stats.filled_ticks += filled as u64;
        // Cannot fail: ticks are pushed in order and the player count matches.
        let _ = self.log.push(&self.scratch);
        self.finalized = tick;
    }

    /// When the next tick needs the clock, given tick 0 was due at `zero` and the room
    /// was last driven at `driven`: its due time, or, when it is already due and
    /// waiting for input, its hold deadline. `None` at the end tick.
    pub(super) fn next_deadline(
        &self,
        config: &RoomConfig,
        zero: Duration,
        driven: Duration,
    ) -> Option<Duration> {
        if config.end_tick.is_some_and(|end| self.finalized >= end) {
            return None;
        }
        let due = config.due(zero, self.finalized + 1);
        Some(if due <= driven {
            due + config.hold
        } else {
            due
        })
    }

    /// Refills `ticks` with the verified ticks from `first` towards `last` (those still
    /// held), as many as fit in a message of about `max_bytes`; none once `first` is
    /// no longer held or not yet verified.
    pub(super) fn verified_into(
        &mut self,
        ticks: &mut VerifiedTicks,
        first: Tick,
        last: Tick,
        max_bytes: usize,
    ) {
        ticks.refill_from_log(&self.log, first, last, max_bytes, &mut self.scratch);
    }
}

/// µs from `now` until `due` (negative: `due` has passed), saturated to an `i32`.
pub(crate) fn slack_us(due: Duration, now: Duration) -> i32 {
    let micros = due.as_micros() as i128 - now.as_micros() as i128;
    micros.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickstep_engine::InputStatus;

    fn config() -> RoomConfig {
        RoomConfig::new(2, "t", &crate::test_game::frame(1))
    }

    const T0: Duration = Duration::ZERO;
    const MS: Duration = Duration::from_millis(1);
    const BOTH: [Option<Tick>; 2] = [Some(1), Some(1)];

    fn read(clock: &mut Clock<u32>, tick: Tick) -> TickInputs<u32> {
        let mut inputs = TickInputs::new(2).unwrap();
        clock.log.read(tick, &mut inputs).unwrap();
        inputs
    }

    fn held(clock: &mut Clock<u32>, tick: Tick) -> Vec<Option<u32>> {
        let inputs = read(clock, tick);
        (0..2).map(|p| inputs.get(PlayerId(p)).copied()).collect()
    }

    fn accept(
        clock: &mut Clock<u32>,
        now: Duration,
        p: u8,
        first: Tick,
        inputs: &[u32],
    ) -> Option<i32> {
        let config = config();
        clock.accept(
            &config,
            T0,
            now,
            PlayerId(p),
            first,
            bytemuck::cast_slice(inputs),
        )
    }

    #[test]
    fn a_tick_is_final_once_due_and_every_expected_input_is_in() {
        let config = config();
        let mut clock = Clock::<u32>::new(&config).unwrap();
        accept(&mut clock, T0, 0, 1, &[7]);
        let due = config.due(T0, 1);
        assert!(
            !clock.finalize_due(&config, due, T0, 0b11, &BOTH),
            "waits for player 1"
        );
        accept(&mut clock, T0, 1, 1, &[8]);
        assert!(!clock.finalize_due(&config, due - MS, T0, 0b11, &BOTH));
        assert!(clock.finalize_due(&config, due, T0, 0b11, &BOTH));
        assert_eq!(clock.finalized(), 1);
        assert_eq!(held(&mut clock, 1), vec![Some(7), Some(8)]);
        assert_eq!(clock.stats().filled_ticks, 0);
    }

    #[test]
    fn late_input_is_replaced_at_the_hold_and_absent_players_are_left_out() {
        let config = config();
        let mut clock = Clock::<u32>::new(&config).unwrap();
        accept(&mut clock, T0, 0, 1, &[5, 6]);
        let due = config.due(T0, 1);
        let deadline = due + config.hold;
        assert!(!clock.finalize_due(&config, deadline - MS, T0, 0b11, &BOTH));
        assert!(clock.finalize_due(&config, deadline, T0, 0b11, &BOTH));
        let tick1 = read(&mut clock, 1);
        assert_eq!(
            held(&mut clock, 1),
            vec![Some(5), Some(0)],
            "filled with the last (zero)"
        );
        assert_eq!(tick1.status(PlayerId(0)), InputStatus::Own);
        assert_eq!(tick1.status(PlayerId(1)), InputStatus::Replaced);
        // Player 1 absent: not waited for, not present.
        clock.finalize_due(&config, config.due(T0, 2), T0, 0b01, &[Some(1), None]);
        assert_eq!(held(&mut clock, 2), vec![Some(6), None]);
        assert_eq!(read(&mut clock, 2).status(PlayerId(1)), InputStatus::Absent);
        assert_eq!(clock.stats().filled_ticks, 2);
    }

    #[test]
    fn a_player_is_absent_before_the_first_tick_its_input_counts_from() {
        let config = config();
        let mut clock = Clock::<u32>::new(&config).unwrap();
        clock.finalize_due(&config, config.due(T0, 3), T0, 0, &[Some(1), Some(3)]);
        let statuses = |clock: &mut Clock<u32>, tick| read(clock, tick).status(PlayerId(1));
        assert_eq!(statuses(&mut clock, 2), InputStatus::Absent);
        assert_eq!(statuses(&mut clock, 3), InputStatus::Replaced);
    }

    #[test]
    fn input_for_final_or_far_ticks_and_repeats_do_not_count_and_slack_is_measured() {
        let config = config();
        let mut clock = Clock::<u32>::new(&config).unwrap();
        let due1 = config.due(T0, 1);
        assert_eq!(accept(&mut clock, due1 - 5 * MS, 0, 1, &[1]), Some(5000));
        assert_eq!(accept(&mut clock, T0, 0, 1, &[9]), None, "already given");
        assert_eq!(
            accept(&mut clock, due1 + 2 * MS, 1, 1, &[2, 3]),
            Some(-2000),
            "late"
        );
        assert_eq!(accept(&mut clock, T0, 0, MAX_AHEAD + 5, &[3]), None);
        assert_eq!(
            clock.accept(&config, T0, T0, PlayerId(0), 1, &[1, 2, 3]),
            None
        );
        clock.finalize_due(&config, due1, T0, 0b11, &BOTH);
        assert_eq!(
            held(&mut clock, 1),
            vec![Some(1), Some(2)],
            "the first word counts"
        );
        accept(&mut clock, T0, 0, 1, &[4]);
        assert_eq!(
            held(&mut clock, 1),
            vec![Some(1), Some(2)],
            "final ticks stay"
        );
    }

    #[test]
    fn commands_land_on_their_tick_or_the_first_open_one_with_room() {
        let config = config();
        let mut clock = Clock::<u32>::new(&config).unwrap();
        clock.finalize_due(&config, config.due(T0, 2), T0, 0, &BOTH);
        assert_eq!(clock.command(PlayerId(0), 5, b"on time"), Some(5));
        assert_eq!(
            clock.command(PlayerId(1), 1, b"late"),
            Some(3),
            "tick 1 is final"
        );
        for _ in 0..MAX_COMMANDS_PER_TICK - 1 {
            clock.command(PlayerId(1), 3, b"");
        }
        assert_eq!(clock.command(PlayerId(0), 3, b"full"), Some(4));
        assert_eq!(
            clock.command(PlayerId(0), 3, &[0; MAX_COMMAND_LEN + 1]),
            None
        );
        clock.finalize_due(&config, config.due(T0, 5), T0, 0, &BOTH);
        let tick3 = read(&mut clock, 3);
        assert_eq!(tick3.commands().next(), Some((PlayerId(1), &b"late"[..])));
        assert_eq!(tick3.command_count(), MAX_COMMANDS_PER_TICK);
        let tick5: Vec<_> = read(&mut clock, 5)
            .commands()
            .map(|(p, b)| (p, b.to_vec()))
            .collect();
        assert_eq!(tick5, vec![(PlayerId(0), b"on time".to_vec())]);
        let mut batch = VerifiedTicks::default();
        clock.verified_into(&mut batch, 3, 5, 1 << 16);
        assert_eq!(batch.commands.len(), MAX_COMMANDS_PER_TICK + 2);
        assert_eq!(
            (batch.commands[0].tick, batch.commands.last().unwrap().tick),
            (3, 5)
        );
    }

    #[test]
    fn the_clock_stops_at_the_end_tick() {
        let mut config = config();
        config.end_tick = Some(3);
        let mut clock = Clock::<u32>::new(&config).unwrap();
        clock.finalize_due(&config, Duration::from_secs(10), T0, 0, &BOTH);
        assert_eq!(clock.finalized(), 3);
        assert_eq!(
            clock.next_deadline(&config, T0, Duration::from_secs(10)),
            None
        );
        let mut batch = VerifiedTicks::default();
        clock.verified_into(&mut batch, 1, 3, 2 * 28);
        assert_eq!((batch.first, batch.len()), (1, 2), "two ticks fit");
        clock.verified_into(&mut batch, 3, 3, 2 * 28);
        assert_eq!((batch.first, batch.inputs.len()), (3, 8));
        assert_eq!(batch.replaced, vec![0b11]);
        clock.verified_into(&mut batch, 4, 4, 2 * 28);
        assert!(batch.is_empty(), "past the end");
    }
}
