//! Snapshot transfers in either direction: the sender keeps the chunks until the
//! receiver is done and resends the ones asked for; the receiver reassembles in any
//! order and, when progress stalls, names what is still missing. [`Download`] and
//! [`Upload`] are the room's two kinds: a snapshot it sends a joiner, and one it asked
//! a client for.

use std::sync::Arc;
use std::time::Duration;
use tickstep_engine::{Checksum, PlayerId, Tick};
use tickstep_snapshot::{Chunk, ChunkError, DEFAULT_CHUNK_SIZE, Reassembler, split};

use crate::protocol::{MAX_LIST, ServerMessage, SnapshotSource};

/// A snapshot being sent, kept whole until the receiver has it.
#[derive(Debug)]
pub(crate) struct Outgoing {
    chunks: Vec<Chunk>,
}

impl Outgoing {
    /// Splits `snapshot` for sending.
    pub(crate) fn new(snapshot: &[u8]) -> Outgoing {
        Outgoing {
            chunks: split(snapshot, DEFAULT_CHUNK_SIZE).collect(),
        }
    }

    /// Every chunk, in order.
    pub(crate) fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The chunks named in `wanted` that exist (at most [`MAX_LIST`]; all when empty).
    pub(crate) fn select<'a>(&'a self, wanted: &'a [u32]) -> impl Iterator<Item = &'a Chunk> + 'a {
        let all = wanted
            .is_empty()
            .then_some(self.chunks.iter())
            .into_iter()
            .flatten();
        let some = wanted
            .iter()
            .take(MAX_LIST)
            .filter_map(|&i| self.chunks.get(i as usize));
        all.chain(some)
    }

    /// Total bytes of the snapshot.
    pub(crate) fn len(&self) -> u64 {
        self.chunks.first().map_or(0, |c| c.total_len)
    }
}

/// A snapshot being received.
#[derive(Debug)]
pub(crate) struct Incoming {
    reassembler: Reassembler,
    /// When the last new chunk arrived (or the transfer began).
    pub last_progress: Duration,
}

impl Incoming {
    /// Expects a snapshot of at most `limit` bytes, from `now`.
    pub(crate) fn new(limit: u64, now: Duration) -> Incoming {
        Incoming {
            reassembler: Reassembler::new(limit),
            last_progress: now,
        }
    }

    /// Takes a chunk; `Ok(true)` once every chunk is in. Duplicates are harmless.
    pub(crate) fn add(&mut self, now: Duration, chunk: &Chunk) -> Result<bool, ChunkError> {
        match self.reassembler.add(chunk) {
            Ok(progress) => {
                self.last_progress = now;
                Ok(progress.is_complete())
            }
            Err(ChunkError::Duplicate { .. }) => Ok(self.reassembler.progress().is_complete()),
            Err(error) => Err(error),
        }
    }

    /// Up to [`MAX_LIST`] missing chunk indices (empty before the first chunk: then
    /// the sender should send everything).
    pub(crate) fn missing(&self) -> Vec<u32> {
        self.reassembler.missing().take(MAX_LIST).collect()
    }

    /// Chunks received of all.
    pub(crate) fn progress(&self) -> tickstep_snapshot::Progress {
        self.reassembler.progress()
    }

    /// Whether no chunk arrived for `patience`.
    pub(crate) fn stalled(&self, now: Duration, patience: Duration) -> bool {
        now.saturating_sub(self.last_progress) >= patience
    }

    /// The reassembled snapshot.
    pub(crate) fn finish(self) -> Result<Vec<u8>, ChunkError> {
        self.reassembler.finish()
    }
}

/// The snapshot a joiner is being sent.
#[derive(Debug)]
pub(crate) struct Download {
    /// Numbers the transfer.
    pub transfer: u32,
    /// The snapshot's tick.
    pub tick: Tick,
    /// The checksum the peers reported for that tick.
    pub checksum: Checksum,
    /// Where it came from.
    pub source: SnapshotSource,
    /// Its chunks (shared by every joiner it is sent to).
    pub snapshot: Arc<Outgoing>,
    /// When it was last sent whole.
    pub sent_at: Duration,
}

impl Download {
    /// The messages carrying `chunks` of this snapshot, with the live tick.
    pub(crate) fn messages<'a>(
        &'a self,
        chunks: impl Iterator<Item = &'a Chunk> + 'a,
        live: Tick,
    ) -> impl Iterator<Item = ServerMessage> + 'a {
        chunks.map(move |chunk| ServerMessage::SnapshotChunk {
            transfer: self.transfer,
            tick: self.tick,
            checksum: self.checksum,
            source: self.source,
            live,
            chunk: chunk.clone(),
        })
    }
}

/// A snapshot the room asked a client for.
#[derive(Debug)]
pub(crate) struct Upload {
    /// Numbers the request.
    pub id: u32,
    /// Who was asked.
    pub from: PlayerId,
    /// The tick asked for.
    pub tick: Tick,
    /// What has arrived.
    pub incoming: Incoming,
    /// When it was asked for.
    pub asked_at: Duration,
}

impl Upload {
    /// A request `id` to `from` for its snapshot of `tick`, of at most `limit` bytes.
    pub(crate) fn new(id: u32, from: PlayerId, tick: Tick, limit: u64, now: Duration) -> Upload {
        Upload {
            id,
            from,
            tick,
            incoming: Incoming::new(limit, now),
            asked_at: now,
        }
    }

    /// What to send `from` when the upload stalled: the missing chunks, or the whole
    /// request again when nothing arrived. `None` when it has not stalled.
    pub(crate) fn chase(&mut self, now: Duration, patience: Duration) -> Option<ServerMessage> {
        if !self.incoming.stalled(now, patience) {
            return None;
        }
        self.incoming.last_progress = now;
        let missing = self.incoming.missing();
        Some(if missing.is_empty() {
            ServerMessage::UploadRequest {
                upload: self.id,
                tick: self.tick,
            }
        } else {
            ServerMessage::ResendUpload {
                upload: self.id,
                chunks: missing,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_chunks_are_named_and_resent() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let outgoing = Outgoing::new(&bytes);
        assert_eq!(outgoing.chunks().len(), 4);
        assert_eq!(outgoing.len(), 200_000);
        let mut incoming = Incoming::new(1 << 20, Duration::ZERO);
        assert_eq!(incoming.missing(), Vec::<u32>::new());
        for chunk in outgoing.chunks().iter().step_by(2) {
            assert!(!incoming.add(Duration::from_secs(1), chunk).unwrap());
        }
        assert!(incoming.stalled(Duration::from_secs(3), Duration::from_secs(2)));
        assert!(!incoming.stalled(Duration::from_secs(2), Duration::from_secs(2)));
        let missing = incoming.missing();
        assert_eq!(missing, vec![1, 3]);
        let resent: Vec<_> = outgoing.select(&missing).cloned().collect();
        assert_eq!(resent.len(), 2);
        assert!(!incoming.add(Duration::from_secs(3), &resent[0]).unwrap());
        assert!(
            !incoming.add(Duration::from_secs(3), &resent[0]).unwrap(),
            "duplicate"
        );
        assert!(incoming.add(Duration::from_secs(3), &resent[1]).unwrap());
        assert_eq!(incoming.finish().unwrap(), bytes);
        assert_eq!(outgoing.select(&[]).count(), 4);
        assert_eq!(outgoing.select(&[9]).count(), 0);
    }
}
