//! `Rng`, the deterministic random number generator whose state lives in the frame.
//!
//! SplitMix64: one `u64` of state, a few multiplies per draw, and it passes BigCrush. It is
//! `Pod`, so a game keeps it in its globals and it is snapshotted, restored and
//! checksummed with everything else: two peers draw the same numbers at the same tick.

use bytemuck::{Pod, Zeroable};

use crate::Fp;

/// The SplitMix64 finaliser: a bijective mix of 64 bits. Use it to derive values that are a
/// pure function of their arguments, e.g. `mix64(seed ^ mix64(tick))`.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small, fast, deterministic random number generator (SplitMix64).
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Pod,
    Zeroable,
    serde::Serialize,
    serde::Deserialize,
)]
#[repr(C)]
pub struct Rng {
    state: u64,
}

impl Rng {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    /// A generator seeded with `seed`; equal seeds give equal sequences.
    pub const fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent generator for `entity` at `tick`, derived from this one's state
    /// without drawing from it: what a parallel query uses (see [`crate::parallel`]), so
    /// an entity's draws never depend on which other entities drew before it. `stream`
    /// keeps two systems that fork the same entity on the same tick apart (give each
    /// its own constant). In a loop over entities, take [`Rng::forks`] once instead.
    pub fn fork(&self, tick: crate::Tick, entity: crate::Entity, stream: u64) -> Rng {
        self.forks(tick, stream).for_entity(entity)
    }

    /// The generators [`Rng::fork`] derives at `tick` for `stream`, with the entity left
    /// open: derived once before a loop, each entity's ([`Forks::for_entity`]) then costs
    /// one mix.
    pub fn forks(&self, tick: crate::Tick, stream: u64) -> Forks {
        Forks {
            key: mix64(self.state ^ mix64(tick ^ mix64(stream))),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        mix64(self.state)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A uniform integer in `0..n` without modulo bias (Lemire's method); `below(0)` is 0.
    pub fn below(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = self.next_u32() as u64 * n as u64;
            if (product as u32) >= threshold {
                return (product >> 32) as u32;
            }
        }
    }

    /// True with probability `numerator / denominator` (false when the denominator is 0).
    pub fn chance(&mut self, numerator: u32, denominator: u32) -> bool {
        denominator != 0 && self.below(denominator) < numerator
    }

    /// A uniform value in `0..1` (16 random fraction bits).
    pub fn unit(&mut self) -> Fp {
        Fp::from_bits((self.next_u32() >> 16) as i64)
    }

    /// A value in `lo..hi` (`lo` when `hi <= lo`).
    pub fn range(&mut self, lo: Fp, hi: Fp) -> Fp {
        if hi <= lo {
            return lo;
        }
        lo + (hi - lo) * self.unit()
    }
}

/// The generators of one tick and stream, one per entity (see [`Rng::forks`]).
#[derive(Clone, Copy, Debug)]
pub struct Forks {
    key: u64,
}

impl Forks {
    /// The generator of `entity`: the same as `rng.fork(tick, entity, stream)`.
    pub fn for_entity(&self, entity: crate::Entity) -> Rng {
        let id = (u64::from(entity.index()) << 32) | u64::from(entity.generation());
        Rng::new(mix64(self.key ^ id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_different_seed_differs() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn a_fork_is_pinned_and_differs_by_entity_tick_stream_and_state() {
        use crate::Entity;
        let rng = Rng::new(99);
        // Computed outside Rust from the formula (mix64 of the state, tick and stream, then
        // of that xor the entity's id; then a SplitMix64 draw), in Python's integers: it
        // pins the derivation every game's checksums depend on.
        let mut pinned = rng.fork(7, Entity::from_parts(5, 1), 3);
        assert_eq!(pinned.next_u64(), 0x64c3_3877_5989_5204);
        let forks = rng.forks(7, 3);
        let mut seen = std::collections::BTreeSet::new();
        for index in 0..64 {
            for generation in 0..4 {
                let entity = Entity::from_parts(index, generation);
                let mut forked = forks.for_entity(entity);
                assert!(seen.insert(forked.next_u64()), "{entity:?} repeats a draw");
            }
        }
        let entity = Entity::from_parts(5, 1);
        let first = |rng: Rng, tick, stream| rng.fork(tick, entity, stream).next_u64();
        let here = first(rng, 7, 3);
        assert_ne!(here, first(rng, 8, 3), "another tick");
        assert_ne!(here, first(rng, 7, 4), "another stream");
        assert_ne!(here, first(Rng::new(100), 7, 3), "another frame state");
    }

    #[test]
    fn splitmix_reference_vector() {
        // First outputs of SplitMix64 seeded with 1234567: the known vector of the reference C
        // code (Vigna, splitmix64.c), recomputed independently: pins the published algorithm.
        let mut rng = Rng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(1);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[rng.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn unit_and_range_bounds() {
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let u = rng.unit();
            assert!(u >= Fp::ZERO && u < Fp::ONE);
            let r = rng.range(Fp::from_int(-2), Fp::from_int(3));
            assert!(r >= Fp::from_int(-2) && r < Fp::from_int(3));
        }
        assert_eq!(rng.range(Fp::ONE, Fp::ZERO), Fp::ONE);
    }

    #[test]
    fn chance_follows_its_ratio() {
        let mut rng = Rng::new(11);
        let hits = (0..10_000).filter(|_| rng.chance(1, 4)).count();
        assert!((2_300..2_700).contains(&hits), "{hits}");
        assert!(!rng.chance(1, 0) && !rng.chance(0, 5));
    }
}
