//! The client's state machine, each state carrying the data valid in it: `Connecting`
//! has nothing yet; `InRoom` has the room's parameters and a [`Stage`] of entering the
//! game, whose variants hold the snapshot download, the verified input and the
//! catch-up runner when, and only when, they exist.

use std::collections::VecDeque;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{Checksum, InputStatus, PlayerId, Tick, TickInputs};
use tickstep_replay::{CatchUp, InputLog};

use super::events::{DisconnectReason, DownloadProgress};
#[cfg(test)]
use crate::protocol::TickCommand;
use crate::protocol::{RoomInfo, SnapshotSource, VerifiedTicks};
use crate::transfer::{Incoming, Outgoing};

/// Where the client is.
pub(crate) enum State<I> {
    /// Not started.
    Idle,
    /// Saying hello (repeated on the `Hello` timer).
    Connecting,
    /// Welcomed into the room.
    InRoom(Box<InRoom<I>>),
    /// Lost; attempt `attempt` starts on the `Retry` timer.
    Reconnecting {
        /// The attempt coming up.
        attempt: u32,
    },
    /// Stopped for good.
    Disconnected(DisconnectReason),
}

/// A welcomed client: the room, its way into the game, and what it exchanges.
pub(crate) struct InRoom<I> {
    /// The room's parameters.
    pub room: RoomInfo,
    /// The newest verified tick the room announced.
    pub live: Tick,
    /// How far into the game.
    pub stage: Stage<I>,
    /// The tick the next own input is for.
    pub next_input: Tick,
    /// Own input the room has not confirmed, by tick (consecutive).
    pub unconfirmed: VecDeque<(Tick, I)>,
    /// Own input handed over and the time it was, until its tick is stepped (for the
    /// input latency).
    pub handed: VecDeque<(Tick, Duration)>,
    /// Recent checksum reports, repeated in every update (they may be lost).
    pub reports: VecDeque<(Tick, Checksum)>,
    /// Snapshots of recent checksum ticks, for buddies, evidence and rejoining.
    pub snapshots: VecDeque<LocalFrame>,
    /// The snapshot being uploaded for the room, by request number.
    pub upload: Option<(u32, Outgoing)>,
    /// The game ends at this tick.
    pub end_at: Option<Tick>,
}

/// An encoded snapshot of one of the client's own verified frames.
pub(crate) struct LocalFrame {
    /// Its tick.
    pub tick: Tick,
    /// Its checksum.
    pub checksum: Checksum,
    /// The snapshot.
    pub bytes: Vec<u8>,
}

/// How far into the game a welcomed client is.
pub(crate) enum Stage<I> {
    /// Waiting for the game to start.
    Lobby,
    /// Waiting for the room to send a snapshot.
    WaitingForSnapshot,
    /// A snapshot is arriving; verified input after its tick is buffered meanwhile.
    Downloading {
        /// The snapshot.
        download: Download,
        /// Verified input from the snapshot's tick on.
        input: VerifiedInput<I>,
    },
    /// The frame runs from `input.base()` and chases live over buffered input.
    CatchingUp {
        /// Verified input from the entry tick on.
        input: VerifiedInput<I>,
        /// Steps the frame over it.
        runner: CatchUp<I>,
    },
    /// In step with the room.
    Running {
        /// Verified input from the entry tick on.
        input: VerifiedInput<I>,
        /// Steps the frame over it.
        runner: CatchUp<I>,
    },
}

impl<I> Stage<I> {
    /// The verified input, once the entry tick is known.
    pub(super) fn input(&self) -> Option<&VerifiedInput<I>> {
        match self {
            Stage::Downloading { input, .. }
            | Stage::CatchingUp { input, .. }
            | Stage::Running { input, .. } => Some(input),
            Stage::Lobby | Stage::WaitingForSnapshot => None,
        }
    }

    /// The tick the frame entered the game at, once it has (the frame holds game
    /// state from then on).
    pub(super) fn entered(&self) -> Option<Tick> {
        match self {
            Stage::CatchingUp { input, .. } | Stage::Running { input, .. } => Some(input.base),
            _ => None,
        }
    }
}

/// A snapshot arriving from the room.
pub(crate) struct Download {
    /// Numbers the transfer.
    pub transfer: u32,
    /// The snapshot's tick.
    pub tick: Tick,
    /// The checksum the peers reported for that tick.
    pub checksum: Checksum,
    /// Where it comes from.
    pub source: SnapshotSource,
    /// The chunks so far.
    pub incoming: Incoming,
}

impl Download {
    /// Its progress, for the host.
    pub(super) fn progress(&self) -> DownloadProgress {
        DownloadProgress {
            tick: self.tick,
            source: self.source,
            chunks: self.incoming.progress(),
        }
    }
}

/// Verified input from a base tick on: what the room broadcast, in order.
pub(crate) struct VerifiedInput<I> {
    /// The tick the input continues from (the frame's entry tick).
    pub base: Tick,
    /// Input for `base + 1 ..`.
    pub log: InputLog<I>,
    scratch: TickInputs<I>,
}

impl<I: Input> VerifiedInput<I> {
    /// Input for `players` slots from `base`, keeping `history` ticks.
    pub(super) fn new(base: Tick, players: usize, history: u64) -> Option<VerifiedInput<I>> {
        Some(VerifiedInput {
            base,
            log: InputLog::new(players, history.max(1)),
            scratch: TickInputs::new(players).ok()?,
        })
    }

    /// The newest tick held (the base when none).
    pub(super) fn newest(&self) -> Tick {
        self.log.newest().unwrap_or(self.base)
    }

    /// How many commands `player` has on `tick` (0 when the tick is not held).
    pub(crate) fn commands_from(&mut self, tick: Tick, player: PlayerId) -> u64 {
        if self.log.read(tick, &mut self.scratch).is_err() {
            return 0;
        }
        self.scratch
            .commands()
            .filter(|(p, _)| *p == player)
            .count() as u64
    }

    /// Takes the ticks of a `Verified` message that continue what is held, up to the
    /// history past `frame_tick` (the frame's tick: what it has yet to step over must
    /// stay held). Returns how many were taken and, of those, the ticks on which `me`'s
    /// input was replaced by the room. Malformed batches are ignored whole.
    pub(super) fn take(
        &mut self,
        ticks: &VerifiedTicks,
        me: Option<PlayerId>,
        frame_tick: Tick,
    ) -> Taken {
        let mut taken = Taken::default();
        let row = self.scratch.players() * size_of::<I>();
        let count = ticks.presence.len();
        let last = ticks.first.saturating_add(count as u64).saturating_sub(1);
        // Every tick of the batch is numbered below u64::MAX (so `first + i` is).
        let well_formed = row > 0
            && ticks.first.checked_add(count as u64).is_some()
            && ticks.inputs.len() == count * row
            && ticks.replaced.len() == count
            && ticks.commands.iter().all(|c| {
                (ticks.first..=last).contains(&c.tick)
                    && (c.player.0 as usize) < self.scratch.players()
            });
        if !well_formed {
            return taken;
        }
        let rows = ticks.presence.iter().zip(&ticks.replaced);
        for (i, ((&present, &replaced), bytes)) in
            rows.zip(ticks.inputs.chunks_exact(row)).enumerate()
        {
            let tick = ticks.first + i as u64;
            if tick != self.newest().saturating_add(1) {
                continue;
            }
            if tick > frame_tick.saturating_add(self.log.history()) {
                // Taking it would push out input the frame has yet to step over; not
                // acknowledged, so the room sends it again once the frame moved on.
                break;
            }
            self.scratch.reset(tick);
            for (p, input) in bytes.chunks_exact(size_of::<I>()).enumerate() {
                if present & (1 << p) != 0 {
                    // Cannot fail: `p` is below the slot count.
                    let _ = self
                        .scratch
                        .set(PlayerId(p as u8), bytemuck::pod_read_unaligned(input));
                }
            }
            self.scratch.set_masks(present, replaced);
            for command in ticks.commands.iter().filter(|c| c.tick == tick) {
                // A command the engine cannot hold is one the room would not send.
                let _ = self.scratch.push_command(command.player, &command.bytes);
            }
            if me.is_some_and(|me| self.scratch.status(me) == InputStatus::Replaced) {
                taken.replaced_own.push(tick);
            }
            // Cannot fail: in order, and the slot count matches.
            let _ = self.log.push(&self.scratch);
            taken.ticks += 1;
        }
        taken
    }
}

/// What taking a batch of verified ticks brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Ticks taken.
    pub ticks: u64,
    /// Of those, the ticks on which the client's own input was replaced.
    pub replaced_own: Vec<Tick>,
}

/// How a client's reconnection attempts stand: how many in a row, and when the
/// current run of attempts began (the start timeout counts from then).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attempts {
    /// Unexpected losses since the client last ran in step.
    pub count: u32,
    /// When the current attempts began.
    pub began: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: Tick, inputs: &[[u32; 2]]) -> VerifiedTicks {
        VerifiedTicks {
            first,
            presence: vec![0b11; inputs.len()],
            replaced: vec![0; inputs.len()],
            inputs: inputs
                .iter()
                .flat_map(|row| bytemuck::bytes_of(row).to_vec())
                .collect(),
            commands: Vec::new(),
        }
    }

    #[test]
    fn verified_input_takes_only_what_continues_the_log() {
        let me = Some(PlayerId(1));
        let mut input = VerifiedInput::<u32>::new(10, 2, 100).unwrap();
        assert_eq!(input.newest(), 10);
        assert_eq!(input.take(&batch(12, &[[1, 2]]), me, 0).ticks, 0, "a gap");
        let mut three = batch(10, &[[0, 0], [3, 4], [5, 6]]);
        three.replaced[2] = 0b10;
        three.commands.push(TickCommand {
            tick: 12,
            player: PlayerId(0),
            bytes: b"go".to_vec(),
        });
        let taken = input.take(&three, me, 0);
        assert_eq!(
            (taken.ticks, taken.replaced_own),
            (2, vec![12]),
            "overlap trimmed"
        );
        assert_eq!(input.newest(), 12);
        let mut row = TickInputs::new(2).unwrap();
        input.log.read(12, &mut row).unwrap();
        assert_eq!(row.raw(), &[5, 6]);
        assert_eq!(row.status(PlayerId(1)), InputStatus::Replaced);
        assert_eq!(input.commands_from(12, PlayerId(0)), 1);
        let mut broken = batch(13, &[[7, 8]]);
        broken.inputs.pop();
        assert_eq!(input.take(&broken, me, 0).ticks, 0, "malformed");
        let mut stray = batch(13, &[[7, 8]]);
        stray.commands.push(TickCommand {
            tick: 20,
            player: PlayerId(0),
            bytes: Vec::new(),
        });
        assert_eq!(
            input.take(&stray, me, 0).ticks,
            0,
            "a command outside the batch"
        );
        // Ticks numbered past u64::MAX (a hostile server's): refused, no overflow.
        let wrapping = batch(u64::MAX - 1, &[[1, 1], [2, 2], [3, 3]]);
        assert_eq!(input.take(&wrapping, me, 0).ticks, 0, "past the last tick");
        assert_eq!(input.newest(), 12);
    }
}
