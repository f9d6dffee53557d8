//! Read-only memory maps of log files: the one module of Bursar allowed to use `unsafe`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapMut};

/// Maps a whole file read-only.
///
/// The mapping serves recovery, replay and inspection. Bursar never shrinks or truncates a
/// segment file while it is mapped, and a writer only changes bytes past what a reader has
/// validated (its `O_DIRECT` writes rewrite the written head of a block with the same bytes), so
/// the bytes a reader checked stay as they were.
pub fn map_read(file: &File) -> io::Result<Mmap> {
    // SAFETY: memmap2 requires that the file is not truncated or modified by others while
    // mapped. Segment files are preallocated at their final size and never truncated; the
    // data directory belongs to one Bursar process (see docs/wal-format.md, "Assumptions").
    unsafe { Mmap::map(file) }
}

/// Maps a whole file read-write: used only by the benchmark that compares `msync` against
/// `pwrite` + `fdatasync` (docs/wal-format.md, "Write path").
pub fn map_write(file: &File) -> io::Result<MmapMut> {
    // SAFETY: as above; the benchmark owns the file exclusively for its whole run.
    unsafe { MmapMut::map_mut(file) }
}
