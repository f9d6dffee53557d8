//! Reading a log while its writer appends (a change feed's follower): entries in order from the
//! first one or from a snapshot's, each verified like recovery verifies it (checksum, sequence,
//! hash chain), read only up to a sequence number the caller knows is durable, and resumed where
//! the last read stopped. A reader holds no lock and changes nothing.

use crate::files::segment_name;
use crate::format::{Hash, SnapshotHeader, GENESIS_HASH, SEGMENT_HEADER_SIZE};
use crate::recovery::{first_seqs, list, locate_snapshot, scan, Anchor, End, EntryRef, Start, Tail};
use crate::storage::Storage;
use crate::OpenError;

/// Why a read could not go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The segment holding the next entry was recycled (retention): entries from `seq` on are
    /// gone from this log.
    Recycled {
        /// The first entry that cannot be read.
        seq: u64,
    },
    /// The log is damaged, or a file could not be read.
    Log(OpenError),
}

impl core::fmt::Display for ReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadError::Recycled { seq } => write!(f, "entry {seq} is no longer in the log (its segment was recycled)"),
            ReadError::Log(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<OpenError> for ReadError {
    fn from(e: OpenError) -> Self {
        ReadError::Log(e)
    }
}

/// A position in a log: the next entry to read, where it starts, and the hash it must chain to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogReader {
    segment: u64,
    offset: u64,
    next_seq: u64,
    /// None where the reader was placed at the first entry of a segment after the first: the
    /// link to the entry before it is not checked there (everything after it is).
    prev_hash: Option<Hash>,
}

impl LogReader {
    /// Before the log's first entry; `Recycled` if retention removed it.
    pub fn from_start<S: Storage>(storage: &S) -> Result<LogReader, ReadError> {
        let (segments, _) = list(storage)?;
        if segments.first().is_some_and(|first| *first != 0) {
            return Err(ReadError::Recycled { seq: 1 });
        }
        Ok(LogReader { segment: 0, offset: SEGMENT_HEADER_SIZE as u64, next_seq: 1, prev_hash: Some(GENESIS_HASH) })
    }

    /// Just after a snapshot's entry, found in the log and its chain hash checked.
    pub fn after_snapshot<S: Storage>(storage: &S, snapshot: &SnapshotHeader) -> Result<LogReader, ReadError> {
        let (segments, _) = list(storage)?;
        let firsts = first_seqs(storage, &segments)?;
        let located = locate_snapshot(storage, &segments, &firsts, snapshot).map_err(|why| OpenError::Corrupt {
            segment: segments.first().map_or_else(String::new, |s| segment_name(*s)),
            offset: 0,
            seq: snapshot.seq,
            reason: format!("the snapshot at {}: {why}", snapshot.seq),
        })?;
        let End::Clean { segment_pos, offset } = located.end else { unreachable!("a located snapshot ends cleanly") };
        Ok(LogReader { segment: segments[segment_pos], offset, next_seq: snapshot.seq + 1, prev_hash: Some(snapshot.chain_hash) })
    }

    /// Before entry `seq`, found from the start of the segment that holds it (every entry from
    /// there verified, the segment's first entry's link to the one before it excepted).
    pub fn at<S: Storage>(storage: &S, seq: u64) -> Result<LogReader, ReadError> {
        let (segments, _) = list(storage)?;
        let firsts = first_seqs(storage, &segments)?;
        let Some(pos) = firsts.iter().rposition(|f| f.is_some_and(|first| first <= seq)) else {
            return Err(if segments.first().is_some_and(|s| *s != 0) {
                ReadError::Recycled { seq }
            } else {
                ReadError::Log(OpenError::Io(format!("no log segment holds entry {seq}")))
            });
        };
        let first = firsts[pos].expect("found above");
        let prev_hash = (segments[pos] == 0).then_some(GENESIS_HASH);
        let mut reader = LogReader { segment: segments[pos], offset: SEGMENT_HEADER_SIZE as u64, next_seq: first, prev_hash };
        reader.read_through(storage, seq - 1, &mut |_| Ok(()))?;
        Ok(reader)
    }

    /// The sequence number of the next entry this reader hands out.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Hands every entry from [`LogReader::next_seq`] through `last` (which must be durable) to
    /// `visit`, in order, and moves on past them.
    pub fn read_through<S: Storage>(
        &mut self,
        storage: &S,
        last: u64,
        visit: &mut dyn FnMut(EntryRef<'_>) -> Result<(), String>,
    ) -> Result<(), ReadError> {
        if last < self.next_seq {
            return Ok(());
        }
        let (segments, _) = list(storage)?;
        let Some(segment_pos) = segments.iter().position(|s| *s == self.segment) else {
            if segments.is_empty() {
                return Err(ReadError::Log(OpenError::Io(format!("no log segment holds entry {last}"))));
            }
            return Err(ReadError::Recycled { seq: self.next_seq });
        };
        let anchor = Anchor { expect_seq: Some(self.next_seq), prev_hash: self.prev_hash };
        let start = Start { segment_pos, offset: self.offset, anchor };
        let scanned = scan(storage, &segments, start, self.next_seq - 1, Some(last), Tail::Search, visit)?;
        if let End::Clean { segment_pos, offset } = scanned.end {
            self.segment = segments[segment_pos];
            self.offset = offset;
        }
        if scanned.last_seq >= self.next_seq {
            self.prev_hash = Some(scanned.last_hash);
        }
        self.next_seq = scanned.last_seq + 1;
        if scanned.last_seq < last {
            let segment = segment_name(self.segment);
            let reason = format!("entry {} is durable but could not be read", scanned.last_seq + 1);
            return Err(ReadError::Log(OpenError::Corrupt { segment, offset: self.offset, seq: scanned.last_seq + 1, reason }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{LogReader, ReadError};
    use crate::{FsStorage, Retention, WalConfig};

    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bursar-reader-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn body(seq: u64) -> Vec<u8> {
        vec![seq as u8; 100 + (seq as usize * 37) % 3000]
    }

    /// A reader beside the writer sees every durable entry once, in order, across segments, in
    /// as many reads as it likes; from a snapshot it starts right after its entry.
    #[test]
    fn a_reader_follows_the_writer_across_segments_and_from_a_snapshot() {
        let dir = dir("follow");
        let config = WalConfig { segment_size_bytes: 64 << 10, entry_body_max_bytes: 8 << 10, ..WalConfig::default() };
        let (mut wal, _) = crate::open(FsStorage::open(&dir).unwrap(), config, &mut |_, _| Ok(()), &mut |_| Ok(())).unwrap();
        let reading = FsStorage::open_read_only(&dir).unwrap();
        let mut reader = LogReader::from_start(&reading).unwrap();
        let mut seen = Vec::new();
        for round in 0..20u64 {
            for k in 0..7 {
                let seq = round * 7 + k + 1;
                wal.append(seq, &body(seq)).unwrap();
            }
            let durable = wal.sync().unwrap();
            reader
                .read_through(&reading, durable, &mut |e| {
                    assert_eq!(e.body, body(e.seq).as_slice());
                    seen.push(e.seq);
                    Ok(())
                })
                .unwrap();
            if round == 9 {
                let hash = wal.last_hash();
                wal.write_snapshot(durable, hash, b"state").unwrap();
            }
        }
        assert_eq!(seen, (1..=140).collect::<Vec<_>>());
        let (header, _) = crate::read_snapshot(&reading, 70).unwrap();
        let mut from_snapshot = LogReader::after_snapshot(&reading, &header).unwrap();
        let mut later = Vec::new();
        from_snapshot
            .read_through(&reading, 140, &mut |e| {
                later.push(e.seq);
                Ok(())
            })
            .unwrap();
        assert_eq!(later, (71..=140).collect::<Vec<_>>());
        for seq in [1, 2, 55, 139, 140] {
            let mut placed = LogReader::at(&reading, seq).unwrap();
            let mut read = Vec::new();
            placed
                .read_through(&reading, 140, &mut |e| {
                    read.push(e.seq);
                    Ok(())
                })
                .unwrap();
            assert_eq!(read, (seq..=140).collect::<Vec<_>>(), "placed at {seq}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Once retention recycled the segment a reader stands in, it is told so, with the entry.
    #[test]
    fn a_recycled_position_is_a_typed_error() {
        let dir = dir("recycled");
        let config = WalConfig {
            segment_size_bytes: 16 << 10,
            entry_body_max_bytes: 4 << 10,
            retention: Retention::RecycleBeforeSnapshots,
            ..WalConfig::default()
        };
        let (mut wal, _) = crate::open(FsStorage::open(&dir).unwrap(), config, &mut |_, _| Ok(()), &mut |_| Ok(())).unwrap();
        let reading = FsStorage::open_read_only(&dir).unwrap();
        let mut reader = LogReader::from_start(&reading).unwrap();
        reader.read_through(&reading, 0, &mut |_| Ok(())).unwrap();
        for seq in 1..=200u64 {
            wal.append(seq, &[7u8; 1000]).unwrap();
            let durable = wal.sync().unwrap();
            if seq % 50 == 0 {
                let hash = wal.last_hash();
                wal.write_snapshot(durable, hash, b"state").unwrap();
            }
        }
        let error = reader.read_through(&reading, 200, &mut |_| Ok(())).unwrap_err();
        assert_eq!(error, ReadError::Recycled { seq: 1 });
        assert_eq!(LogReader::from_start(&reading).unwrap_err(), ReadError::Recycled { seq: 1 });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
