//! `--threads N`: how many threads simulate (the arena's units steer and move in
//! parallel chunks; the result is the same for any count).

use clap::Args;

/// The thread-count flag of the commands that simulate offline.
#[derive(Args, Clone, Copy, Debug)]
pub struct ThreadArgs {
    /// Threads that simulate (default: every core). Any count gives the same checksum.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

impl ThreadArgs {
    /// The thread count: the flag, or every core.
    pub fn count(&self) -> usize {
        self.threads.map_or_else(all_cores, usize::from)
    }

    /// Runs `work` on a pool of [`ThreadArgs::count`] threads.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, String> {
        in_pool(self.count(), work)
    }
}

/// Every core this process may use.
pub fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `work` on a new pool of `threads` threads (the stepping happens inside the pool,
/// so parallel queries hand chunks to its other threads without a context switch).
pub fn in_pool<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> Result<T, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("sim-{i}"))
        // The whole command runs on the pool (a session, TLS, snapshot restores): give
        // its threads a main thread's stack, not rayon's 2 MiB.
        .stack_size(8 << 20)
        .build()
        .map_err(|e| format!("cannot start {threads} simulation threads: {e}"))?;
    Ok(pool.install(work))
}
