//! Snapshot transfers in either direction: the sender compresses the snapshot (its
//! wire form, [`tickstep_snapshot::wire`]) and keeps the chunks until the receiver is
//! done, resending the ones asked for; the receiver reassembles in any order, names what
//! is still missing when progress stalls, and decompresses (within its limit) before
//! anything checks the snapshot. [`Download`] and
//! [`Upload`] are the room's two kinds: a snapshot it sends a joiner, and one it asked
//! a client for.
//!
//! What a joiner can make the room send is bounded: a chunk goes again at most once
//! per [`CHUNK_RESEND_INTERVAL`] however often it is named, and a download spends at
//! most [`DOWNLOAD_SEND_FACTOR`] times the snapshot's size in all.

use std::sync::Arc;
use std::time::Duration;
use tickstep_engine::{Checksum, PlayerId, Tick};
use tickstep_snapshot::{Chunk, ChunkError, DEFAULT_CHUNK_SIZE, Reassembler, split, wire};

use crate::protocol::{MAX_LIST, ServerMessage, SnapshotSource};

/// A chunk is sent to one joiner at most once in this interval.
pub(crate) const CHUNK_RESEND_INTERVAL: Duration = Duration::from_millis(250);

/// A download sends at most this many times the snapshot's bytes (the first copy and
/// resends); a joiner that still lacks it is given up on.
pub(crate) const DOWNLOAD_SEND_FACTOR: u64 = 4;

/// A snapshot being sent, kept whole until the receiver has it.
#[derive(Debug)]
pub(crate) struct Outgoing {
    chunks: Vec<Chunk>,
}

impl Outgoing {
    /// Compresses `snapshot` and splits it for sending.
    pub(crate) fn new(snapshot: &[u8]) -> Outgoing {
        let mut wire = Vec::new();
        wire::compress(snapshot, &mut wire);
        Outgoing {
            chunks: split(&wire, DEFAULT_CHUNK_SIZE).collect(),
        }
    }

    /// Every chunk, in order.
    pub(crate) fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The chunks named in `wanted` that exist (at most [`MAX_LIST`]; all when empty).
    /// The client side's answer to the room's `ResendUpload`: the room is trusted.
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

    /// Total bytes on the wire.
    pub(crate) fn len(&self) -> u64 {
        self.chunks.first().map_or(0, |c| c.total_len)
    }
}

/// `snapshot`'s wire form cut into chunks of `chunk_size`: what a sender sends (tests).
#[cfg(test)]
pub(crate) fn wire_chunks(snapshot: &[u8], chunk_size: usize) -> Vec<Chunk> {
    let mut wire = Vec::new();
    wire::compress(snapshot, &mut wire);
    split(&wire, chunk_size).collect()
}

/// A snapshot being received.
#[derive(Debug)]
pub(crate) struct Incoming {
    reassembler: Reassembler,
    /// The most raw bytes the snapshot may decompress to.
    limit: u64,
    /// When the last new chunk arrived (or the transfer began).
    pub last_progress: Duration,
}

impl Incoming {
    /// Expects a snapshot of at most `limit` bytes (raw; its wire form may take LZ4's
    /// worst case of that), from `now`.
    pub(crate) fn new(limit: u64, now: Duration) -> Incoming {
        Incoming {
            reassembler: Reassembler::new(wire::max_wire_len(limit)),
            limit,
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

    /// Bytes held so far.
    pub(crate) fn held(&self) -> u64 {
        self.reassembler.held()
    }

    /// Chunks received of all.
    pub(crate) fn progress(&self) -> tickstep_snapshot::Progress {
        self.reassembler.progress()
    }

    /// Whether no chunk arrived for `patience`.
    pub(crate) fn stalled(&self, now: Duration, patience: Duration) -> bool {
        now.saturating_sub(self.last_progress) >= patience
    }

    /// The reassembled snapshot, decompressed.
    pub(crate) fn finish(self) -> Result<Vec<u8>, ChunkError> {
        let wire = self.reassembler.finish()?;
        let mut snapshot = Vec::new();
        wire::decompress(&wire, self.limit, &mut snapshot)?;
        Ok(snapshot)
    }
}

/// The snapshot a joiner is being sent.
#[derive(Debug)]
pub(crate) struct Download {
    /// Numbers the transfer.
    pub transfer: u32,
    /// The snapshot's tick.
    pub tick: Tick,
    /// The checksum the peers vouched for at that tick.
    pub checksum: Checksum,
    /// Where it came from.
    pub source: SnapshotSource,
    /// Its chunks (shared by every joiner it is sent to).
    snapshot: Arc<Outgoing>,
    /// When it was last sent whole.
    pub sent_at: Duration,
    /// When each chunk was last sent.
    chunk_sent: Vec<Option<Duration>>,
    /// Bytes of chunk data sent so far.
    spent: u64,
    /// Whether the joiner named missing chunks: it has the transfer, and asks for what
    /// it lacks, so the room never sends it whole again.
    asked: bool,
}

impl Download {
    /// A transfer of `snapshot` (of `tick`, vouched as `checksum`), not sent yet.
    pub(crate) fn new(
        transfer: u32,
        (tick, checksum): (Tick, Checksum),
        source: SnapshotSource,
        snapshot: Arc<Outgoing>,
        now: Duration,
    ) -> Download {
        Download {
            transfer,
            tick,
            checksum,
            source,
            chunk_sent: vec![None; snapshot.chunks().len()],
            snapshot,
            sent_at: now,
            spent: 0,
            asked: false,
        }
    }

    /// Whether to send it whole again at `now`: the joiner never named a missing chunk
    /// (it may have received none) and the last whole copy had `patience` plus the
    /// time to cross a slow link (1 MB/s) to arrive.
    pub(crate) fn whole_due(&self, now: Duration, patience: Duration) -> bool {
        let crossing = Duration::from_micros(self.snapshot.len());
        !self.asked && now >= self.sent_at + patience + crossing
    }

    /// The snapshot's size.
    pub(crate) fn len(&self) -> u64 {
        self.snapshot.len()
    }

    /// Whether the download spent its budget: the joiner is not getting it.
    pub(crate) fn exhausted(&self) -> bool {
        self.spent > DOWNLOAD_SEND_FACTOR * self.snapshot.len()
    }

    /// The messages sending every chunk (at first, and when the joiner stays silent),
    /// with the live tick.
    pub(crate) fn send_whole(&mut self, now: Duration, live: Tick) -> Vec<ServerMessage> {
        self.sent_at = now;
        let all: Vec<u32> = (0..self.chunk_sent.len() as u32).collect();
        self.send(now, &all, live, Duration::ZERO)
    }

    /// The messages resending the chunks named in `wanted` (at most [`MAX_LIST`]):
    /// each named chunk once, and only if it was not sent in the last
    /// [`CHUNK_RESEND_INTERVAL`].
    pub(crate) fn resend(
        &mut self,
        now: Duration,
        wanted: &[u32],
        live: Tick,
    ) -> Vec<ServerMessage> {
        self.asked |= !wanted.is_empty();
        let wanted: Vec<u32> = wanted.iter().take(MAX_LIST).copied().collect();
        self.send(now, &wanted, live, CHUNK_RESEND_INTERVAL)
    }

    fn send(
        &mut self,
        now: Duration,
        which: &[u32],
        live: Tick,
        interval: Duration,
    ) -> Vec<ServerMessage> {
        let mut messages = Vec::new();
        for &index in which {
            let Some(chunk) = self.snapshot.chunks().get(index as usize) else {
                continue;
            };
            let recent = self.chunk_sent[index as usize].is_some_and(|at| now < at + interval);
            if recent || self.exhausted() {
                continue;
            }
            self.chunk_sent[index as usize] = Some(now);
            self.spent += chunk.data.len() as u64;
            messages.push(ServerMessage::SnapshotChunk {
                transfer: self.transfer,
                tick: self.tick,
                checksum: self.checksum,
                source: self.source,
                live,
                chunk: chunk.clone(),
            });
        }
        messages
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

    /// `len` bytes that do not compress, so the wire form is as long as the snapshot.
    fn incompressible(len: u64) -> Vec<u8> {
        (0..len).map(|i| tickstep_engine::mix64(i) as u8).collect()
    }

    fn chunk_bytes(messages: &[ServerMessage]) -> u64 {
        messages
            .iter()
            .map(|m| match m {
                ServerMessage::SnapshotChunk { chunk, .. } => chunk.data.len() as u64,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn a_joiner_cannot_make_the_room_repeat_itself() {
        let bytes = incompressible(600_000);
        let snapshot = Arc::new(Outgoing::new(&bytes));
        let count = snapshot.chunks().len() as u32;
        let wire = snapshot.len();
        let ms = Duration::from_millis;
        let mut download = Download::new(
            1,
            (30, Checksum::default()),
            SnapshotSource::Buddy,
            snapshot,
            ms(0),
        );
        assert!(wire >= 600_000);
        assert_eq!(chunk_bytes(&download.send_whole(ms(0), 40)), wire);
        let patience = Duration::from_secs(2);
        let crossing = Duration::from_micros(wire);
        assert!(
            !download.whole_due(ms(1999) + crossing, patience),
            "600 KB take 0.6 s more"
        );
        assert!(download.whole_due(ms(2000) + crossing, patience));
        // Chunk 0 named 64 times, at once and again and again: not within the interval.
        let greedy = vec![0u32; 64];
        assert!(download.resend(ms(10), &greedy, 40).is_empty());
        assert_eq!(
            download.resend(ms(300), &greedy, 40).len(),
            1,
            "once, deduplicated"
        );
        assert!(download.resend(ms(400), &greedy, 40).is_empty());
        // Asking for everything over and over spends the budget, then nothing goes.
        let all: Vec<u32> = (0..count).collect();
        let mut sent = wire + DEFAULT_CHUNK_SIZE as u64;
        for step in 1..100 {
            sent += chunk_bytes(&download.resend(ms(300 * step + 400), &all, 40));
        }
        assert!(download.exhausted());
        assert!(
            !download.whole_due(ms(60_000), patience),
            "it named chunks: never whole again"
        );
        let bound = DOWNLOAD_SEND_FACTOR * wire + DEFAULT_CHUNK_SIZE as u64;
        assert!(sent <= bound, "{sent} > {bound}");
        assert!(download.send_whole(ms(60_000), 40).is_empty());
    }

    #[test]
    fn snapshots_travel_compressed_and_bad_compression_is_a_typed_error() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i / 64) as u8).collect();
        let outgoing = Outgoing::new(&bytes);
        assert!(outgoing.len() < 30_000, "{} wire bytes", outgoing.len());
        let mut incoming = Incoming::new(300_000, Duration::ZERO);
        for chunk in outgoing.chunks() {
            incoming.add(Duration::ZERO, chunk).expect("chunk");
        }
        assert_eq!(incoming.finish().expect("decompresses"), bytes);
        // Whole, well-formed chunks of bytes that are no LZ4 block.
        let junk = incompressible(10_000);
        let mut incoming = Incoming::new(1 << 20, Duration::ZERO);
        for chunk in split(&junk, DEFAULT_CHUNK_SIZE) {
            incoming.add(Duration::ZERO, &chunk).expect("chunk");
        }
        assert!(matches!(incoming.finish(), Err(ChunkError::Wire(_))));
        // A wire form that would decompress past the receiver's limit.
        let mut incoming = Incoming::new(299_999, Duration::ZERO);
        for chunk in outgoing.chunks() {
            incoming.add(Duration::ZERO, chunk).expect("chunk");
        }
        assert!(matches!(
            incoming.finish(),
            Err(ChunkError::Wire(wire::WireError::TooLarge { .. }))
        ));
    }

    #[test]
    fn lost_chunks_are_named_and_resent() {
        let bytes = incompressible(200_000);
        let outgoing = Outgoing::new(&bytes);
        assert_eq!(outgoing.chunks().len(), 4);
        assert!(
            outgoing.len() >= 200_000,
            "incompressible bytes stay as long"
        );
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
