//! tickstep: a deterministic lockstep simulation engine with snapshot resync.
//!
//! Games embed [`engine`] as their simulation core: every peer runs the same fixed-point
//! simulation over the same verified input and so holds bit-identical state. This crate
//! is the facade: it re-exports the engine and carries the sample game, [`arena`], that
//! the `tickstep` CLI, the tests and the benches run.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arena;
pub mod demo;
pub mod fuzzing;
pub mod load;
pub mod net;
pub mod session;

pub use tickstep_engine as engine;
pub use tickstep_replay as replay;
pub use tickstep_snapshot as snapshot;
