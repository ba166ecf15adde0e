//! `Schedule`: when each room next needs driving, in time order, so the server finds
//! the next wake and the rooms due without looking at every room (which, once per
//! message, made a server's work grow with the square of its rooms).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Each room's next wake, filed by time and by name.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    by_time: BTreeSet<(Duration, Arc<str>)>,
    by_room: BTreeMap<Arc<str>, Duration>,
}

impl Schedule {
    /// Files `room`'s next wake (`None`: it needs none), replacing the one filed before.
    pub(super) fn file(&mut self, room: &Arc<str>, wake: Option<Duration>) {
        let filed = self.by_room.get(room).copied();
        if filed == wake {
            return;
        }
        if let Some(at) = filed {
            self.by_time.remove(&(at, Arc::clone(room)));
        }
        match wake {
            Some(at) => {
                self.by_time.insert((at, Arc::clone(room)));
                self.by_room.insert(Arc::clone(room), at);
            }
            None => {
                self.by_room.remove(room);
            }
        }
    }

    /// The earliest wake filed.
    pub(super) fn next(&self) -> Option<Duration> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Moves the rooms due by `now` (their wake at or before it) to `due`, earliest
    /// first, and forgets their wakes: file each again once it is driven.
    pub(super) fn take_due(&mut self, now: Duration, due: &mut Vec<Arc<str>>) {
        while let Some((at, _)) = self.by_time.first()
            && *at <= now
        {
            if let Some((_, room)) = self.by_time.pop_first() {
                self.by_room.remove(&room);
                due.push(room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn due(schedule: &mut Schedule, now: u64) -> Vec<String> {
        let mut due = Vec::new();
        schedule.take_due(ms(now), &mut due);
        due.iter().map(|room| room.to_string()).collect()
    }

    #[test]
    fn rooms_come_due_in_time_order_once_each() {
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let mut schedule = Schedule::default();
        schedule.file(&a, Some(ms(30)));
        schedule.file(&b, Some(ms(10)));
        schedule.file(&c, Some(ms(20)));
        assert_eq!(schedule.next(), Some(ms(10)));
        assert_eq!(due(&mut schedule, 5), Vec::<String>::new(), "none due yet");
        assert_eq!(due(&mut schedule, 20), ["b", "c"], "at its wake is due");
        assert_eq!(schedule.next(), Some(ms(30)), "taken rooms are forgotten");
        assert_eq!(due(&mut schedule, 20), Vec::<String>::new());
        schedule.file(&b, Some(ms(25)));
        assert_eq!(due(&mut schedule, 100), ["b", "a"]);
        assert_eq!(schedule.next(), None);
    }

    #[test]
    fn filing_again_replaces_the_wake_and_none_removes_it() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut schedule = Schedule::default();
        schedule.file(&a, Some(ms(10)));
        schedule.file(&b, Some(ms(20)));
        schedule.file(&a, Some(ms(40)));
        assert_eq!(schedule.next(), Some(ms(20)), "a's old wake is gone");
        schedule.file(&b, None);
        assert_eq!(schedule.next(), Some(ms(40)));
        schedule.file(&a, Some(ms(40)));
        assert_eq!(due(&mut schedule, 40), ["a"], "filed once, not twice");
        schedule.file(&a, None);
        schedule.file(&b, None);
        assert_eq!(schedule.next(), None);
        assert_eq!(due(&mut schedule, 1_000), Vec::<String>::new());
    }
}
