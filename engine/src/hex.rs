//! Hex text for byte strings: the one encoder and decoder behind every digest, id and
//! byte field tickstep shows as text.

use std::fmt;

/// Shows bytes as lowercase hex: `format!("{}", Hex(&bytes))`.
#[derive(Clone, Copy, Debug)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// Reads exactly `N` bytes written as `2 * N` hex digits (either case); `None` for any
/// other text.
pub fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_anything_else() {
        let bytes = [0x00, 0x7f, 0xab, 0xff];
        let text = Hex(&bytes).to_string();
        assert_eq!(text, "007fabff");
        assert_eq!(decode_hex::<4>(&text), Some(bytes));
        assert_eq!(decode_hex::<4>("007FABFF"), Some(bytes));
        assert_eq!(decode_hex::<4>("007fab"), None, "too short");
        assert_eq!(decode_hex::<4>("007fabfg"), None, "not hex");
        assert_eq!(decode_hex::<2>("+1f2"), None, "signs are not digits");
        assert_eq!(decode_hex::<2>("éa"), None, "not ascii");
    }
}
