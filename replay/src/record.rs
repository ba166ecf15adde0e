//! Record framing: a replay file is a stream of self-delimiting, individually
//! checksummed records, so a file cut short by a crash stays readable up to its last
//! complete record.
//!
//! ```text
//! kind u8 | payload length u32 LE | payload | check u64 LE
//! ```
//!
//! `check` is the first 8 bytes of blake3(kind ‖ length ‖ payload).

use std::io::{self, Write};

/// Bytes a record adds around its payload.
pub const RECORD_OVERHEAD: usize = 1 + 4 + 8;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// The file header: format, schema, rates, players, game config.
    Header = 1,
    /// The snapshot the replay starts from.
    InitialSnapshot = 2,
    /// One tick's verified input: presence, replaced inputs, values, commands.
    Input = 3,
    /// One tick whose input equals the previous tick's, with no commands.
    RepeatInput = 4,
    /// A frame checksum.
    Checksum = 5,
    /// A checkpoint snapshot.
    Checkpoint = 6,
    /// The recording ended normally.
    End = 7,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<RecordKind> {
        Some(match byte {
            1 => RecordKind::Header,
            2 => RecordKind::InitialSnapshot,
            3 => RecordKind::Input,
            4 => RecordKind::RepeatInput,
            5 => RecordKind::Checksum,
            6 => RecordKind::Checkpoint,
            7 => RecordKind::End,
            _ => return None,
        })
    }
}

fn check(kind: u8, len: [u8; 4], payload: &[u8]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(&len);
    hasher.update(payload);
    let hash = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// Writes one record.
pub fn write_record(out: &mut impl Write, kind: RecordKind, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record payload over 4 GiB"))?
        .to_le_bytes();
    out.write_all(&[kind as u8])?;
    out.write_all(&len)?;
    out.write_all(payload)?;
    out.write_all(&check(kind as u8, len, payload).to_le_bytes())
}

/// One record read from a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset of the record in the file.
    pub offset: usize,
    /// Its kind.
    pub kind: RecordKind,
    /// Its payload.
    pub payload: &'a [u8],
}

/// What reading the next record found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A complete, intact record.
    Record(Record<'a>),
    /// The end of the buffer, exactly at a record boundary.
    End,
    /// The buffer ends inside a record (or its last record is torn): the readable part
    /// ends at this offset.
    Truncated(usize),
    /// An intact-length record whose check or kind is wrong, with more data after it.
    Corrupt(usize),
}

/// Reads records from a buffer without trusting any length: a length is only used
/// after checking the bytes it claims are present.
pub struct RecordReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> RecordReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> RecordReader<'a> {
        RecordReader { bytes, offset: 0 }
    }

    /// Reads the next record.
    pub fn next_record(&mut self) -> Next<'a> {
        let start = self.offset;
        let rest = &self.bytes[start..];
        if rest.is_empty() {
            return Next::End;
        }
        if rest.len() < RECORD_OVERHEAD {
            return Next::Truncated(start);
        }
        let len_bytes = [rest[1], rest[2], rest[3], rest[4]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let Some(total) = len
            .checked_add(RECORD_OVERHEAD)
            .filter(|&t| t <= rest.len())
        else {
            return Next::Truncated(start);
        };
        let payload = &rest[5..5 + len];
        let mut stored = [0u8; 8];
        stored.copy_from_slice(&rest[5 + len..total]);
        let intact = u64::from_le_bytes(stored) == check(rest[0], len_bytes, payload);
        let kind = RecordKind::from_byte(rest[0]);
        match (intact, kind) {
            (true, Some(kind)) => {
                self.offset += total;
                Next::Record(Record {
                    offset: start,
                    kind,
                    payload,
                })
            }
            // A bad last record is a torn write; a bad record with data after it is damage.
            _ if total == rest.len() => Next::Truncated(start),
            _ => Next::Corrupt(start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_records() -> Vec<u8> {
        let mut bytes = Vec::new();
        write_record(&mut bytes, RecordKind::Input, b"hello").unwrap();
        write_record(&mut bytes, RecordKind::End, &[1, 2, 3]).unwrap();
        bytes
    }

    #[test]
    fn records_round_trip() {
        let bytes = two_records();
        let mut reader = RecordReader::new(&bytes);
        let Next::Record(first) = reader.next_record() else {
            panic!("record")
        };
        assert_eq!(
            (first.kind, first.payload),
            (RecordKind::Input, &b"hello"[..])
        );
        let Next::Record(second) = reader.next_record() else {
            panic!("record")
        };
        assert_eq!(
            (second.offset, second.kind),
            (5 + RECORD_OVERHEAD, RecordKind::End)
        );
        assert_eq!(reader.next_record(), Next::End);
    }

    #[test]
    fn every_cut_is_truncation_at_the_last_complete_record() {
        let bytes = two_records();
        let boundary = 5 + RECORD_OVERHEAD;
        for cut in 1..bytes.len() {
            let mut reader = RecordReader::new(&bytes[..cut]);
            let mut last = reader.next_record();
            while let Next::Record(_) = last {
                last = reader.next_record();
            }
            let expected = if cut < boundary { 0 } else { boundary };
            match last {
                Next::Truncated(at) => assert_eq!(at, expected, "cut {cut}"),
                Next::End => assert_eq!(cut, boundary, "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn damage_before_the_end_is_corruption() {
        let mut bytes = two_records();
        bytes[6] ^= 1;
        assert_eq!(RecordReader::new(&bytes).next_record(), Next::Corrupt(0));
    }
}
