//! The floor `bench server` measures the server against: the CPU a plain UDP echo
//! spends on this machine for the same traffic (each player sends one datagram a tick
//! and gets one back, rooms spread over the tick) with no QUIC, encryption or room.
//! A server whose rooms cost one datagram each way per player and tick cannot go
//! below it on this kernel, and the ratio to it holds across the busy and quiet hours
//! of a shared machine where the absolute figure does not.

use indicatif::ProgressBar;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};
use tickstep_net::metrics::thread_cpu;

/// Bytes of each echoed datagram: about a QUIC datagram carrying a tick's input.
const DATAGRAM_BYTES: usize = 64;
/// The echo is sent to from at most this many sockets (players share them beyond).
const MAX_SOCKETS: usize = 1024;
/// Sending runs this long before the measured window.
const WARM_UP: Duration = Duration::from_millis(500);

/// Where the echo thread is: warming up, measuring, or done.
const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;

/// What the echo did in the measured window.
pub(crate) struct UdpFloor {
    /// Room-ticks echoed: datagrams echoed over players per room.
    pub(crate) room_ticks: f64,
    /// The echo's CPU per room-tick, microseconds; `None` where a thread's CPU time
    /// cannot be read.
    pub(crate) us_per_room_tick: Option<f64>,
}

/// Measures the floor over `window` of `rooms` rooms of `players` sending at
/// `tick_rate`, showing the seconds measured on `bar`.
pub(crate) fn measure(
    rooms: u32,
    players: u8,
    tick_rate: u32,
    window: Duration,
    bar: &ProgressBar,
) -> Result<UdpFloor, String> {
    let failed = |e: std::io::Error| format!("the UDP floor: {e}");
    let echo = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(failed)?;
    echo.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(failed)?;
    let to = echo.local_addr().map_err(failed)?;
    let senders = (rooms as usize * usize::from(players)).min(MAX_SOCKETS);
    let sockets = (0..senders)
        .map(|_| {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            socket.connect(to)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(failed)?;

    let phase = Arc::new(AtomicU8::new(WARMING));
    let echoing = std::thread::spawn({
        let phase = phase.clone();
        move || run_echo(&echo, &phase)
    });
    let period = Duration::from_secs(1) / tick_rate;
    let began = Instant::now();
    let mut measuring_since = None;
    let mut buffer = [0u8; DATAGRAM_BYTES];
    let mut player = 0usize;
    'ticks: for tick in 0u32.. {
        for room in 0..rooms {
            let offset = period.mul_f64(f64::from(room) / f64::from(rooms));
            wait_until(began + period * tick + offset);
            for _ in 0..players {
                let socket = &sockets[player % senders];
                player = player.wrapping_add(1);
                // A datagram the kernel had no room for is one the echo never sees.
                let _ = socket.send(&[1; DATAGRAM_BYTES]);
                while socket.recv(&mut buffer).is_ok() {}
            }
            match measuring_since {
                None if began.elapsed() >= WARM_UP => {
                    phase.store(MEASURING, Ordering::Release);
                    measuring_since = Some(Instant::now());
                }
                Some(since) if since.elapsed() >= window => break 'ticks,
                Some(since) => bar.set_position(since.elapsed().as_secs()),
                None => {}
            }
        }
    }
    phase.store(DONE, Ordering::Release);
    let (datagrams, cpu) = echoing
        .join()
        .map_err(|_| "the UDP floor's echo thread panicked".to_string())?
        .map_err(failed)?;
    let room_ticks = datagrams as f64 / f64::from(players);
    Ok(UdpFloor {
        room_ticks,
        us_per_room_tick: cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / room_ticks.max(1.0)),
    })
}

/// Echoes every datagram to its sender until `phase` says done; returns how many it
/// echoed while measuring and the CPU that took (`None` without a thread CPU clock).
fn run_echo(echo: &UdpSocket, phase: &AtomicU8) -> std::io::Result<(u64, Option<Duration>)> {
    let mut buffer = [0u8; 1500];
    let mut echoed = 0u64;
    let mut measuring: Option<(u64, Option<Duration>)> = None;
    loop {
        match phase.load(Ordering::Acquire) {
            DONE => break,
            MEASURING if measuring.is_none() => measuring = Some((echoed, thread_cpu())),
            _ => {}
        }
        match echo.recv_from(&mut buffer) {
            Ok((length, from)) => {
                echo.send_to(&buffer[..length], from)?;
                echoed += 1;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    let Some((from, cpu_then)) = measuring else {
        return Ok((0, None));
    };
    let cpu = cpu_then
        .zip(thread_cpu())
        .map(|(then, now)| now.saturating_sub(then));
    Ok((echoed - from, cpu))
}

/// Waits for `due`: asleep while it is more than 2 ms away, then giving way to other
/// threads, so the datagrams leave on time without holding a core the echo needs.
fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_millis(2) {
            std::thread::sleep(left - Duration::from_millis(1));
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_sees_the_schedule_and_costs_some_cpu() {
        // 3 rooms of 2 players at 60 Hz for 1 s: 180 room-ticks, 360 datagrams.
        let floor = measure(3, 2, 60, Duration::from_secs(1), &ProgressBar::hidden()).unwrap();
        assert!(
            (150.0..=200.0).contains(&floor.room_ticks),
            "{} room-ticks",
            floor.room_ticks
        );
        if cfg!(target_os = "linux") {
            let us = floor.us_per_room_tick.expect("Linux has thread CPU clocks");
            // Two datagrams in and out: more than nothing, less than the 17 ms a
            // room-tick lasts.
            assert!(us > 0.0 && us < 16_000.0, "{us} us per room-tick");
        }
    }
}
