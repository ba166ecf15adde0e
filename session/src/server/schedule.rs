//! `Schedule`: when each room next needs driving, in time order, so the server finds
//! the next wake and the rooms due without looking at every room (which, once per
//! message, made a server's work grow with the square of its rooms).
//!
//! A heap of wakes with lazy deletion: filing a room's new wake pushes it and leaves the
//! old entry behind, to be skipped when it comes up (the room's filed wake is no longer
//! its time). Pushing and popping reuse the heap's buffer and filing updates a room's
//! entry in place, so a warm schedule allocates nothing however many rooms it holds.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

/// Each room's next wake, by time (a heap, stale entries included) and by room.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    heap: BinaryHeap<Reverse<(Duration, Arc<str>)>>,
    /// Each room's wake in the heap: `None` when it has none (it needs no driving, or
    /// it was taken as due and is not filed again yet).
    filed: BTreeMap<Arc<str>, Option<Duration>>,
}

impl Schedule {
    /// Files `room`'s next wake (`None`: it needs none), replacing the one filed before.
    pub(super) fn file(&mut self, room: &Arc<str>, wake: Option<Duration>) {
        match self.filed.get_mut(room) {
            Some(filed) if *filed == wake => return,
            Some(filed) => *filed = wake,
            None => {
                self.filed.insert(Arc::clone(room), wake);
            }
        }
        if let Some(at) = wake {
            self.heap.push(Reverse((at, Arc::clone(room))));
            self.compact();
        }
        self.drop_stale();
    }

    /// The earliest wake filed.
    pub(super) fn next(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Moves the rooms due by `now` (their wake at or before it) to `due`, earliest
    /// first, each once, and unfiles them: file each again once it is driven.
    pub(super) fn take_due(&mut self, now: Duration, due: &mut Vec<Arc<str>>) {
        while self.heap.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            if let Some(Reverse((at, room))) = self.heap.pop()
                && let Some(filed) = self.filed.get_mut(&room)
                && *filed == Some(at)
            {
                *filed = None;
                due.push(room);
            }
        }
        self.drop_stale();
    }

    /// The wake filed for `room`.
    #[cfg(test)]
    pub(super) fn wake_of(&self, room: &str) -> Option<Duration> {
        self.filed.get(room).copied().flatten()
    }

    /// Whether a heap entry is a room's filed wake (not a replaced one).
    fn is_current(
        filed: &BTreeMap<Arc<str>, Option<Duration>>,
        (at, room): &(Duration, Arc<str>),
    ) -> bool {
        filed.get(room).is_some_and(|wake| *wake == Some(*at))
    }

    /// Pops replaced entries off the top, so the top is a room's filed wake (done after
    /// every change: `next` only looks).
    fn drop_stale(&mut self) {
        while let Some(Reverse(entry)) = self.heap.peek()
            && !Self::is_current(&self.filed, entry)
        {
            self.heap.pop();
        }
    }

    /// Drops every replaced entry once they outnumber the rooms filed (so the heap stays
    /// within twice the rooms, plus a little; in place, no allocation).
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.filed.len() + 16 {
            let filed = &self.filed;
            self.heap
                .retain(|Reverse(entry)| Self::is_current(filed, entry));
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
        assert_eq!(schedule.next(), Some(ms(30)), "taken rooms are unfiled");
        assert_eq!(schedule.wake_of("b"), None);
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
        schedule.file(&a, Some(ms(5)));
        schedule.file(&a, Some(ms(40)));
        assert_eq!(schedule.wake_of("a"), Some(ms(40)));
        assert_eq!(
            due(&mut schedule, 40),
            ["a"],
            "filed at 40 three times, due once"
        );
        // A room taken as due and filed again at the same time comes due again.
        schedule.file(&a, Some(ms(40)));
        assert_eq!(due(&mut schedule, 40), ["a"]);
        schedule.file(&a, None);
        assert_eq!(schedule.next(), None);
        assert_eq!(due(&mut schedule, 1_000), Vec::<String>::new());
    }

    #[test]
    fn replaced_wakes_do_not_pile_up() {
        let rooms: Vec<Arc<str>> = (0..10).map(|n| n.to_string().into()).collect();
        let mut schedule = Schedule::default();
        for step in 0..10_000u64 {
            let room = &rooms[(step % 10) as usize];
            // Each room's wake moves earlier and later, never coming due.
            schedule.file(room, Some(ms(1_000 + step % 7)));
            assert!(
                schedule.heap.len() <= 2 * rooms.len() + 17,
                "{}",
                schedule.heap.len()
            );
        }
        let mut due = Vec::new();
        schedule.take_due(ms(2_000), &mut due);
        assert_eq!(due.len(), 10, "each room once");
    }
}
