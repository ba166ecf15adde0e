//! Reconnection: the policy for automatic attempts after an unexpected loss, and
//! [`ReconnectInfo`], what a client must keep (even across an app restart) to come
//! back to its slot.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tickstep_engine::{Checksum, PlayerId, Tick};

use super::{ClientId, ResumeToken};

/// How a client retries after an unexpected loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Attempts before giving up (0: never reconnect automatically).
    pub attempts: u32,
    /// Wait before the first attempt; each further attempt doubles it.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for ReconnectPolicy {
    /// 8 attempts, waiting 0.25 s, 0.5 s, 1 s, 2 s, then 4 s each (about 20 s in all,
    /// the PlayerTTL a room keeps a slot for by default).
    fn default() -> Self {
        ReconnectPolicy {
            attempts: 8,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
        }
    }
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.first_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// A snapshot of a client's last verified frame, kept to re-enter the game without a
/// transfer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSnapshot {
    /// The frame's tick.
    pub tick: Tick,
    /// The frame's checksum.
    pub checksum: Checksum,
    /// The encoded snapshot.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for LocalSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSnapshot")
            .field("tick", &self.tick)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Everything needed to rejoin the same slot, even after the app restarted: save it
/// with [`ReconnectInfo::to_bytes`] as the game runs, load it with
/// [`ReconnectInfo::from_bytes`]. [`ReconnectInfo::new`] is a first join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconnectInfo {
    /// The server's address (opaque to the session; the transport reads it).
    pub server: String,
    /// The room.
    pub room: String,
    /// The secret that keys the player's slot.
    pub client_id: ClientId,
    /// The slot held, once the room welcomed this client (a hello then asks for it
    /// back rather than for a new one).
    pub player: Option<PlayerId>,
    /// The last verified frame, if one was kept.
    pub local_snapshot: Option<LocalSnapshot>,
    /// The token the last welcome gave, to show when coming back to the slot.
    pub resume: Option<ResumeToken>,
}

/// The first bytes of a saved [`ReconnectInfo`].
const RECONNECT_MAGIC: &[u8; 8] = b"TICKRCON";

/// Why saved reconnect data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconnectInfoError {
    /// The bytes do not start like saved reconnect data.
    #[error("not tickstep reconnect data (wrong magic)")]
    NotReconnectInfo,
    /// The content is damaged.
    #[error("reconnect data is damaged: {0}")]
    Damaged(String),
}

impl ReconnectInfo {
    /// A first join of `room` on `server` as `client_id`.
    pub fn new(server: &str, room: &str, client_id: ClientId) -> ReconnectInfo {
        ReconnectInfo {
            server: server.to_string(),
            room: room.to_string(),
            client_id,
            player: None,
            local_snapshot: None,
            resume: None,
        }
    }

    /// Forgets the slot (and the snapshot and token that went with it): the next
    /// connect joins as a new player, with the same client id.
    pub fn forget_slot(&mut self) {
        self.player = None;
        self.local_snapshot = None;
        self.resume = None;
    }

    /// Encodes for saving.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = RECONNECT_MAGIC.to_vec();
        // Cannot fail: plain data into a growable buffer.
        out.extend(postcard::to_stdvec(self).unwrap_or_default());
        out
    }

    /// Decodes saved reconnect data.
    pub fn from_bytes(bytes: &[u8]) -> Result<ReconnectInfo, ReconnectInfoError> {
        let body = bytes
            .strip_prefix(RECONNECT_MAGIC)
            .ok_or(ReconnectInfoError::NotReconnectInfo)?;
        let (info, rest) = postcard::take_from_bytes(body)
            .map_err(|e| ReconnectInfoError::Damaged(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ReconnectInfoError::Damaged(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let policy = ReconnectPolicy::default();
        let waits: Vec<u64> = (1..=6)
            .map(|a| policy.backoff(a).as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![250, 500, 1000, 2000, 4000, 4000]);
        assert_eq!(policy.backoff(u32::MAX), policy.max_backoff);
    }

    #[test]
    fn reconnect_info_round_trips_and_refuses_damage() {
        let info = ReconnectInfo {
            server: "127.0.0.1:4000".into(),
            room: "main".into(),
            client_id: ClientId::from_seed(9),
            player: Some(PlayerId(2)),
            local_snapshot: Some(LocalSnapshot {
                tick: 12,
                checksum: Checksum::default(),
                bytes: vec![1, 2, 3],
            }),
            resume: Some(ResumeToken([4; 16])),
        };
        let bytes = info.to_bytes();
        assert_eq!(ReconnectInfo::from_bytes(&bytes), Ok(info));
        assert_eq!(
            ReconnectInfo::from_bytes(b"nonsense"),
            Err(ReconnectInfoError::NotReconnectInfo)
        );
        for cut in 8..bytes.len() {
            assert!(ReconnectInfo::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
