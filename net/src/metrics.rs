//! The server's metrics in Prometheus' text format (version 0.0.4): rooms, players,
//! ticks, late and filled ticks, games, joins and rejoins, drops, catch-ups, snapshot
//! transfers, desyncs, refusals, the transport's messages and bytes, and CPU.

use std::fmt::Write as _;
use std::time::Duration;
use tickstep_session::ServerStats;

use crate::control::TransportStats;
use crate::door::DoorStats;

/// The media type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a metric only goes up or may go both ways.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// The metrics page for `server` and `transport`, with the process's CPU time when
/// known.
pub fn render(
    server: &ServerStats,
    transport: &TransportStats,
    door: &DoorStats,
    cpu: Option<Duration>,
) -> String {
    use Kind::{Counter, Gauge};
    let s = server;
    let t = transport;
    // Refused at the door, or by the server after the hello.
    let refused = s.refusals + door.refused;
    let by_limit = s.refused_by_limit + door.refused;
    let mut metrics: Vec<(&str, Kind, &str, f64)> = vec![
        (
            "tickstep_rooms_open",
            Gauge,
            "Rooms open: in their lobby, playing, or ended with players left.",
            s.rooms_open as f64,
        ),
        (
            "tickstep_rooms_playing",
            Gauge,
            "Rooms whose game is running.",
            s.rooms_playing as f64,
        ),
        (
            "tickstep_connections",
            Gauge,
            "Connections the server holds.",
            s.connections as f64,
        ),
        (
            "tickstep_players_connected",
            Gauge,
            "Players connected to a room.",
            s.players_connected as f64,
        ),
        (
            "tickstep_watchers_connected",
            Gauge,
            "Connections watching a room without a seat.",
            s.watchers_connected as f64,
        ),
        (
            "tickstep_draining",
            Gauge,
            "1 while the server drains (starts no new games).",
            f64::from(u8::from(s.draining)),
        ),
        (
            "tickstep_input_history_bytes",
            Gauge,
            "Bytes the rooms' input histories hold.",
            s.input_history_bytes as f64,
        ),
        (
            "tickstep_ticks_total",
            Counter,
            "Ticks verified, all rooms together.",
            s.ticks as f64,
        ),
        (
            "tickstep_late_ticks_total",
            Counter,
            "Ticks finalised more than a tick period late.",
            s.late_ticks as f64,
        ),
        (
            "tickstep_filled_ticks_total",
            Counter,
            "Ticks with some slot's input filled in.",
            s.filled_ticks as f64,
        ),
        (
            "tickstep_games_started_total",
            Counter,
            "Games started.",
            s.games_started as f64,
        ),
        (
            "tickstep_games_ended_total",
            Counter,
            "Games that reached their end tick.",
            s.games_ended as f64,
        ),
        (
            "tickstep_joins_total",
            Counter,
            "Players seated for the first time in a room.",
            s.joins as f64,
        ),
        (
            "tickstep_rejoins_total",
            Counter,
            "Players seated again in their slot.",
            s.rejoins as f64,
        ),
        (
            "tickstep_watches_total",
            Counter,
            "Connections taken in to watch a room without a seat.",
            s.watches as f64,
        ),
        (
            "tickstep_drops_total",
            Counter,
            "Players whose connection ended while they held a slot.",
            s.drops as f64,
        ),
        (
            "tickstep_catch_ups_total",
            Counter,
            "Players who entered a running game from a snapshot, or rejoined and reran it.",
            s.catch_ups as f64,
        ),
        (
            "tickstep_snapshot_transfers_total",
            Counter,
            "Snapshots sent to joiners.",
            s.snapshot_transfers as f64,
        ),
        (
            "tickstep_snapshot_bytes_total",
            Counter,
            "Bytes of the snapshots sent to joiners.",
            s.snapshot_bytes as f64,
        ),
        (
            "tickstep_buddy_snapshots_rejected_total",
            Counter,
            "Buddy snapshots that did not match the peers' checksums.",
            s.buddy_snapshots_rejected as f64,
        ),
        (
            "tickstep_desyncs_total",
            Counter,
            "Ticks at which players were found to disagree.",
            s.desyncs as f64,
        ),
        (
            "tickstep_refusals_total",
            Counter,
            "Connections and hellos refused (at the door, by a limit or a timeout, or by a room).",
            refused as f64,
        ),
        (
            "tickstep_refused_by_limit_total",
            Counter,
            "Connections, seats and watchers refused by a limit (handshakes, connections, seats and watchers per address, watchers per room).",
            by_limit as f64,
        ),
        (
            "tickstep_handshake_retries_total",
            Counter,
            "Clients asked to prove their address before a handshake (many under way).",
            door.retries as f64,
        ),
        (
            "tickstep_web_visits_failed_total",
            Counter,
            "Browser visits that failed: a malformed or slow request, a failed TLS handshake, no hello in time.",
            door.web_failed as f64,
        ),
        (
            "tickstep_connections_accepted_total",
            Counter,
            "Connections whose handshake completed and whose first message arrived.",
            t.connections_accepted as f64,
        ),
        (
            "tickstep_handshakes_failed_total",
            Counter,
            "Handshakes that failed or timed out.",
            t.handshakes_failed as f64,
        ),
        (
            "tickstep_connections_cut_total",
            Counter,
            "Connections cut: a malformed message, or too far behind.",
            t.connections_cut as f64,
        ),
        (
            "tickstep_messages_received_total",
            Counter,
            "Session messages received.",
            t.messages_in as f64,
        ),
        (
            "tickstep_received_bytes_total",
            Counter,
            "Bytes of the session messages received.",
            t.bytes_in as f64,
        ),
        (
            "tickstep_messages_sent_total",
            Counter,
            "Session messages sent.",
            t.messages_out as f64,
        ),
        (
            "tickstep_sent_bytes_total",
            Counter,
            "Bytes of the session messages sent.",
            t.bytes_out as f64,
        ),
    ];
    if let Some(cpu) = cpu {
        let cpu = cpu.as_secs_f64();
        metrics.push((
            "process_cpu_seconds_total",
            Counter,
            "CPU time of the server process.",
            cpu,
        ));
        if s.ticks > 0 {
            let per_tick = cpu * 1e6 / s.ticks as f64;
            metrics.push((
                "tickstep_cpu_us_per_room_tick",
                Gauge,
                "Process CPU per verified room-tick since start, microseconds.",
                per_tick,
            ));
        }
    }
    let mut page = String::with_capacity(64 * metrics.len());
    for (name, kind, help, value) in metrics {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = write!(
            page,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }
    page
}

/// CPU time this process has used, from its threads' `/proc/self/task/*/schedstat`
/// (Linux, nanoseconds), or from `/proc/self/stat` (10 ms ticks) on a kernel without
/// schedstat; `None` elsewhere. The figure never goes back: it is a counter.
pub fn process_cpu() -> Option<Duration> {
    static MOST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = cpu_of("/proc/self")?.as_nanos().min(u64::MAX as u128) as u64;
    let most = MOST
        .fetch_max(now, std::sync::atomic::Ordering::Relaxed)
        .max(now);
    Some(Duration::from_nanos(most))
}

/// [`process_cpu`] of the process `pid` (of the same user).
pub fn process_cpu_of(pid: u32) -> Option<Duration> {
    cpu_of(&format!("/proc/{pid}"))
}

/// The process's CPU time: the sum of its live threads' schedstat (threads that already
/// ended, or end while being read, are not counted), or its own `stat` where that sum
/// is 0: no thread's schedstat could be read, or the kernel keeps none and prints
/// zeros. A process that has run has a nonzero sum, so a process keeps one source.
fn cpu_of(process: &str) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("{process}/task")).ok()?;
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .fold(0, u64::saturating_add);
    if nanos == 0 {
        return cpu_of_stat(&std::fs::read_to_string(format!("{process}/stat")).ok()?);
    }
    Some(Duration::from_nanos(nanos))
}

/// CPU time the calling thread has used: its `/proc/thread-self/schedstat`
/// (nanoseconds), or its `stat` (10 ms ticks) where the kernel keeps no schedstat;
/// `None` off Linux.
pub fn thread_cpu() -> Option<Duration> {
    let nanos = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .filter(|&nanos| nanos != 0);
    match nanos {
        Some(nanos) => Some(Duration::from_nanos(nanos)),
        None => cpu_of_stat(&std::fs::read_to_string("/proc/thread-self/stat").ok()?),
    }
}

/// Clock ticks per second of `/proc/PID/stat`'s times: `USER_HZ`, 100 on every Linux
/// architecture Rust targets.
const USER_HZ: u64 = 100;

/// User plus system time from the text of `/proc/PID/stat`: fields 14 and 15, counted
/// after the command name, which is in parentheses and may hold spaces and `)`.
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    let (_, fields) = stat.rsplit_once(')')?;
    let mut fields = fields.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    let ticks = user.saturating_add(system);
    Some(Duration::from_millis(ticks.saturating_mul(1000 / USER_HZ)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `name` on `page`, parsed as Prometheus would.
    fn value(page: &str, name: &str) -> Option<f64> {
        page.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_metric_has_help_a_type_and_its_value() {
        let server = ServerStats {
            rooms_open: 3,
            ticks: 1200,
            desyncs: 2,
            refused_by_limit: 4,
            draining: true,
            input_history_bytes: 4096,
            ..ServerStats::default()
        };
        let transport = TransportStats {
            bytes_out: 123_456,
            ..TransportStats::default()
        };
        let door = DoorStats {
            refused: 1,
            retries: 7,
            web_failed: 2,
        };
        let page = render(&server, &transport, &door, Some(Duration::from_millis(600)));
        assert_eq!(value(&page, "tickstep_rooms_open"), Some(3.0));
        assert_eq!(value(&page, "tickstep_ticks_total"), Some(1200.0));
        assert_eq!(value(&page, "tickstep_desyncs_total"), Some(2.0));
        assert_eq!(value(&page, "tickstep_draining"), Some(1.0));
        assert_eq!(value(&page, "tickstep_input_history_bytes"), Some(4096.0));
        assert_eq!(value(&page, "tickstep_sent_bytes_total"), Some(123_456.0));
        assert_eq!(value(&page, "tickstep_refused_by_limit_total"), Some(5.0));
        assert_eq!(
            value(&page, "tickstep_refusals_total"),
            Some(1.0),
            "the door's"
        );
        assert_eq!(value(&page, "tickstep_handshake_retries_total"), Some(7.0));
        assert_eq!(value(&page, "tickstep_web_visits_failed_total"), Some(2.0));
        assert_eq!(value(&page, "process_cpu_seconds_total"), Some(0.6));
        assert_eq!(value(&page, "tickstep_cpu_us_per_room_tick"), Some(500.0));
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(' ').next().unwrap();
            assert!(page.contains(&format!("# HELP {name} ")), "{name}");
            let typed = format!("# TYPE {name} counter");
            let gauge = format!("# TYPE {name} gauge");
            assert!(page.contains(&typed) || page.contains(&gauge), "{name}");
            assert_eq!(
                name.ends_with("_total"),
                page.contains(&typed),
                "{name}: counters and only counters end in _total"
            );
        }
    }

    #[test]
    fn stat_times_are_read_after_the_command_name() {
        // Fields 3.. of a real `/proc/PID/stat`, behind a name with spaces and `) (`.
        let stat = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 520 0 0 0 37 12 0 0 20 0 3 0";
        assert_eq!(cpu_of_stat(stat), Some(Duration::from_millis(490)));
        assert_eq!(cpu_of_stat("4242 (cut) S 1 2"), None);
        assert_eq!(cpu_of_stat("no name"), None);
        if cfg!(target_os = "linux") {
            let own = std::fs::read_to_string("/proc/self/stat").unwrap();
            assert!(cpu_of_stat(&own).is_some());
        }
    }

    #[test]
    fn threads_schedstat_counts_unless_it_sums_to_zero() {
        /// Removes the stand-in directory, even when an assertion fails.
        struct Scratch(std::path::PathBuf);
        impl Drop for Scratch {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let scratch = Scratch(std::env::temp_dir().join(format!(
            "tickstep-cpu-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        )));
        let process = &scratch.0;
        let stat = "7 (x) S 1 7 7 0 -1 0 0 0 0 0 30 20 0 0";
        let write = |thread: &str, schedstat: &str| {
            let task = process.join("task").join(thread);
            std::fs::create_dir_all(&task).unwrap();
            std::fs::write(task.join("schedstat"), schedstat).unwrap();
        };
        std::fs::create_dir_all(process).unwrap();
        std::fs::write(process.join("stat"), stat).unwrap();
        write("7", "0 0 0\n");
        let path = process.to_str().unwrap();
        assert_eq!(
            cpu_of(path),
            Some(Duration::from_millis(500)),
            "zeros: stat"
        );
        write("8", "2500000 0 0\n");
        write("9", "not a number\n");
        assert_eq!(cpu_of(path), Some(Duration::from_micros(2500)), "schedstat");
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        if cfg!(target_os = "linux") {
            let busy: u64 = (0..200_000u64).map(|i| i.wrapping_mul(i) >> 3).sum();
            assert!(busy > 0);
            assert!(process_cpu().is_some_and(|cpu| cpu > Duration::ZERO));
            let me = process_cpu_of(std::process::id());
            assert!(me.is_some_and(|cpu| cpu > Duration::ZERO));
        }
    }

    #[test]
    fn a_thread_counts_its_own_cpu_not_its_neighbours() {
        if !cfg!(target_os = "linux") {
            return;
        }
        // Works until the calling thread's own clock says 50 ms (or 20 s went by).
        fn work_for_50_ms_of_own_cpu() -> Duration {
            let (began, wall) = (thread_cpu().unwrap(), std::time::Instant::now());
            let mut sum = 0u64;
            while thread_cpu().unwrap() - began < Duration::from_millis(50)
                && wall.elapsed() < Duration::from_secs(20)
            {
                sum = (0..100_000u64).fold(sum, |sum, i| std::hint::black_box(sum ^ i));
            }
            thread_cpu().unwrap() - began
        }
        let before = thread_cpu().unwrap();
        let theirs = std::thread::spawn(work_for_50_ms_of_own_cpu)
            .join()
            .unwrap();
        let seen_while_they_worked = thread_cpu().unwrap() - before;
        assert!(theirs >= Duration::from_millis(50), "their clock moved");
        assert!(
            seen_while_they_worked < Duration::from_millis(25),
            "{seen_while_they_worked:?} of their {theirs:?} counted as ours"
        );
        assert!(
            work_for_50_ms_of_own_cpu() >= Duration::from_millis(50),
            "our clock moved"
        );
    }
}
