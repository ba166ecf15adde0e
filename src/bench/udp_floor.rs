//! The baseline `bench server` measures the server against: the CPU a plain UDP echo
//! spends on this machine for traffic shaped like `load`'s (every player's datagram
//! of a tick sent in one burst on one timer, from one socket; an answer to each one,
//! or to every `send_every`-th tick's), with no QUIC, encryption or room, and one
//! `recv_from` and `send_to` per datagram. A server that takes a datagram from each
//! player every tick and answers it pays at least the kernel's part of this.

use indicatif::ProgressBar;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tickstep_net::metrics::thread_cpu;

/// Bytes of each datagram: about a QUIC datagram carrying a tick's input. The first
/// four hold the tick it was sent for.
const DATAGRAM_BYTES: usize = 64;
/// Ticks sent before the measured ones.
const WARM_UP_TICKS: u32 = 30;

/// What the echo did in the measured ticks.
pub(crate) struct UdpFloor {
    /// Datagrams sent for the measured ticks.
    pub(crate) sent: u64,
    /// Of those, datagrams the echo received (the rest the kernel dropped).
    pub(crate) echoed: u64,
    /// The echo's CPU per room-tick (`players` datagrams in), microseconds; `None`
    /// where a thread's CPU time cannot be read or its clock is too coarse to count it.
    pub(crate) us_per_room_tick: Option<f64>,
}

/// Measures the floor over `ticks` ticks of `rooms` rooms of `players` sending at
/// `tick_rate`, answered every `send_every` ticks, showing the ticks sent on `bar`.
pub(crate) fn measure(
    rooms: u32,
    players: u8,
    tick_rate: u32,
    send_every: u32,
    ticks: u32,
    bar: &ProgressBar,
) -> Result<UdpFloor, String> {
    if rooms == 0 || players == 0 || tick_rate == 0 || send_every == 0 || ticks == 0 {
        return Err("the UDP floor needs rooms, players, ticks and a rate".into());
    }
    let failed = |e: std::io::Error| format!("the UDP floor: {e}");
    // The server's socket buffers, deep enough for a tick's burst.
    let echo = tickstep_net::udp_socket((Ipv4Addr::LOCALHOST, 0).into()).map_err(failed)?;
    echo.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(failed)?;
    let sender = tickstep_net::udp_socket((Ipv4Addr::LOCALHOST, 0).into()).map_err(failed)?;
    sender
        .connect(echo.local_addr().map_err(failed)?)
        .map_err(failed)?;
    sender.set_nonblocking(true).map_err(failed)?;

    let window = Window {
        first: WARM_UP_TICKS,
        end: WARM_UP_TICKS + ticks,
        send_every,
    };
    let done = Arc::new(AtomicBool::new(false));
    let echoing = std::thread::Builder::new()
        .name("udp-floor-echo".into())
        .spawn({
            let done = done.clone();
            move || run_echo(&echo, window, &done)
        })
        .map_err(failed)?;
    let period = Duration::from_secs(1) / tick_rate;
    let began = Instant::now();
    let mut datagram = [0u8; DATAGRAM_BYTES];
    let mut answer = [0u8; DATAGRAM_BYTES];
    // One tick past the window tells the echo it has ended.
    for tick in 0..=window.end {
        if echoing.is_finished() {
            break;
        }
        let due = began + period * tick;
        if let Some(left) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
        datagram[..4].copy_from_slice(&tick.to_le_bytes());
        for _ in 0..rooms * u32::from(players) {
            // A datagram the kernel had no room for is one the echo never sees.
            let _ = sender.send(&datagram);
        }
        while sender.recv(&mut answer).is_ok() {}
        bar.set_position(u64::from(tick.saturating_sub(window.first)));
    }
    done.store(true, Ordering::Release);
    let (echoed, cpu) = echoing
        .join()
        .map_err(|_| "the UDP floor's echo thread panicked".to_string())?
        .map_err(failed)?;
    let room_ticks = echoed as f64 / f64::from(players);
    Ok(UdpFloor {
        sent: u64::from(ticks) * u64::from(rooms) * u64::from(players),
        echoed,
        us_per_room_tick: cpu
            .filter(|cpu| !cpu.is_zero() && echoed > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / room_ticks),
    })
}

/// The measured ticks: `first..end`; answers go out for ticks divisible by
/// `send_every`.
#[derive(Clone, Copy)]
struct Window {
    first: u32,
    end: u32,
    send_every: u32,
}

/// Echoes datagrams to their sender (those of every `send_every`-th tick) until a
/// datagram of a tick past the window arrives, or the socket is idle once `done` is
/// set; returns how many of
/// the window's ticks it received and the CPU from the first of them to the first past
/// it (`None` without a thread CPU clock, or when none arrived).
fn run_echo(
    echo: &UdpSocket,
    window: Window,
    done: &AtomicBool,
) -> std::io::Result<(u64, Option<Duration>)> {
    let mut buffer = [0u8; 1500];
    let mut received = 0u64;
    let mut cpu_at_first: Option<Option<Duration>> = None;
    loop {
        let (length, sender) = match echo.recv_from(&mut buffer) {
            Ok(datagram) => datagram,
            // Idle: the tick past the window was dropped, or the sender stopped early.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if done.load(Ordering::Acquire) {
                    break;
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let Some(tick) = buffer[..length]
            .first_chunk::<4>()
            .map(|bytes| u32::from_le_bytes(*bytes))
        else {
            continue;
        };
        if tick >= window.end {
            break;
        }
        if tick >= window.first {
            cpu_at_first.get_or_insert_with(thread_cpu);
            received += 1;
        }
        if tick % window.send_every == 0 {
            echo.send_to(&buffer[..length], sender)?;
        }
    }
    let cpu = cpu_at_first
        .flatten()
        .zip(thread_cpu())
        .map(|(then, now)| now.saturating_sub(then));
    Ok((received, cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_receives_what_was_sent_for_the_window_and_costs_some_cpu() {
        // 3 rooms of 2 players at 60 Hz for 60 ticks: 360 datagrams.
        let floor = measure(3, 2, 60, 1, 60, &ProgressBar::hidden()).unwrap();
        assert_eq!(floor.sent, 360);
        // Loopback drops nothing at this rate unless the machine stalls for long.
        assert!(
            floor.echoed >= 350 && floor.echoed <= 360,
            "{}",
            floor.echoed
        );
        if cfg!(target_os = "linux") {
            // Two datagrams in and out per room-tick: more than nothing, less than
            // the 17 ms a room-tick lasts (`None` only where the clock is coarse).
            if let Some(us) = floor.us_per_room_tick {
                assert!(us > 0.0 && us < 16_000.0, "{us} us per room-tick");
            }
        }
    }

    #[test]
    fn nothing_to_send_is_an_error_not_a_hang() {
        assert!(measure(0, 4, 60, 1, 60, &ProgressBar::hidden()).is_err());
        assert!(measure(1, 0, 60, 1, 60, &ProgressBar::hidden()).is_err());
    }
}
