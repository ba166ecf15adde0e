//! The checksummed serde snapshot most Rust rollback games write today (every entity's
//! components through serde into postcard, then blake3 over the bytes): the baseline
//! that `tickstep bench snapshot` and the `snapshot` criterion bench measure tickstep's
//! blit snapshots against.

use serde::{Deserialize, Serialize};
use tickstep_engine::{Entity, Frame, Tick};

use super::{ArenaGlobals, Body, Projectile, Ship, Unit};

/// One entity and whichever components it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerdeEntity {
    /// Its handle.
    pub entity: Entity,
    /// Its body, if any.
    pub body: Option<Body>,
    /// Its unit state, if any.
    pub unit: Option<Unit>,
    /// Its ship state, if any.
    pub ship: Option<Ship>,
    /// Its projectile state, if any.
    pub projectile: Option<Projectile>,
}

/// The arena's state as a serde value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerdeWorld {
    /// The tick.
    pub tick: Tick,
    /// The globals.
    pub globals: ArenaGlobals,
    /// Every live entity in slot order.
    pub entities: Vec<SerdeEntity>,
}

impl SerdeWorld {
    /// Gathers the frame's state (not part of what the benches time: the baseline is
    /// charged only for serialising and hashing).
    pub fn from_frame(frame: &Frame<ArenaGlobals>) -> SerdeWorld {
        let world = frame.world();
        let entities = world
            .entities()
            .map(|entity| SerdeEntity {
                entity,
                body: world.get::<Body>(entity).ok().copied(),
                unit: world.get::<Unit>(entity).ok().copied(),
                ship: world.get::<Ship>(entity).ok().copied(),
                projectile: world.get::<Projectile>(entity).ok().copied(),
            })
            .collect();
        SerdeWorld {
            tick: frame.tick(),
            globals: *frame.globals(),
            entities,
        }
    }

    /// postcard-encodes into `out` (reused) and returns the blake3 of the bytes.
    pub fn encode_checked(&self, out: Vec<u8>) -> Result<(Vec<u8>, blake3::Hash), postcard::Error> {
        let mut out = out;
        out.clear();
        let out = postcard::to_extend(self, out)?;
        let hash = blake3::hash(&out);
        Ok((out, hash))
    }

    /// Checks `bytes` against `hash`, then postcard-decodes them.
    pub fn decode_checked(bytes: &[u8], hash: &blake3::Hash) -> Option<SerdeWorld> {
        if blake3::hash(bytes) != *hash {
            return None;
        }
        postcard::from_bytes(bytes).ok()
    }
}
