//! tickstep-replay: verified input over time.
//!
//! - [`InputLog`]: verified input by tick, compact (repeats cost a counter), bounded,
//!   randomly accessible.
//! - Replay files ([`ReplayWriter`], [`Replay`]): a stream of self-delimiting,
//!   individually checksummed records (header, initial snapshot, input, checksums every
//!   K ticks, checkpoints every C ticks), readable up to the last complete record after a
//!   crash.
//! - [`verify`] re-simulates a replay and reports the first divergent tick with a
//!   field-level diff against the nearest recorded checkpoint; [`seek`] reaches any tick
//!   at a cost of at most C ticks.
//! - [`CatchUp`] fast-forwards a restored frame over buffered input toward a moving live
//!   tick, in slices bounded by ticks or time.
//!
//! What this crate pursues, in order: never trusting a byte it reads; losing nothing a
//! crash did not cut off; catch-up as fast as the simulation can step.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod catch_up;
mod file;
mod input_log;
mod playback;
pub mod record;

pub use catch_up::{CatchUp, CatchUpError, CatchUpStatus};
pub use file::{
    Checkpoint, REPLAY_MAGIC, REPLAY_VERSION, Replay, ReplayError, ReplayHeader, ReplayWriter,
};
pub use input_log::{InputLog, InputLogError};
pub use playback::{Verification, seek, verify};
