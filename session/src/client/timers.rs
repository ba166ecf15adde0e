//! `Timers`: the client's one timer table. Every deadline the client has is a slot
//! here, set when it starts to matter and cleared when it stops; `poll_timeout` reads
//! the earliest, `handle_timeout` takes the expired ones.

use std::time::Duration;

/// The client's deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Not in the game by then: give up with `StartTimeout`.
    Start,
    /// The next reconnection attempt.
    Retry,
    /// Nothing heard from the server by then: the connection is lost.
    ServerSilent,
    /// Repeat the unanswered hello.
    Hello,
    /// Send an update even if nothing changed.
    Heartbeat,
    /// Ask for the snapshot chunks that have not arrived.
    DownloadStall,
    /// The room's clock reaches the next tick: input for another tick may be due.
    Input,
}

const TIMERS: [Timer; 7] = [
    Timer::Start,
    Timer::Retry,
    Timer::ServerSilent,
    Timer::Hello,
    Timer::Heartbeat,
    Timer::DownloadStall,
    Timer::Input,
];

/// When each timer fires, if set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timers {
    at: [Option<Duration>; 7],
}

impl Timers {
    /// Sets `timer` to fire at `at`.
    pub(super) fn set(&mut self, timer: Timer, at: Duration) {
        self.at[timer as usize] = Some(at);
    }

    /// Clears `timer`.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    /// Clears every timer.
    pub(super) fn stop_all(&mut self) {
        self.at = [None; 7];
    }

    /// When `timer` fires.
    pub(super) fn get(&self, timer: Timer) -> Option<Duration> {
        self.at[timer as usize]
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Duration> {
        self.at.iter().flatten().min().copied()
    }

    /// Clears and returns the earliest timer due at `now`.
    pub(super) fn take_expired(&mut self, now: Duration) -> Option<Timer> {
        let (timer, _) = TIMERS
            .iter()
            .filter_map(|&t| Some((t, self.get(t)?)))
            .filter(|&(_, at)| at <= now)
            .min_by_key(|&(t, at)| (at, t as usize))?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_timers_come_out_earliest_first_and_only_once() {
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Heartbeat, ms(250));
        timers.set(Timer::ServerSilent, ms(100));
        timers.set(Timer::Hello, ms(900));
        assert_eq!(timers.next(), Some(ms(100)));
        assert_eq!(timers.take_expired(ms(50)), None);
        assert_eq!(timers.take_expired(ms(300)), Some(Timer::ServerSilent));
        assert_eq!(timers.take_expired(ms(300)), Some(Timer::Heartbeat));
        assert_eq!(timers.take_expired(ms(300)), None);
        assert_eq!(timers.next(), Some(ms(900)));
        timers.stop_all();
        assert_eq!(timers.next(), None);
    }
}
