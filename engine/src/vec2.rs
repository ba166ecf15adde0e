//! `Vec2`, a 2-D vector of [`Fp`].

use bytemuck::{Pod, Zeroable};
use std::ops::{Add, AddAssign, Mul, Neg, Sub, SubAssign};

use crate::Fp;

/// A 2-D vector of fixed-point numbers (positions, velocities, directions).
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
pub struct Vec2 {
    /// Horizontal component.
    pub x: Fp,
    /// Vertical component.
    pub y: Fp,
}

impl Vec2 {
    /// (0, 0).
    pub const ZERO: Vec2 = Vec2::new(Fp::ZERO, Fp::ZERO);

    /// The vector `(x, y)`.
    pub const fn new(x: Fp, y: Fp) -> Vec2 {
        Vec2 { x, y }
    }

    /// The vector of two integers.
    pub const fn from_ints(x: i64, y: i64) -> Vec2 {
        Vec2::new(Fp::from_int(x), Fp::from_int(y))
    }

    /// The unit vector at `radians` from the x axis: `(cos, sin)`.
    pub fn from_angle(radians: Fp) -> Vec2 {
        Vec2::new(radians.cos(), radians.sin())
    }

    /// The angle from the x axis in radians, `-π..=π` (0 for the zero vector).
    pub fn angle(self) -> Fp {
        Fp::atan2(self.y, self.x)
    }

    /// Dot product.
    pub fn dot(self, other: Vec2) -> Fp {
        self.x * other.x + self.y * other.y
    }

    /// The z component of the 3-D cross product (positive when `other` is counter-clockwise).
    pub fn cross(self, other: Vec2) -> Fp {
        self.x * other.y - self.y * other.x
    }

    /// `|self|²`.
    pub fn length_squared(self) -> Fp {
        self.dot(self)
    }

    /// `|self|`, rounded down. Computed in 128-bit integers, so it is exact to 1/65536 and
    /// cannot overflow for any vector.
    pub fn length(self) -> Fp {
        let squared = self.length_squared_wide();
        let root = match u64::try_from(squared) {
            Ok(narrow) => narrow.isqrt() as u128,
            Err(_) => squared.isqrt(),
        };
        Fp::from_bits(root.min(i64::MAX as u128) as i64)
    }

    /// `|self|²` in raw 32.32-scaled bits, exact (no rounding, no overflow).
    fn length_squared_wide(self) -> u128 {
        let (x, y) = (self.x.to_bits() as i128, self.y.to_bits() as i128);
        (x * x) as u128 + (y * y) as u128
    }

    /// `|self - other|`.
    pub fn distance(self, other: Vec2) -> Fp {
        (self - other).length()
    }

    /// The unit vector in the direction of `self`, or zero for the zero vector.
    pub fn normalize_or_zero(self) -> Vec2 {
        let length = self.length();
        if length == Fp::ZERO {
            return Vec2::ZERO;
        }
        Vec2::new(self.x / length, self.y / length)
    }

    /// `self` shortened to at most `max` long, direction unchanged.
    pub fn clamp_length(self, max: Fp) -> Vec2 {
        if max >= Fp::ZERO && self.length_squared_wide() <= (max.to_bits() as i128).pow(2) as u128 {
            return self;
        }
        let length = self.length();
        if length <= max {
            return self;
        }
        Vec2::new(self.x * max / length, self.y * max / length)
    }

    /// Each component clamped to the box `lo..=hi`.
    pub fn clamp(self, lo: Vec2, hi: Vec2) -> Vec2 {
        Vec2::new(self.x.clamp(lo.x, hi.x), self.y.clamp(lo.y, hi.y))
    }

    /// `a + (b - a) * t`.
    pub fn lerp(a: Vec2, b: Vec2, t: Fp) -> Vec2 {
        a + (b - a) * t
    }
}

impl Add for Vec2 {
    type Output = Vec2;
    fn add(self, rhs: Vec2) -> Vec2 {
        Vec2::new(self.x + rhs.x, self.y + rhs.y)
    }
}

impl Sub for Vec2 {
    type Output = Vec2;
    fn sub(self, rhs: Vec2) -> Vec2 {
        Vec2::new(self.x - rhs.x, self.y - rhs.y)
    }
}

impl Mul<Fp> for Vec2 {
    type Output = Vec2;
    fn mul(self, rhs: Fp) -> Vec2 {
        Vec2::new(self.x * rhs, self.y * rhs)
    }
}

impl Neg for Vec2 {
    type Output = Vec2;
    fn neg(self) -> Vec2 {
        Vec2::new(-self.x, -self.y)
    }
}

impl AddAssign for Vec2 {
    fn add_assign(&mut self, rhs: Vec2) {
        *self = *self + rhs;
    }
}

impl SubAssign for Vec2 {
    fn sub_assign(&mut self, rhs: Vec2) {
        *self = *self - rhs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_normalize_and_clamp() {
        let v = Vec2::from_ints(3, 4);
        assert_eq!(v.length(), Fp::from_int(5));
        assert_eq!(v.length_squared(), Fp::from_int(25));
        let unit = v.normalize_or_zero();
        assert_eq!(unit, Vec2::new(Fp::from_ratio(3, 5), Fp::from_ratio(4, 5)));
        assert_eq!(Vec2::ZERO.normalize_or_zero(), Vec2::ZERO);
        assert_eq!(v.clamp_length(Fp::from_int(10)), v);
        assert_eq!(
            v.clamp_length(Fp::from_int(1)).length(),
            Fp::ONE - Fp::EPSILON
        );
    }

    #[test]
    fn length_of_huge_vectors_does_not_overflow() {
        let v = Vec2::new(Fp::MAX, Fp::MAX);
        assert_eq!(v.length(), Fp::MAX);
    }

    #[test]
    fn dot_cross_and_angles() {
        let (x, y) = (Vec2::from_ints(1, 0), Vec2::from_ints(0, 1));
        assert_eq!(x.dot(y), Fp::ZERO);
        assert_eq!(x.cross(y), Fp::ONE);
        assert_eq!(y.angle(), Fp::FRAC_PI_2);
        assert_eq!(Vec2::from_angle(Fp::ZERO), x);
        assert_eq!(Vec2::lerp(x, y, Fp::HALF), Vec2::new(Fp::HALF, Fp::HALF));
    }
}
