//! tickstep-engine: the deterministic core of tickstep.
//!
//! A game describes its state as [`Pod`] components in a [`Schema`],
//! keeps it in a [`Frame`], and advances it one tick at a time with a [`Simulation`] of
//! [`System`]s over each tick's verified [`TickInputs`]. Peers that start from the same
//! frame and apply the same input hold the same bytes, which [`checksum`] proves.
//!
//! What this crate pursues, in order:
//! 1. **Determinism.** No floats ([`Fp`] is fixed-point), no clocks, no threads, no
//!    randomly seeded hashing; iteration order is a pure function of the operations
//!    applied. Debug and release builds agree bit for bit.
//! 2. **Memcpy-class state.** A frame is a few flat byte columns: cloning, checksumming
//!    and snapshotting it are copies and hashes, never per-entity work.
//! 3. **Speed** of the game's own systems: queries walk columns side by side.
//!
//! ```
//! use bytemuck::{Pod, Zeroable};
//! use tickstep_engine::{checksum, Fp, Frame, PlayerId, Schema, Simulation, TickInputs, WorldError};
//!
//! #[derive(Clone, Copy, Pod, Zeroable)]
//! #[repr(C)]
//! struct Height(Fp);
//!
//! let schema = Schema::builder::<u64>("doc", 1).component::<Height>("height").build()?;
//! let mut frame = Frame::new(schema, 16, 0u64)?;
//! frame.world_mut().spawn_with((Height(Fp::ZERO),))?;
//!
//! // One system: each present player's input (an i32) raises every height.
//! let mut sim = Simulation::new().with_system(|frame: &mut Frame<u64>, input: &TickInputs<i32>| {
//!     let lift: i64 = input.iter().map(|(_, &v)| v as i64).sum();
//!     for (_, height) in frame.world_mut().query_mut::<&mut Height>()? {
//!         height.0 += Fp::from_int(lift);
//!     }
//!     Ok::<(), WorldError>(())
//! });
//! let mut input = TickInputs::new(2)?;
//! for tick in 1..=3 {
//!     input.reset(tick);
//!     input.set(PlayerId(0), 2)?;
//!     sim.step(&mut frame, &input)?;
//! }
//! let e = frame.world().entities().next().unwrap();
//! assert_eq!(frame.world().get::<Height>(e)?.0, Fp::from_int(6));
//! println!("tick {} checksum {}", frame.tick(), checksum(&frame));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_endian = "big")]
compile_error!(
    "tickstep frames and snapshots are little-endian byte images; big-endian targets are not supported"
);

mod checksum;
mod column;
mod commands;
mod digest;
mod entity;
mod field;
mod fp;
mod frame;
mod game;
mod hex;
mod image;
mod input;
pub mod parallel;
pub mod pod;
pub mod query;
mod rng;
mod schema;
mod simulation;
mod trig;
mod vec2;
mod world;

pub use bytemuck::{self, Pod, Zeroable};
pub use checksum::checksum;
pub use commands::Commands;
pub use digest::{Checksum, Digest, ParseDigestError, SchemaHash};
pub use entity::Entity;
pub use field::{Field, FieldKind};
pub use fp::Fp;
pub use frame::{Frame, FrameError, MAX_CAPACITY, MAX_TICK, Parts, Tick};
pub use game::{BuildError, Game, GameSetupError, Input, OfflineError, OfflineRun};
pub use hex::{Hex, decode_hex};
pub use image::{IMAGE_HEADER_LEN, ImageError, ImageHeader, ImageLayout, Section, validate_image};
pub use input::{
    InputError, InputStatus, MAX_COMMAND_LEN, MAX_COMMANDS_PER_TICK, MAX_PLAYERS, PlayerId,
    TickInputs,
};
pub use pod::Flag;
pub use query::{Filter, Query, QueryIter, ReadOnlyQuery, With, Without};
pub use rng::{Forks, Rng, mix64};
pub use schema::{ComponentInfo, MAX_ALIGN, MAX_COMPONENTS, Schema, SchemaBuilder, SchemaError};
pub use simulation::{IntoSystemResult, Simulation, StepError, System, SystemError, SystemResult};
pub use vec2::Vec2;
pub use world::{Bundle, World, WorldError};
