//! Identities: the secret [`ClientId`] a player slot is keyed by, and the transport's
//! [`ConnId`] for one connection.

use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use tickstep_engine::{Hex, decode_hex};

/// A secret between one client and the server that keys the client's player slot: a
/// client that comes back with the same id gets its slot back. Other clients never
/// learn it, so nobody can take over someone else's slot.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub [u8; 16]);

impl ClientId {
    /// A fresh unpredictable id (from the standard library's randomly keyed hasher).
    pub fn generate() -> ClientId {
        let mut bytes = [0u8; 16];
        for half in bytes.chunks_exact_mut(8) {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(0x7469_636b_7374_6570);
            half.copy_from_slice(&hasher.finish().to_le_bytes());
        }
        ClientId(bytes)
    }

    /// A reproducible id derived from `seed`, for tests and simulated demos.
    pub fn from_seed(seed: u64) -> ClientId {
        let hash = blake3::hash(&seed.to_le_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_bytes()[..16]);
        ClientId(bytes)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

/// Shows only a prefix: ids are secrets and logs travel.
impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Why a text is not a client id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a client id is 32 hex digits, got {0:?}")]
pub struct ParseClientIdError(String);

impl FromStr for ClientId {
    type Err = ParseClientIdError;

    fn from_str(text: &str) -> Result<ClientId, ParseClientIdError> {
        decode_hex(text)
            .map(ClientId)
            .ok_or_else(|| ParseClientIdError(text.chars().take(40).collect()))
    }
}

/// One transport connection, numbered by whoever drives the server. A client that
/// reconnects arrives on a new `ConnId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_round_trip_through_text_and_differ() {
        let id = ClientId::generate();
        assert_eq!(id.to_string().parse::<ClientId>(), Ok(id));
        assert_ne!(ClientId::generate(), id);
        assert_eq!(ClientId::from_seed(3), ClientId::from_seed(3));
        assert_ne!(ClientId::from_seed(3), ClientId::from_seed(4));
        assert!("zz".parse::<ClientId>().is_err());
        assert!("é".repeat(16).parse::<ClientId>().is_err());
        assert!(!format!("{id:?}").contains(&id.to_string()));
    }
}
