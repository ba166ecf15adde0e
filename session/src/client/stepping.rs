//! Stepping the frame over verified input: as fast as it goes while catching up, and
//! paced for an even rate in the host's render loop once in step ([`Playout`]); a
//! checksum snapshot every `checksum_every` ticks; input latency and commands counted
//! as their ticks are stepped.

use bytemuck::Pod;
use std::collections::VecDeque;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{Checksum, Frame, Tick, TickInputs};
use tickstep_replay::InputLogError;

use super::state::{InRoom, LocalFrame, Stage, State};
use super::{Client, ClientEvent, ClientMessage, ClientTransmit, DisconnectReason};

/// Checksum reports repeated in every update (they may be lost).
const REPORTS_KEPT: usize = 8;

/// How far a render loop should step now, and where between the last two frames to
/// draw: see [`Client::playout`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Playout {
    /// The tick the frame should reach now (never past the verified input held).
    pub tick: Tick,
    /// How far past `tick` the room's clock (less the playout delay) is, 0.0 to 1.0:
    /// draw between the frames of `tick` and `tick + 1` by this much.
    pub fraction: f32,
}

impl<G: Pod, I: Input> Client<G, I> {
    /// Steps the frame over buffered verified input with the catch-up runner, at most
    /// `max_ticks` ticks (the host's budget for this call); returns the ticks stepped.
    /// Every `checksum_every` ticks the frame is snapshotted and its checksum reported.
    pub fn advance(&mut self, now: Duration, max_ticks: u64) -> u64 {
        let State::InRoom(in_room) = &mut self.state else {
            return 0;
        };
        let InRoom {
            room,
            live,
            stage,
            snapshots,
            reports,
            handed,
            ..
        } = &mut **in_room;
        let every = room.checksum_every as u64;
        let (input, runner) = match stage {
            Stage::CatchingUp { input, runner } | Stage::Running { input, runner } => {
                (input, runner)
            }
            _ => return 0,
        };
        let from = self.frame.tick();
        let mut stepped = 0;
        while stepped < max_ticks {
            let tick = self.frame.tick();
            let to_report = if every > 0 {
                every - tick % every
            } else {
                u64::MAX
            };
            let slice = (max_ticks - stepped).min(to_report);
            // An input the log no longer holds, or a refused step, stops here: the
            // frame stays at the last good tick. A failed system poisons the frame at
            // the tick it failed: nothing past the tick before it counts.
            let was_poisoned = self.frame.is_poisoned();
            let outcome =
                runner.run_slice(&mut self.simulation, &mut self.frame, &input.log, slice);
            if self.frame.is_poisoned() {
                if !was_poisoned {
                    stepped += self.frame.tick().saturating_sub(tick + 1);
                    let error = outcome.err().map(|e| e.to_string()).unwrap_or_default();
                    let failed = self.frame.tick();
                    self.events.push_back(ClientEvent::StepFailed {
                        tick: failed,
                        error,
                    });
                }
                break;
            }
            let done = self.frame.tick() - tick;
            stepped += done;
            if done > 0 && every > 0 && self.frame.tick().is_multiple_of(every) {
                let kept = self.config.snapshots_kept;
                record_checksum((&mut *snapshots, &mut *reports), &self.frame, kept);
            }
            if done < slice {
                break;
            }
        }
        if stepped == 0 {
            return 0;
        }
        let to = from + stepped;
        while let Some(&(tick, at)) = handed.front()
            && tick <= to
        {
            handed.pop_front();
            self.stats.input_latency.record(now.saturating_sub(at));
        }
        if let Some(own) = self.info.player {
            for tick in (from + 1).max(self.applied_through + 1)..=to {
                self.stats.commands_applied += input.commands_from(tick, own);
            }
        }
        self.applied_through = self.applied_through.max(to);
        self.update_due = true;
        if let Stage::CatchingUp { input, .. } = stage {
            self.events.push_back(ClientEvent::CatchUpProgress {
                done: to - input.base,
                target: *live,
            });
        }
        self.update_running(now);
        self.check_end();
        stepped
    }

    /// Where a render loop should be now: step the frame to `tick` (with
    /// [`Client::advance`]) and draw `fraction` of the way to the next frame. Verified
    /// ticks arrive in bursts under jitter; playing them out a little behind the
    /// room's clock (the one-way trip and twice the jitter) keeps the steps even.
    /// While catching up, or before the room's clock is known, it is the newest tick
    /// held.
    pub fn playout(&self, now: Duration) -> Playout {
        let Some(in_room) = self.in_room() else {
            return Playout {
                tick: self.frame.tick(),
                fraction: 0.0,
            };
        };
        let newest = in_room.stage.input().map_or(0, |i| i.newest());
        let paced = matches!(in_room.stage, Stage::Running { .. })
            .then(|| self.clock.playout(now))
            .flatten();
        match paced {
            Some((tick, fraction)) if tick >= 0 && (tick as u64) < newest => Playout {
                tick: tick as u64,
                fraction,
            },
            _ => Playout {
                tick: newest,
                fraction: 0.0,
            },
        }
    }

    /// Reads the verified input of `tick` (with its flags and commands) into `out`,
    /// while the client holds it: from its entry tick on, for the history kept.
    pub fn read_verified(&self, tick: Tick, out: &mut TickInputs<I>) -> Result<(), InputLogError> {
        match self.in_room().and_then(|r| r.stage.input()) {
            Some(input) => input.log.read(tick, out),
            None => Err(InputLogError::NotYet { tick, newest: None }),
        }
    }

    /// CatchingUp becomes Running within `close_enough` of live; own input then starts
    /// at the first tick it can reach the room in time for.
    pub(super) fn update_running(&mut self, now: Duration) {
        let close_enough = self.config.close_enough;
        let tick = self.frame.tick();
        let reachable = self.input_target(now);
        let Some(in_room) = self.in_room_mut() else {
            return;
        };
        if !matches!(in_room.stage, Stage::CatchingUp { .. }) || tick + close_enough < in_room.live
        {
            return;
        }
        let Stage::CatchingUp { input, runner } =
            std::mem::replace(&mut in_room.stage, Stage::Lobby)
        else {
            return;
        };
        let ticks = tick - input.base;
        in_room.stage = Stage::Running { input, runner };
        let first = reachable.unwrap_or(in_room.live).max(in_room.live);
        in_room.next_input = in_room.next_input.max(first.saturating_add(1));
        self.attempts.count = 0;
        self.update_due = true;
        self.arm_input_timer(now);
        if ticks > 0 {
            self.events.push_back(ClientEvent::CaughtUp { ticks });
        }
    }

    /// At the game's end tick the client leaves on its own.
    pub(super) fn check_end(&mut self) {
        let tick = self.frame.tick();
        if self
            .in_room()
            .and_then(|r| r.end_at)
            .is_some_and(|end| tick >= end)
        {
            self.out
                .push_back(ClientTransmit::Send(ClientMessage::Leave));
            self.stop(DisconnectReason::GameEnded);
        }
    }
}

/// Snapshots the frame at a checksum tick into `snapshots` (reusing the oldest
/// buffer) and queues its checksum report.
fn record_checksum<G: Pod>(
    (snapshots, reports): (&mut VecDeque<LocalFrame>, &mut VecDeque<(Tick, Checksum)>),
    frame: &Frame<G>,
    kept: usize,
) {
    let mut bytes = if snapshots.len() >= kept.max(1) {
        snapshots.pop_front().map(|s| s.bytes).unwrap_or_default()
    } else {
        Vec::new()
    };
    let checksum = tickstep_snapshot::encode(frame, &mut bytes);
    let tick = frame.tick();
    snapshots.push_back(LocalFrame {
        tick,
        checksum,
        bytes,
    });
    if reports.len() >= REPORTS_KEPT {
        reports.pop_front();
    }
    reports.push_back((tick, checksum));
}
