//! The page's timeline: joins, drops, waits for snapshots, resyncs and catch-ups, one
//! line each, stamped with the page's time.

use std::collections::VecDeque;
use std::time::Duration;
use tickstep_session::{ClientEvent, Entry};

/// Lines kept for the page at most (older ones are dropped unread).
const KEEP: usize = 256;

/// Lines not yet read by the page, and when the current wait or catch-up began.
#[derive(Default)]
pub struct Timeline {
    lines: VecDeque<String>,
    /// When the client began waiting for a snapshot (or, once entered, catching up).
    since: Option<Duration>,
}

impl Timeline {
    /// Adds the line `event` makes, if it makes one.
    pub fn record(&mut self, now: Duration, event: &ClientEvent) {
        let line = match event {
            ClientEvent::Joined { player, entry } => {
                let entry = match entry {
                    Entry::Lobby => "waiting in the lobby".to_string(),
                    Entry::FromStart => "entering from tick 0".to_string(),
                    Entry::LocalSnapshot { tick } => {
                        format!("restoring its snapshot of tick {tick}")
                    }
                    Entry::AwaitSnapshot => "a snapshot is on its way".to_string(),
                };
                format!("joined as player {}: {entry}", player.0)
            }
            ClientEvent::Started => "game started".into(),
            ClientEvent::WaitingForSnapshot => {
                self.since = Some(now);
                "waiting for a snapshot".into()
            }
            ClientEvent::Resynced {
                tick,
                source,
                bytes,
            } => {
                let waited = self
                    .since
                    .map(|since| now.saturating_sub(since).as_millis());
                self.since = Some(now);
                let waited = waited.map_or(String::new(), |ms| format!(" after {ms} ms"));
                format!("resynced at tick {tick} from a {source} snapshot ({bytes} bytes){waited}")
            }
            ClientEvent::CaughtUp { ticks } => {
                let took = self
                    .since
                    .take()
                    .map(|since| now.saturating_sub(since).as_millis());
                let took = took.map_or(String::new(), |ms| format!(" in {ms} ms"));
                format!("caught up: {ticks} ticks{took}")
            }
            ClientEvent::Reconnecting {
                attempt,
                after,
                reason,
            } => format!(
                "connection lost ({reason}); attempt {attempt} in {} ms",
                after.as_millis()
            ),
            ClientEvent::Desync { tick, disagreeing } => {
                let who: Vec<String> = disagreeing.iter().map(|p| p.0.to_string()).collect();
                format!("desync at tick {tick}: player {} disagrees", who.join(", "))
            }
            ClientEvent::StepFailed { tick, error } => {
                format!("step failed at tick {tick}: {error}")
            }
            ClientEvent::Disconnected { reason } => format!("stopped: {reason}"),
            ClientEvent::CatchUpProgress { .. }
            | ClientEvent::InputLate { .. }
            | ClientEvent::OwnInputReplaced { .. } => return,
        };
        let seconds = now.as_millis();
        if self.lines.len() == KEEP {
            self.lines.pop_front();
        }
        self.lines.push_back(format!(
            "{}.{:03} s  {line}",
            seconds / 1000,
            seconds % 1000
        ));
    }

    /// The oldest line not read yet.
    pub fn next_line(&mut self) -> Option<String> {
        self.lines.pop_front()
    }
}
