//! Identities: the secret [`ClientId`] a player slot is keyed by, the [`ResumeToken`]
//! that proves a returning client is the one that held the slot last, and the
//! transport's [`ConnId`] for one connection.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tickstep_engine::{Hex, decode_hex};

/// The operating system's random source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random source is unavailable: {0}")]
pub struct EntropyError(String);

/// `N` bytes from the operating system's random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], EntropyError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| EntropyError(e.to_string()))?;
    Ok(bytes)
}

/// A secret between one client and the server that keys the client's player slot: a
/// client that comes back with the same id gets its slot back. Other clients never
/// learn it, so nobody can take over someone else's slot.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub [u8; 16]);

impl ClientId {
    /// A fresh unpredictable id, from the operating system's random source.
    pub fn generate() -> Result<ClientId, EntropyError> {
        random_bytes().map(ClientId)
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

/// Proof that a returning client is the one that held its slot last: the room hands a
/// fresh token with every welcome into a slot and takes back only the latest, so a copy
/// of an old reconnect file cannot take the slot once its owner has come back.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResumeToken(pub [u8; 16]);

/// Shows only a prefix: tokens are secrets.
impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResumeToken({:02x}…)", self.0[0])
    }
}

/// Mints resume tokens: keyed by a server secret, numbered, so they are unpredictable
/// to clients and never repeat.
#[derive(Clone)]
pub(crate) struct TokenMint {
    secret: [u8; 32],
    minted: u64,
}

impl TokenMint {
    /// A mint keyed by `secret`.
    pub(crate) fn new(secret: [u8; 32]) -> TokenMint {
        TokenMint { secret, minted: 0 }
    }

    /// A fresh token for `client`.
    pub(crate) fn mint(&mut self, client: ClientId) -> ResumeToken {
        self.minted += 1;
        let mut input = [0u8; 24];
        input[..16].copy_from_slice(&client.0);
        input[16..].copy_from_slice(&self.minted.to_le_bytes());
        let hash = blake3::keyed_hash(&self.secret, &input);
        let mut token = [0u8; 16];
        token.copy_from_slice(&hash.as_bytes()[..16]);
        ResumeToken(token)
    }
}

/// Shows nothing of the secret.
impl fmt::Debug for TokenMint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenMint({} minted)", self.minted)
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
        let id = ClientId::generate().unwrap();
        assert_eq!(id.to_string().parse::<ClientId>(), Ok(id));
        assert_ne!(ClientId::generate().unwrap(), id);
        assert_eq!(ClientId::from_seed(3), ClientId::from_seed(3));
        assert_ne!(ClientId::from_seed(3), ClientId::from_seed(4));
        assert!("zz".parse::<ClientId>().is_err());
        assert!("é".repeat(16).parse::<ClientId>().is_err());
        assert!(!format!("{id:?}").contains(&id.to_string()));
    }
}
