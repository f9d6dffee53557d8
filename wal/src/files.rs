//! The files of a log directory by name: segments, snapshots and recycled spares, made and
//! parsed in one place, and listed.

use crate::storage::Storage;

/// The file name of segment `index`: zero-padded so names sort in log order.
pub fn segment_name(index: u64) -> String {
    format!("wal-{index:016}.seg")
}

/// The segment index a file name names, if it is a segment's ([`segment_name`]'s inverse).
pub fn segment_index(name: &str) -> Option<u64> {
    name.strip_prefix("wal-")?.strip_suffix(".seg")?.parse().ok()
}

/// The sequence number a snapshot's file name names, if it is a snapshot's ([`snapshot_name`]'s inverse).
pub fn snapshot_seq(name: &str) -> Option<u64> {
    name.strip_prefix("snap-")?.strip_suffix(".snap")?.parse().ok()
}

/// The file name a recycled segment `index` waits under until it is reused.
pub fn spare_name(index: u64) -> String {
    format!("spare-{index:016}.seg")
}

/// The file name of the snapshot that includes entries through `seq`.
pub fn snapshot_name(seq: u64) -> String {
    format!("snap-{seq:020}.snap")
}

/// Indexes of the segment files present, ascending (whether or not they are contiguous).
pub fn segment_indexes<S: Storage>(storage: &S) -> std::io::Result<Vec<u64>> {
    let mut segments: Vec<u64> = storage.list()?.iter().filter_map(|n| segment_index(n)).collect();
    segments.sort_unstable();
    Ok(segments)
}

/// Sequence numbers of the snapshot files present, newest first (valid or not).
pub fn snapshot_seqs<S: Storage>(storage: &S) -> std::io::Result<Vec<u64>> {
    let mut snapshots: Vec<u64> = storage.list()?.iter().filter_map(|n| snapshot_seq(n)).collect();
    snapshots.sort_unstable_by(|a, b| b.cmp(a));
    Ok(snapshots)
}

/// Recycled segments waiting for reuse (file names).
pub fn spare_names<S: Storage>(storage: &S) -> std::io::Result<Vec<String>> {
    Ok(storage.list()?.into_iter().filter(|n| n.starts_with("spare-") && n.ends_with(".seg")).collect())
}
