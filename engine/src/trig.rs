//! Table-driven sine and arctangent on raw 48.16 bits.
//!
//! Both tables are computed at compile time with integer arithmetic only (Taylor series in
//! 2.62 fixed point), so every build on every platform holds the same bits. Lookups
//! interpolate linearly between 1025 entries; the interpolation error (< 3e-7) is far
//! below the 2⁻¹⁶ output resolution, which bounds the total error (tested against f64).

/// Entries per quarter turn (sine) and per unit of tangent (arctangent), plus one.
const STEPS: usize = 1024;
/// log2(STEPS).
const STEP_BITS: u32 = 10;
/// π/2 in 2.62 fixed point.
const FRAC_PI_2_Q62: i128 = 7_244_019_458_077_122_842;
/// π/2 and π in 2.30 fixed point (the tables' output format).
const FRAC_PI_2_Q30: i64 = 1_686_629_713;
const PI_Q30: i64 = 3_373_259_426;
/// 2⁴⁸ / 2π: turns a 48.16 angle in radians into a 32-bit phase (2³² = one turn), in Q32.
const PHASE_PER_RADIAN_Q32: i128 = 44_798_133_900_177;
const ONE_Q62: i128 = 1 << 62;

/// `sin(k/STEPS · π/2)` for `k = 0..=STEPS`, in 2.30 fixed point.
static SIN_TABLE: [i32; STEPS + 1] = sin_table();
/// `atan(k/STEPS)` for `k = 0..=STEPS`, in 2.30 fixed point (radians).
static ATAN_TABLE: [i32; STEPS + 1] = atan_table();

const fn mul_q62(a: i128, b: i128) -> i128 {
    (a * b) >> 62
}

const fn q62_to_q30(x: i128) -> i32 {
    ((x + (1 << 31)) >> 32) as i32
}

/// Taylor series of sine for `0 <= x <= π/2` in 2.62.
const fn sin_q62(x: i128) -> i128 {
    let x2 = mul_q62(x, x);
    let mut term = x;
    let mut sum = x;
    let mut n = 1;
    while n < 16 {
        term = -mul_q62(term, x2) / ((2 * n) * (2 * n + 1));
        sum += term;
        n += 1;
    }
    sum
}

/// Taylor series of arctangent for `0 <= x <= 1` in 2.62, after halving the angle twice
/// with `atan(x) = 2·atan(x / (1 + sqrt(1 + x²)))` so the series converges fast.
const fn atan_q62(x: i128) -> i128 {
    let mut t = x;
    let mut halvings = 0;
    while halvings < 2 {
        let root = (((ONE_Q62 + mul_q62(t, t)) << 62) as u128).isqrt() as i128;
        t = (t << 62) / (ONE_Q62 + root);
        halvings += 1;
    }
    let t2 = mul_q62(t, t);
    let mut power = t;
    let mut sum = t;
    let mut n = 1;
    while n < 20 {
        power = -mul_q62(power, t2);
        sum += power / (2 * n + 1);
        n += 1;
    }
    sum << halvings
}

const fn sin_table() -> [i32; STEPS + 1] {
    let mut table = [0; STEPS + 1];
    let mut k = 0;
    while k <= STEPS {
        table[k] = q62_to_q30(sin_q62(FRAC_PI_2_Q62 * k as i128 / STEPS as i128));
        k += 1;
    }
    table
}

const fn atan_table() -> [i32; STEPS + 1] {
    let mut table = [0; STEPS + 1];
    let mut k = 0;
    while k <= STEPS {
        table[k] = q62_to_q30(atan_q62(ONE_Q62 * k as i128 / STEPS as i128));
        k += 1;
    }
    table
}

/// Linear interpolation in `table` at `position`, a 2.30 fraction of the table's span.
fn interpolate(table: &[i32; STEPS + 1], position: u32) -> i64 {
    const FRAC_BITS: u32 = 30 - STEP_BITS;
    let index = (position >> FRAC_BITS) as usize;
    let frac = (position & ((1 << FRAC_BITS) - 1)) as i64;
    let low = table[index.min(STEPS)] as i64;
    let high = table[(index + 1).min(STEPS)] as i64;
    low + (((high - low) * frac) >> FRAC_BITS)
}

/// Rounds a 2.30 value to 48.16.
fn q30_to_q16(x: i64) -> i64 {
    (x + (1 << 13)) >> 14
}

/// Sine of a 32-bit phase (2³² = one turn), in 2.30.
fn sin_phase_q30(phase: u32) -> i64 {
    let quadrant = phase >> 30;
    let mut within = phase & ((1 << 30) - 1);
    if quadrant & 1 == 1 {
        within = (1 << 30) - within;
    }
    let magnitude = interpolate(&SIN_TABLE, within);
    if quadrant >= 2 { -magnitude } else { magnitude }
}

fn phase_of(radians_q16: i64) -> u32 {
    // Only the low 32 bits matter: the phase wraps once per turn.
    ((radians_q16 as i128 * PHASE_PER_RADIAN_Q32) >> 32) as u32
}

/// Sine of an angle in radians, both as raw 48.16 bits.
pub(crate) fn sin_q16(radians_q16: i64) -> i64 {
    q30_to_q16(sin_phase_q30(phase_of(radians_q16)))
}

/// Cosine of an angle in radians, both as raw 48.16 bits.
pub(crate) fn cos_q16(radians_q16: i64) -> i64 {
    q30_to_q16(sin_phase_q30(phase_of(radians_q16).wrapping_add(1 << 30)))
}

/// Angle of the point `(x, y)` in radians (`-π..=π`), all as raw 48.16 bits.
pub(crate) fn atan2_q16(y: i64, x: i64) -> i64 {
    let (ax, ay) = (x.unsigned_abs(), y.unsigned_abs());
    if ax == 0 && ay == 0 {
        return 0;
    }
    let (small, large) = if ay <= ax { (ay, ax) } else { (ax, ay) };
    let ratio = ((small as u128) << 30) / large as u128; // 0..=2^30
    let mut angle = interpolate(&ATAN_TABLE, ratio as u32);
    if ay > ax {
        angle = FRAC_PI_2_Q30 - angle;
    }
    if x < 0 {
        angle = PI_Q30 - angle;
    }
    if y < 0 {
        angle = -angle;
    }
    q30_to_q16(angle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_f64_to_their_resolution() {
        for k in 0..=STEPS {
            let angle = k as f64 / STEPS as f64 * std::f64::consts::FRAC_PI_2;
            let sin = SIN_TABLE[k] as f64 / (1u64 << 30) as f64;
            assert!((sin - angle.sin()).abs() < 2e-9, "sin entry {k}");
            let tan = k as f64 / STEPS as f64;
            let atan = ATAN_TABLE[k] as f64 / (1u64 << 30) as f64;
            assert!((atan - tan.atan()).abs() < 2e-9, "atan entry {k}");
        }
    }

    #[test]
    fn phase_constant_is_one_turn_per_tau() {
        // 2π radians (in 48.16) should land within a hair of a whole turn (2^32).
        let turn = (411_775i128 * PHASE_PER_RADIAN_Q32) >> 32;
        assert!((turn - (1i128 << 32)).abs() < 1 << 16);
    }
}
