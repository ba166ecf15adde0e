//! What a demo run reports, as stable JSON and as a readable timeline.

use bytemuck::Pod;
use serde::Serialize;
use std::fmt::Write;
use std::time::Duration;
use tickstep_engine::Input;
use tickstep_engine::{Checksum, PlayerId, Tick, checksum};

use super::DemoOptions;
use tickstep_arena::ArenaRun;
use tickstep_session::{
    Client, ClientEvent, ClientState, ClientStats, LatencyHistogram, RoomEvent, SnapshotSource,
};

/// What a run left behind: the raw material of a report.
pub(crate) struct RunRecord {
    /// The server's events, timed.
    pub server_events: Vec<(Duration, RoomEvent)>,
    /// Each client's.
    pub clients: Vec<ClientRecord>,
    /// Ticks without every player's own input.
    pub filled_ticks: u64,
    /// Bytes the network carried.
    pub bytes_sent: u64,
}

/// One client's part of a [`RunRecord`].
pub(crate) struct ClientRecord {
    pub events: Vec<(Duration, ClientEvent)>,
    /// Wall-clock time of each finished catch-up, in order.
    pub catch_up_walls: Vec<Duration>,
    pub player: Option<PlayerId>,
    pub final_tick: Tick,
    pub checksum: Checksum,
    pub state: ClientState,
    pub stats: ClientStats,
}

impl ClientRecord {
    /// The record of `client` as it ended.
    pub fn of<G: Pod, I: Input>(
        client: &Client<G, I>,
        events: Vec<(Duration, ClientEvent)>,
        catch_up_walls: Vec<Duration>,
    ) -> ClientRecord {
        ClientRecord {
            events,
            catch_up_walls,
            player: client.player(),
            final_tick: client.frame().tick(),
            checksum: checksum(client.frame()),
            state: client.state().clone(),
            stats: client.stats(),
        }
    }
}

/// One moment of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// Milliseconds since the room opened.
    pub at_ms: u64,
    /// The room's newest verified tick then.
    pub tick: Tick,
    /// The player concerned, if any.
    pub player: Option<u8>,
    /// What happened.
    pub what: String,
}

impl TimelineEntry {
    /// `what` happened to `player` (or the room) at `at`, when the room was at `tick`.
    pub fn new(at: Duration, tick: Tick, player: Option<u8>, what: String) -> TimelineEntry {
        TimelineEntry {
            at_ms: at.as_millis() as u64,
            tick,
            player,
            what,
        }
    }
}

/// One entry into a running game from a snapshot (or from tick 0 for a late joiner).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Resync {
    /// The tick the client's frame started from.
    pub at_tick: Tick,
    /// `start`, `local` or `buddy`.
    pub snapshot_source: SnapshotSource,
    /// The snapshot's size (0 from start).
    pub snapshot_bytes: u64,
    /// Ticks simulated to reach live.
    pub caught_up_ticks: u64,
    /// Wall-clock milliseconds that catch-up took.
    pub catch_up_ms: f64,
}

/// How one client ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientReport {
    /// Its player slot.
    pub player: u8,
    /// Its frame's tick at the end.
    pub final_tick: Tick,
    /// Its frame's checksum at the end.
    pub checksum: Checksum,
    /// Its state at the end.
    pub state: String,
    /// Every re-entry into the game.
    pub resyncs: Vec<Resync>,
    /// Ticks on which the room filled in this player's input while it was connected.
    pub own_input_filled: u64,
    /// The client's input lead at the end, in ticks.
    pub input_lead_ticks: u64,
    /// From handing input to the client to stepping its tick there.
    pub input_latency_ms: Percentiles,
    /// Commands the player sent.
    pub commands_sent: u64,
    /// Own commands seen on the ticks the client stepped.
    pub commands_applied: u64,
}

/// The median and the 99th percentile of a distribution, in milliseconds (null when
/// nothing was measured).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: Option<u64>,
    /// The 99th percentile.
    pub p99: Option<u64>,
}

impl Percentiles {
    /// The percentiles of `histogram`.
    pub fn of(histogram: &LatencyHistogram) -> Percentiles {
        let ms = |p| histogram.percentile(p).map(|d| d.as_millis() as u64);
        Percentiles {
            p50: ms(50),
            p99: ms(99),
        }
    }
}

/// A desync the room found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DesyncReport {
    /// The tick.
    pub tick: Tick,
    /// The players whose checksum differed from the majority.
    pub disagreeing: Vec<u8>,
}

/// The outcome of a demo.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemoReport {
    /// Every client ended at `final_tick` on the same checksum, with no desync.
    pub converged: bool,
    /// The game's last tick.
    pub final_tick: Tick,
    /// Each client's end.
    pub clients: Vec<ClientReport>,
    /// Desyncs found.
    pub desyncs: Vec<DesyncReport>,
    /// Ticks without every player's own input (filled in because late, or a player
    /// absent).
    pub filled_ticks: u64,
    /// The offline run's checksum (`tickstep run`), when no input was filled in so the
    /// networked game must equal it.
    pub offline_checksum: Option<Checksum>,
    /// Bytes the network carried.
    pub bytes_sent: u64,
    /// What happened, in order.
    pub timeline: Vec<TimelineEntry>,
}

impl DemoReport {
    /// The timeline and the verdict as text.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for entry in &self.timeline {
            let who = entry
                .player
                .map_or("room    ".to_string(), |p| format!("player {p}"));
            let _ = writeln!(
                text,
                "{:>8.2}s  tick {:>6}  {who}  {}",
                entry.at_ms as f64 / 1000.0,
                entry.tick,
                entry.what
            );
        }
        for client in &self.clients {
            let _ = writeln!(
                text,
                "player {}: tick {} checksum {} ({})",
                client.player, client.final_tick, client.checksum, client.state
            );
            let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
            let _ = writeln!(
                text,
                "          input lead {} ticks, latency p50 {} p99 {}, own input filled on {} ticks, novas {} sent {} applied",
                client.input_lead_ticks,
                ms(client.input_latency_ms.p50),
                ms(client.input_latency_ms.p99),
                client.own_input_filled,
                client.commands_sent,
                client.commands_applied
            );
        }
        if let Some(offline) = self.offline_checksum {
            let same = self.clients.iter().all(|c| c.checksum == offline);
            let verdict = if same { "equals" } else { "DIFFERS from" };
            let _ = writeln!(text, "{verdict} the offline run's checksum {offline}");
        } else {
            let _ = writeln!(
                text,
                "{} ticks lacked some player's own input (late or absent), so the game differs from the offline run; record it (--record) and check it with `tickstep replay verify`",
                self.filled_ticks
            );
        }
        let verdict = if self.converged {
            format!(
                "converged: every client ended at tick {} on the same checksum",
                self.final_tick
            )
        } else {
            "NOT converged: clients ended on different ticks or checksums".to_string()
        };
        text.push_str(&verdict);
        text
    }
}

/// The room tick at time `at`, when tick 0 was due at `zero` (the timeline's clock).
fn tick_at(options: &DemoOptions, zero: Option<Duration>, at: Duration) -> Tick {
    let Some(zero) = zero else { return 0 };
    let ticks = at.saturating_sub(zero).as_micros() as u64 * options.tick_rate as u64 / 1_000_000;
    ticks.min(options.ticks)
}

impl DemoReport {
    /// The report on a run of `options`: `timeline` holds the demo's own actions; the
    /// rest comes from what the run recorded.
    pub(crate) fn build(
        options: &DemoOptions,
        record: &RunRecord,
        mut timeline: Vec<TimelineEntry>,
    ) -> DemoReport {
        let started = record.server_events.iter().find_map(|(at, e)| match e {
            RoomEvent::GameStarted { delay } => Some(*at + *delay),
            _ => None,
        });
        let at = |time: Duration| tick_at(options, started, time);
        let mut desyncs = Vec::new();
        for (time, event) in &record.server_events {
            let (player, what) = match event {
                RoomEvent::GameStarted { delay } => (
                    None,
                    format!("game started: tick 0 in {} ms", delay.as_millis()),
                ),
                RoomEvent::BuddyAsked { buddy, tick, .. } => (
                    Some(buddy.0),
                    format!("asked as buddy for the snapshot of tick {tick}"),
                ),
                RoomEvent::BuddySnapshotRejected { buddy, tick, .. } => (
                    Some(buddy.0),
                    format!(
                        "buddy snapshot of tick {tick} REJECTED: it does not match the peers' checksums"
                    ),
                ),
                RoomEvent::SlotFreed { player, .. } => {
                    (Some(player.0), "slot freed (PlayerTTL passed)".into())
                }
                RoomEvent::Desync {
                    tick, disagreeing, ..
                } => {
                    desyncs.push(DesyncReport {
                        tick: *tick,
                        disagreeing: disagreeing.iter().map(|p| p.0).collect(),
                    });
                    (
                        None,
                        format!("DESYNC at tick {tick}: players {disagreeing:?} disagree"),
                    )
                }
                RoomEvent::PlayerLeft {
                    player,
                    reason: Some(reason),
                    ..
                } => (
                    Some(player.0),
                    format!("server: connection gone ({reason}); slot kept"),
                ),
                _ => continue,
            };
            timeline.push(TimelineEntry::new(*time, at(*time), player, what));
        }
        let mut clients = Vec::new();
        for (i, client) in record.clients.iter().enumerate() {
            let player = client.player.unwrap_or(PlayerId(i as u8)).0;
            let mut resyncs: Vec<Resync> = Vec::new();
            let mut walls = client.catch_up_walls.iter();
            let mut joined_before = false;
            for (time, event) in &client.events {
                let what = match event {
                    ClientEvent::Joined { entry, .. } => {
                        if joined_before && matches!(entry, tickstep_session::Entry::FromStart) {
                            resyncs.push(resync(0, SnapshotSource::Start, 0));
                        }
                        joined_before = true;
                        event.to_string()
                    }
                    ClientEvent::Resynced {
                        tick,
                        source,
                        bytes,
                    } => {
                        resyncs.push(resync(*tick, *source, *bytes));
                        event.to_string()
                    }
                    ClientEvent::CaughtUp { ticks } => {
                        let wall = walls.next().copied().unwrap_or_default();
                        let ms = wall.as_secs_f64() * 1000.0;
                        if let Some(last) = resyncs.last_mut() {
                            last.caught_up_ticks = *ticks;
                            last.catch_up_ms = (ms * 100.0).round() / 100.0;
                        }
                        format!("{event} in {ms:.1} ms")
                    }
                    ClientEvent::WaitingForSnapshot
                    | ClientEvent::Watching { .. }
                    | ClientEvent::Reconnecting { .. }
                    | ClientEvent::Disconnected { .. }
                    | ClientEvent::StepFailed { .. } => event.to_string(),
                    ClientEvent::Desync { .. }
                    | ClientEvent::Started
                    | ClientEvent::CatchUpProgress { .. }
                    | ClientEvent::InputLate { .. }
                    | ClientEvent::OwnInputReplaced { .. } => continue,
                };
                timeline.push(TimelineEntry::new(*time, at(*time), Some(player), what));
            }
            clients.push(ClientReport {
                player,
                final_tick: client.final_tick,
                checksum: client.checksum,
                state: format!("{:?}", client.state),
                resyncs,
                own_input_filled: client.stats.own_input_replaced,
                input_lead_ticks: client.stats.input_lead,
                input_latency_ms: Percentiles::of(&client.stats.input_latency),
                commands_sent: client.stats.commands_sent,
                commands_applied: client.stats.commands_applied,
            });
        }
        clients.sort_by_key(|c| c.player);
        timeline.sort_by_key(|e| (e.at_ms, e.player));
        let filled_ticks = record.filled_ticks;
        let offline_checksum = (filled_ticks == 0).then(|| offline(options)).flatten();
        let final_tick = options.ticks;
        let converged = desyncs.is_empty()
            && clients
                .iter()
                .all(|c| c.final_tick == final_tick && c.checksum == clients[0].checksum)
            && offline_checksum.is_none_or(|sum| clients.iter().all(|c| c.checksum == sum));
        DemoReport {
            converged,
            final_tick,
            clients,
            desyncs,
            filled_ticks,
            offline_checksum,
            bytes_sent: record.bytes_sent,
            timeline,
        }
    }
}

fn resync(at_tick: Tick, snapshot_source: SnapshotSource, snapshot_bytes: u64) -> Resync {
    Resync {
        at_tick,
        snapshot_source,
        snapshot_bytes,
        caught_up_ticks: 0,
        catch_up_ms: 0.0,
    }
}

/// The offline run's checksum at the demo's last tick.
fn offline(options: &DemoOptions) -> Option<tickstep_engine::Checksum> {
    let mut run = ArenaRun::new(&options.game).ok()?;
    run.run_to(options.ticks, |_| {}).ok()?;
    Some(checksum(run.frame()))
}
