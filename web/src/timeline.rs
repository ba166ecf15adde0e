//! The page's timeline: joins, drops, waits for snapshots, resyncs and catch-ups, one
//! line each, stamped with the page's time.

use std::collections::VecDeque;
use std::time::Duration;
use tickstep_session::ClientEvent;

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
        let since = |from: Option<Duration>| from.map(|at| now.saturating_sub(at).as_millis());
        let line = match event {
            ClientEvent::WaitingForSnapshot => {
                self.since = Some(now);
                event.to_string()
            }
            ClientEvent::Resynced { .. } => {
                let waited = since(self.since.replace(now));
                let waited = waited.map_or(String::new(), |ms| format!(" after {ms} ms"));
                format!("{event}{waited}")
            }
            ClientEvent::CaughtUp { .. } => {
                let took = since(self.since.take());
                format!(
                    "{event}{}",
                    took.map_or(String::new(), |ms| format!(" in {ms} ms"))
                )
            }
            ClientEvent::CatchUpProgress { .. }
            | ClientEvent::InputLate { .. }
            | ClientEvent::OwnInputReplaced { .. } => return,
            _ => event.to_string(),
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
