//! The keys a page passes in and the arena input they make.

use tickstep_arena::ArenaInput;

/// The keys held, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keys(u32);

impl Keys {
    /// Thrust up.
    pub const UP: u32 = 1;
    /// Thrust down.
    pub const DOWN: u32 = 2;
    /// Thrust left.
    pub const LEFT: u32 = 4;
    /// Thrust right.
    pub const RIGHT: u32 = 8;
    /// Fire along the aim.
    pub const FIRE: u32 = 16;
    /// A nova: a ring of shots (once per press).
    pub const NOVA: u32 = 32;

    /// The keys of `bits` (unknown bits ignored).
    pub fn from_bits(bits: u32) -> Keys {
        Keys(bits & 63)
    }

    /// Whether `key` is held.
    pub fn held(self, key: u32) -> bool {
        self.0 & key != 0
    }

    /// The thrust on each axis (-127..=127; y grows downwards on the page and in the
    /// arena alike).
    fn thrust(self) -> (i8, i8) {
        let axis = |minus, plus| match (self.held(minus), self.held(plus)) {
            (true, false) => -127,
            (false, true) => 127,
            _ => 0,
        };
        (axis(Keys::LEFT, Keys::RIGHT), axis(Keys::UP, Keys::DOWN))
    }

    /// The input for a tick: thrust, fire, and the aim along the thrust (or `aim`,
    /// the last one, when no direction is held).
    pub fn input(self, aim: u8) -> ArenaInput {
        let (move_x, move_y) = self.thrust();
        ArenaInput {
            move_x,
            move_y,
            aim: direction(move_x, move_y).unwrap_or(aim),
            fire: self.held(Keys::FIRE).into(),
        }
    }
}

/// The aim (256ths of a turn, counter-clockwise from +x as the arena's angles go)
/// of one of the eight thrust directions; `None` for no thrust.
fn direction(x: i8, y: i8) -> Option<u8> {
    Some(match (x.signum(), y.signum()) {
        (0, 0) => return None,
        (1, 0) => 0,
        (1, 1) => 32,
        (0, 1) => 64,
        (-1, 1) => 96,
        (-1, 0) => 128,
        (-1, -1) => 160,
        (0, -1) => 192,
        _ => 224,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_make_thrust_aim_and_fire() {
        let right_down = Keys::from_bits(Keys::RIGHT | Keys::DOWN | Keys::FIRE).input(7);
        assert_eq!((right_down.move_x, right_down.move_y), (127, 127));
        assert_eq!((right_down.aim, right_down.fire), (32, 1));
        // Opposite keys cancel; no direction keeps the last aim.
        let still = Keys::from_bits(Keys::LEFT | Keys::RIGHT | Keys::UP | Keys::DOWN).input(7);
        assert_eq!(
            (still.move_x, still.move_y, still.aim, still.fire),
            (0, 0, 7, 0)
        );
        assert_eq!(Keys::from_bits(Keys::UP).input(0).aim, 192);
        assert_eq!(Keys::from_bits(u32::MAX), Keys::from_bits(63));
    }
}
