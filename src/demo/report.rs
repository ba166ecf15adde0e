//! What a demo run reports, as stable JSON and as a readable timeline.

use serde::Serialize;
use std::fmt::Write;
use tickstep_engine::{Checksum, Tick};

use crate::session::SnapshotSource;

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
