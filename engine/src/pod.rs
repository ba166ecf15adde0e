//! Components, globals and input are [`Pod`]: plain bytes, copied and
//! hashed as they are. What that asks of a type, and the helpers for what it forbids.
//!
//! - **`#[repr(C)]` and no padding.** Order fields from the largest alignment down, or
//!   fill the gap with an explicit `_pad: [u8; N]` field; the derive refuses a type with
//!   hidden padding at compile time.
//! - **No `bool`, no enums, no references**: not every bit pattern of them is valid.
//!   Store a flag as a [`Flag`]; store an enum as a `u8` newtype with named constants
//!   (`struct Team(u8); impl Team { const RED: Team = Team(0); ... }`) and match on
//!   the constants.
//! - **No floats** (determinism): use [`crate::Fp`] and [`crate::Vec2`].
//!
//! This crate re-exports `bytemuck`, so a game needs no dependency of its own: derive
//! with `#[derive(Pod, Zeroable)]` from `tickstep_engine::{Pod, Zeroable}` and add
//! `#[bytemuck(crate = "tickstep_engine::bytemuck")]`:
//!
//! ```
//! use tickstep_engine::{Flag, Fp, Pod, Zeroable};
//!
//! #[derive(Clone, Copy, Default, PartialEq, Pod, Zeroable)]
//! #[bytemuck(crate = "tickstep_engine::bytemuck")]
//! #[repr(C)]
//! struct Runner {
//!     speed: Fp,        // 8 bytes
//!     team: u8,         // an enum, as its number
//!     carrying: Flag,   // a bool
//!     _pad: [u8; 6],    // up to the next multiple of 8: no hidden padding
//! }
//!
//! let runner = Runner { carrying: Flag::from(true), ..Runner::default() };
//! assert!(runner.carrying.get());
//! ```

use bytemuck::{Pod, Zeroable};

/// A `bool` that is [`Pod`]: one byte, 0 or 1 when written through [`Flag::from`] (any
/// non-zero byte reads as true, so no byte pattern is invalid).
/// Two flags are equal when they read the same (`get`), whatever their bytes.
#[derive(Clone, Copy, Default, Pod, Zeroable)]
#[repr(transparent)]
pub struct Flag(u8);

impl PartialEq for Flag {
    fn eq(&self, other: &Flag) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Flag {}

impl Flag {
    /// False.
    pub const FALSE: Flag = Flag(0);
    /// True.
    pub const TRUE: Flag = Flag(1);

    /// The flag's value.
    pub const fn get(self) -> bool {
        self.0 != 0
    }
}

impl From<bool> for Flag {
    fn from(value: bool) -> Flag {
        Flag(value as u8)
    }
}

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.get()
    }
}

impl std::fmt::Debug for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.get(), f)
    }
}
