//! `Fp`, the fixed-point scalar every number in a frame is made of.
//!
//! `Fp` wraps the `fixed` crate's `I48F16`: 48 integer bits and 16 fraction bits, so one
//! unit is resolved to 1/65536 and the range is about ±1.4e14. Arithmetic is *wrapping*
//! (like release-mode integers) in every build profile, so a debug peer and a release peer
//! never disagree, and nothing panics: division by zero saturates (see [`Fp::div`]).
//!
//! No float goes in or out: values are made from integers, ratios or raw bits.

use bytemuck::{Pod, Zeroable};
use fixed::types::I48F16;
use std::fmt;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::trig;

/// A deterministic fixed-point number (48.16 bits). See the module docs for the rules.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Pod,
    Zeroable,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(from = "i64", into = "i64")]
#[repr(transparent)]
pub struct Fp(I48F16);

impl From<i64> for Fp {
    /// From raw bits (for serde; use [`Fp::from_int`] for integers).
    fn from(bits: i64) -> Fp {
        Fp::from_bits(bits)
    }
}

impl From<Fp> for i64 {
    /// The raw bits (for serde).
    fn from(value: Fp) -> i64 {
        value.to_bits()
    }
}

impl Fp {
    /// Number of fraction bits: one unit is `1 << FRAC_BITS` raw bits.
    pub const FRAC_BITS: u32 = 16;
    /// 0.
    pub const ZERO: Fp = Fp::from_bits(0);
    /// 1.
    pub const ONE: Fp = Fp::from_bits(1 << 16);
    /// 0.5.
    pub const HALF: Fp = Fp::from_bits(1 << 15);
    /// The smallest positive value, 1/65536.
    pub const EPSILON: Fp = Fp::from_bits(1);
    /// The largest value.
    pub const MAX: Fp = Fp::from_bits(i64::MAX);
    /// The smallest (most negative) value.
    pub const MIN: Fp = Fp::from_bits(i64::MIN);
    /// π, rounded to the nearest 1/65536.
    pub const PI: Fp = Fp::from_bits(205_887);
    /// 2π, rounded to the nearest 1/65536.
    pub const TAU: Fp = Fp::from_bits(411_775);
    /// π/2, rounded to the nearest 1/65536.
    pub const FRAC_PI_2: Fp = Fp::from_bits(102_944);

    /// The value whose raw representation is `bits` (value = bits / 65536).
    pub const fn from_bits(bits: i64) -> Fp {
        Fp(I48F16::from_bits(bits))
    }

    /// The raw representation (value × 65536).
    pub const fn to_bits(self) -> i64 {
        self.0.to_bits()
    }

    /// The integer `n`. Integers beyond the 48-bit range saturate.
    pub const fn from_int(n: i64) -> Fp {
        const LIMIT: i64 = i64::MAX >> 16;
        if n > LIMIT {
            Fp::MAX
        } else if n < -LIMIT - 1 {
            Fp::MIN
        } else {
            Fp::from_bits(n << 16)
        }
    }

    /// `num / den`, rounded toward negative infinity; `den == 0` saturates like [`Fp::div`].
    pub const fn from_ratio(num: i64, den: i64) -> Fp {
        quotient(num, den)
    }

    /// The largest integer not greater than `self`.
    pub const fn floor_to_int(self) -> i64 {
        self.to_bits() >> 16
    }

    /// The nearest integer; halves round up (toward positive infinity).
    pub const fn round_to_int(self) -> i64 {
        ((self.to_bits() as i128 + (1 << 15)) >> 16) as i64
    }

    /// `|self|`; `Fp::MIN.abs()` wraps to `Fp::MIN` like `i64::wrapping_abs`.
    pub const fn abs(self) -> Fp {
        Fp::from_bits(self.to_bits().wrapping_abs())
    }

    /// -1, 0 or 1 by the sign of `self`.
    pub const fn signum(self) -> Fp {
        Fp::from_int(self.to_bits().signum())
    }

    /// True when `self < 0`.
    pub const fn is_negative(self) -> bool {
        self.to_bits() < 0
    }

    /// The smaller of `self` and `other`.
    pub fn min(self, other: Fp) -> Fp {
        Ord::min(self, other)
    }

    /// The larger of `self` and `other`.
    pub fn max(self, other: Fp) -> Fp {
        Ord::max(self, other)
    }

    /// `self` limited to `lo..=hi`. Unlike `Ord::clamp` it never panics: with `lo > hi`
    /// the result is `lo`.
    pub fn clamp(self, lo: Fp, hi: Fp) -> Fp {
        self.min(hi).max(lo)
    }

    /// `a + (b - a) * t`: `t = 0` gives `a`, `t = 1` gives `b`; `t` is not clamped.
    pub fn lerp(a: Fp, b: Fp, t: Fp) -> Fp {
        a + (b - a) * t
    }

    /// The square root, correctly rounded down to 1/65536; negative input gives 0.
    pub fn sqrt(self) -> Fp {
        let bits = self.to_bits();
        if bits <= 0 {
            return Fp::ZERO;
        }
        // sqrt(bits / 2^16) * 2^16 = sqrt(bits << 16)
        let root = if bits < 1 << 48 {
            ((bits as u64) << 16).isqrt() as i64
        } else {
            ((bits as u128) << 16).isqrt() as i64
        };
        Fp::from_bits(root)
    }

    /// The sine of `self` radians. Error at most 2⁻¹⁶ against the exact value of the
    /// input (quarter-wave table of 1025 entries with linear interpolation).
    pub fn sin(self) -> Fp {
        Fp::from_bits(trig::sin_q16(self.to_bits()))
    }

    /// The cosine of `self` radians, with the same error bound as [`Fp::sin`].
    pub fn cos(self) -> Fp {
        Fp::from_bits(trig::cos_q16(self.to_bits()))
    }

    /// The angle of the point `(x, y)` in radians, in `-π..=π`; `atan2(0, 0) = 0`.
    /// Error at most 2⁻¹⁶ against the exact value (table of 1025 entries, interpolated).
    pub fn atan2(y: Fp, x: Fp) -> Fp {
        Fp::from_bits(trig::atan2_q16(y.to_bits(), x.to_bits()))
    }

    /// `self * n` for an integer `n`, wrapping.
    pub const fn mul_int(self, n: i64) -> Fp {
        Fp::from_bits(self.to_bits().wrapping_mul(n))
    }

    /// `self / n` for an integer `n`, rounded toward negative infinity; `n == 0` saturates.
    pub const fn div_int(self, n: i64) -> Fp {
        let bits = self.to_bits();
        Fp::from_bits(div_bits(bits as i128, n as i128, bits.signum()))
    }
}

/// The fixed-point quotient of two raw values with the same scale (so it is a ratio).
const fn quotient(num: i64, den: i64) -> Fp {
    Fp::from_bits(div_bits((num as i128) << 16, den as i128, num.signum()))
}

/// `num / den` on raw bits, rounded toward negative infinity and wrapped to 64 bits;
/// a zero divisor saturates toward the sign of the dividend (0 / 0 = 0).
const fn div_bits(num: i128, den: i128, sign: i64) -> i64 {
    if den == 0 {
        return match sign {
            1 => i64::MAX,
            -1 => i64::MIN,
            _ => 0,
        };
    }
    // Fast path, same result: both fit in i64 (and the dividend is not i64::MIN, the
    // one quotient that would overflow), so a 64-bit division does it at a fraction of
    // the cost of a 128-bit one (the hot loop of vector normalisation).
    if num > i64::MIN as i128
        && num <= i64::MAX as i128
        && den >= i64::MIN as i128
        && den <= i64::MAX as i128
    {
        let (n, d) = (num as i64, den as i64);
        let q = n / d;
        let rounds_up = n % d != 0 && ((n < 0) != (d < 0));
        return if rounds_up { q - 1 } else { q };
    }
    wide_div_bits(num, den)
}

/// `num / den` (`den` non-zero) in 128-bit integers, rounded toward negative infinity and
/// wrapped to 64 bits.
const fn wide_div_bits(num: i128, den: i128) -> i64 {
    let q = num / den;
    let rounds_up = num % den != 0 && ((num < 0) != (den < 0));
    (if rounds_up { q - 1 } else { q }) as i64
}

impl Add for Fp {
    type Output = Fp;
    fn add(self, rhs: Fp) -> Fp {
        Fp(self.0.wrapping_add(rhs.0))
    }
}

impl Sub for Fp {
    type Output = Fp;
    fn sub(self, rhs: Fp) -> Fp {
        Fp(self.0.wrapping_sub(rhs.0))
    }
}

impl Mul for Fp {
    type Output = Fp;
    /// Product rounded toward negative infinity, wrapping on overflow.
    fn mul(self, rhs: Fp) -> Fp {
        Fp::from_bits(((self.to_bits() as i128 * rhs.to_bits() as i128) >> 16) as i64)
    }
}

impl Div for Fp {
    type Output = Fp;
    /// Quotient rounded toward negative infinity, wrapping on overflow. Dividing by zero
    /// does not panic: it gives `Fp::MAX` for a positive dividend, `Fp::MIN` for a
    /// negative one and 0 for 0.
    fn div(self, rhs: Fp) -> Fp {
        quotient(self.to_bits(), rhs.to_bits())
    }
}

impl Neg for Fp {
    type Output = Fp;
    fn neg(self) -> Fp {
        Fp(self.0.wrapping_neg())
    }
}

macro_rules! assign_ops {
    ($($trait:ident $method:ident $op:tt),*) => {$(
        impl $trait for Fp {
            fn $method(&mut self, rhs: Fp) {
                *self = *self $op rhs;
            }
        }
    )*};
}
assign_ops!(AddAssign add_assign +, SubAssign sub_assign -, MulAssign mul_assign *, DivAssign div_assign /);

impl fmt::Display for Fp {
    /// Exact decimal form (no float is involved), e.g. `1.5` or `-0.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Fp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn real(x: Fp) -> f64 {
        x.to_bits() as f64 / 65536.0
    }

    #[test]
    fn constants_are_the_nearest_representable_values() {
        assert!((real(Fp::PI) - std::f64::consts::PI).abs() <= 0.5 / 65536.0);
        assert!((real(Fp::TAU) - std::f64::consts::TAU).abs() <= 0.5 / 65536.0);
        assert!((real(Fp::FRAC_PI_2) - std::f64::consts::FRAC_PI_2).abs() <= 0.5 / 65536.0);
    }

    #[test]
    fn integer_and_ratio_conversions() {
        assert_eq!(Fp::from_int(3).to_bits(), 3 << 16);
        assert_eq!(Fp::from_int(-2).floor_to_int(), -2);
        assert_eq!(Fp::from_ratio(3, 2).to_string(), "1.5");
        assert_eq!(Fp::from_ratio(-1, 4).to_string(), "-0.25");
        assert_eq!(Fp::from_ratio(-3, 2).floor_to_int(), -2);
        assert_eq!(Fp::from_ratio(-3, 2).round_to_int(), -1);
        assert_eq!(Fp::from_ratio(5, 2).round_to_int(), 3);
        assert_eq!(Fp::from_int(i64::MAX), Fp::MAX);
        assert_eq!(Fp::from_int(i64::MIN), Fp::MIN);
    }

    #[test]
    fn division_by_zero_saturates_instead_of_panicking() {
        assert_eq!(Fp::ONE / Fp::ZERO, Fp::MAX);
        assert_eq!(-Fp::ONE / Fp::ZERO, Fp::MIN);
        assert_eq!(Fp::ZERO / Fp::ZERO, Fp::ZERO);
        assert_eq!(Fp::ONE.div_int(0), Fp::MAX);
        assert_eq!(Fp::from_ratio(-7, 0), Fp::MIN);
        // MIN / -1 overflows and wraps rather than panicking.
        assert_eq!(Fp::MIN / -Fp::ONE, Fp::MIN);
    }

    #[test]
    fn clamp_lerp_min_max_abs() {
        let (a, b) = (Fp::from_int(2), Fp::from_int(10));
        assert_eq!(Fp::lerp(a, b, Fp::HALF), Fp::from_int(6));
        assert_eq!(Fp::from_int(20).clamp(a, b), b);
        assert_eq!(Fp::from_int(-20).clamp(a, b), a);
        assert_eq!(Fp::ONE.clamp(b, a), b, "lo > hi gives lo, no panic");
        assert_eq!(a.min(b), a);
        assert_eq!(a.max(b), b);
        assert_eq!((-a).abs(), a);
        assert_eq!((-a).signum(), -Fp::ONE);
    }

    #[test]
    fn sqrt_of_edge_values() {
        assert_eq!(Fp::from_int(4).sqrt(), Fp::from_int(2));
        assert_eq!(Fp::from_int(-4).sqrt(), Fp::ZERO);
        assert_eq!(Fp::ZERO.sqrt(), Fp::ZERO);
        assert_eq!(
            Fp::MAX.sqrt().to_bits(),
            ((i64::MAX as u128) << 16).isqrt() as i64
        );
    }

    proptest! {
        #[test]
        fn arithmetic_matches_i128_reference(a in any::<i64>(), b in any::<i64>()) {
            let (x, y) = (Fp::from_bits(a), Fp::from_bits(b));
            prop_assert_eq!((x + y).to_bits(), a.wrapping_add(b));
            prop_assert_eq!((x - y).to_bits(), a.wrapping_sub(b));
            prop_assert_eq!((x * y).to_bits(), ((a as i128 * b as i128) >> 16) as i64);
            if b != 0 {
                let q = ((a as i128) << 16) as f64 / b as f64;
                let got = (x / y).to_bits();
                // Only compare where the quotient fits: elsewhere it wraps by design.
                if q.abs() < 9.0e18 {
                    prop_assert!((got as f64 - q.floor()).abs() <= 2.0 + q.abs() * 1e-15);
                }
            }
        }

        #[test]
        fn the_64_bit_division_path_equals_the_128_bit_one(a in any::<i64>(), b in any::<i64>(), shift in 0u32..20) {
            let num = (a >> shift) as i128;
            prop_assume!(b != 0);
            prop_assert_eq!(div_bits(num, b as i128, a.signum()), wide_div_bits(num, b as i128));
            let wide = (a as i128) << 16;
            prop_assert_eq!(div_bits(wide, b as i128, a.signum()), wide_div_bits(wide, b as i128));
        }

        #[test]
        fn sqrt_is_floor_of_exact_root(bits in 1i64..i64::MAX) {
            let r = Fp::from_bits(bits).sqrt().to_bits() as u128;
            let target = (bits as u128) << 16;
            prop_assert!(r * r <= target && (r + 1) * (r + 1) > target);
        }

        #[test]
        fn sin_cos_within_one_ulp_of_f64(bits in -(1i64 << 24)..(1i64 << 24)) {
            let x = Fp::from_bits(bits);
            let exact = real(x);
            prop_assert!((real(x.sin()) - exact.sin()).abs() <= 1.0 / 65536.0);
            prop_assert!((real(x.cos()) - exact.cos()).abs() <= 1.0 / 65536.0);
        }

        #[test]
        fn atan2_within_one_ulp_of_f64(y in -(1i64 << 40)..(1i64 << 40), x in -(1i64 << 40)..(1i64 << 40)) {
            let got = real(Fp::atan2(Fp::from_bits(y), Fp::from_bits(x)));
            let exact = (y as f64).atan2(x as f64);
            prop_assert!((got - exact).abs() <= 1.0 / 65536.0, "got {got} exact {exact}");
        }
    }

    #[test]
    fn trig_special_points() {
        assert_eq!(Fp::ZERO.sin(), Fp::ZERO);
        assert_eq!(Fp::ZERO.cos(), Fp::ONE);
        assert_eq!(Fp::FRAC_PI_2.sin(), Fp::ONE);
        assert_eq!(Fp::atan2(Fp::ZERO, Fp::ZERO), Fp::ZERO);
        assert_eq!(Fp::atan2(Fp::ONE, Fp::ZERO), Fp::FRAC_PI_2);
        assert_eq!(Fp::atan2(Fp::ZERO, -Fp::ONE), Fp::PI);
        let corner = real(Fp::atan2(Fp::MIN, Fp::MIN));
        assert!((corner + 0.75 * std::f64::consts::PI).abs() <= 1.0 / 65536.0);
    }
}
