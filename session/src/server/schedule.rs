//! `Schedule`: when each room next needs driving, in time order, so the server finds
//! the next wake and the rooms due without looking at every room (which, once per
//! message, made a server's work grow with the square of its rooms).
//!
//! A heap of wakes with lazy deletion: filing a room's new wake pushes it, numbered, and
//! leaves the old entry behind, to be skipped when it comes up (its number is no longer
//! the room's). The heap's room is reserved as each room is first filed and filing
//! updates a room's entry in place, so once every room has been filed the schedule
//! allocates nothing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

/// Heap entries per room filed (plus a few spare) before the replaced ones are dropped.
const ENTRIES_PER_ROOM: usize = 2;
const SPARE_ENTRIES: usize = 16;

/// Each room's next wake, by time (a heap, replaced entries included) and by room.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Each room's entry in the heap, if it has one (none when it needs no driving, or
    /// was taken as due and is not filed again yet).
    filed: BTreeMap<Arc<str>, Option<Entry>>,
    /// Entries pushed so far: numbers them, so exactly one is a room's.
    pushed: u64,
}

/// A room's wake as filed: when, and the number of the push that filed it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Duration,
    number: u64,
    room: Arc<str>,
}

impl Schedule {
    /// Files `room`'s next wake (`None`: it needs none), replacing the one filed before.
    pub(super) fn file(&mut self, room: &Arc<str>, wake: Option<Duration>) {
        let filed = self.filed.get(room);
        if filed.is_some_and(|filed| filed.as_ref().map(|entry| entry.at) == wake) {
            return;
        }
        let entry = wake.map(|at| {
            self.pushed += 1;
            Entry {
                at,
                number: self.pushed,
                room: Arc::clone(room),
            }
        });
        match self.filed.get_mut(room) {
            Some(filed) => filed.clone_from(&entry),
            None => {
                self.filed.insert(Arc::clone(room), entry.clone());
                // Room for the most the heap holds: no push allocates afterwards.
                let most = ENTRIES_PER_ROOM * self.filed.len() + SPARE_ENTRIES + 1;
                self.heap.reserve(most.saturating_sub(self.heap.len()));
            }
        }
        if let Some(entry) = entry {
            self.heap.push(Reverse(entry));
            self.compact();
        }
        self.drop_stale();
    }

    /// The earliest wake filed.
    pub(super) fn next(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse(entry)| entry.at)
    }

    /// Moves the rooms due by `now` (their wake at or before it) to `due`, earliest
    /// first, each once, and unfiles them: file each again once it is driven.
    pub(super) fn take_due(&mut self, now: Duration, due: &mut Vec<Arc<str>>) {
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(entry)| entry.at <= now)
        {
            if let Some(Reverse(entry)) = self.heap.pop()
                && let Some(filed) = self.filed.get_mut(&entry.room)
                && filed.as_ref() == Some(&entry)
            {
                *filed = None;
                due.push(entry.room);
            }
        }
        self.drop_stale();
    }

    /// The wake filed for `room`.
    #[cfg(test)]
    pub(super) fn wake_of(&self, room: &str) -> Option<Duration> {
        self.filed.get(room)?.as_ref().map(|entry| entry.at)
    }

    /// Whether a heap entry is a room's filed wake (not a replaced one).
    fn is_current(filed: &BTreeMap<Arc<str>, Option<Entry>>, entry: &Entry) -> bool {
        filed
            .get(&entry.room)
            .is_some_and(|filed| filed.as_ref() == Some(entry))
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

    /// Drops every replaced entry once the heap outgrows its share, in place: it then
    /// holds one entry per room with a wake, at most.
    fn compact(&mut self) {
        if self.heap.len() > ENTRIES_PER_ROOM * self.filed.len() + SPARE_ENTRIES {
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
        assert_eq!(due(&mut schedule, 40), ["a"], "filed at 40 twice, due once");
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

    /// Against a plain map of each room's wake: random filings (earlier, later, the
    /// same, none) and takings, the schedule names the same next wake and the same due
    /// rooms, and its heap stays within its share.
    #[test]
    fn random_filings_agree_with_a_scan_of_every_room() {
        let rooms: Vec<Arc<str>> = (0..12).map(|n| format!("room-{n}").into()).collect();
        let mut rng = tickstep_engine::Rng::new(17);
        let mut schedule = Schedule::default();
        let mut model: BTreeMap<Arc<str>, Option<Duration>> = BTreeMap::new();
        let mut now = 0;
        for _ in 0..20_000 {
            if rng.below(8) == 0 {
                now += u64::from(rng.below(20));
                let mut taken = Vec::new();
                schedule.take_due(ms(now), &mut taken);
                let times: Vec<Duration> = taken.iter().filter_map(|room| model[room]).collect();
                assert!(times.is_sorted(), "earliest first");
                let mut names: Vec<&str> = taken.iter().map(|room| &**room).collect();
                names.sort();
                let due = |(_, wake): &(&Arc<str>, &Option<Duration>)| {
                    wake.is_some_and(|at| at <= ms(now))
                };
                let want: Vec<&str> = model.iter().filter(due).map(|(room, _)| &**room).collect();
                assert_eq!(names, want, "due at {now}");
                for room in &taken {
                    model.insert(room.clone(), None);
                }
            } else {
                let room = &rooms[rng.below(rooms.len() as u32) as usize];
                let wake = match rng.below(5) {
                    0 => None,
                    _ => Some(ms(now + u64::from(rng.below(40)))),
                };
                schedule.file(room, wake);
                model.insert(room.clone(), wake);
            }
            let scanned = model.values().flatten().min().copied();
            assert_eq!(schedule.next(), scanned);
            let most = ENTRIES_PER_ROOM * schedule.filed.len() + SPARE_ENTRIES;
            assert!(
                schedule.heap.len() <= most,
                "{} entries",
                schedule.heap.len()
            );
        }
    }
}
