//! `Digest`, a 32-byte blake3 hash shown as 64 hex characters.

use bytemuck::{Pod, Zeroable};
use std::fmt;
use std::str::FromStr;

/// A blake3 hash: frame checksums and schema hashes are both `Digest`s.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
#[repr(transparent)]
pub struct Digest(pub [u8; 32]);

/// The checksum of a frame: blake3 over its canonical bytes (see [`crate::checksum`]).
pub type Checksum = Digest;

/// The identity of a [`crate::Schema`]: peers and files with different hashes refuse each other.
pub type SchemaHash = Digest;

impl Digest {
    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

/// Hex text in human-readable formats (JSON), 32 raw bytes in binary ones (postcard).
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(Digest)
        }
    }
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Digest {
        Digest(*hash.as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::Hex(&self.0).fmt(f)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hex characters for a blake3 digest, found {0:?}")]
pub struct ParseDigestError(String);

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(text: &str) -> Result<Digest, ParseDigestError> {
        crate::decode_hex(text)
            .map(Digest)
            .ok_or_else(|| ParseDigestError(text.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_text() {
        let digest = Digest::from(blake3::hash(b"tickstep"));
        let hex = digest.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(hex.parse::<Digest>(), Ok(digest));
        assert!("zz".repeat(32).parse::<Digest>().is_err());
        assert!("ab".parse::<Digest>().is_err());
        assert!("é".repeat(32).parse::<Digest>().is_err());
    }
}
