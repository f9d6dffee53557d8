//! The history store: fixed-size chunks of records appended to one file, each 4 KiB page
//! checksummed in a second, so records that left memory are read back one page at a time.
//!
//! Bytes only, as the rest of this crate: the owner hands in chunk `k` as `chunk_bytes` bytes and
//! reads back byte ranges; what a record is, it alone knows. Chunk `k` sits at `k × chunk_bytes`
//! in `history.dat` (a record's offset is its index times its size), and its pages' CRC32Cs follow
//! a 32-byte header in `history.sum`. An append writes and syncs the data, then writes and syncs
//! the sums: a chunk counts as stored only once both are durable, so a crash leaves at most a
//! partial tail, cut at the next open. A read verifies every page it touches and names the page
//! that fails. The format is in `docs/history-format.md`.
//!
//! Chunks are written with `O_DIRECT` where the file system allows it, from a 4 KiB-aligned
//! buffer (the caller's, if aligned, or a copy): through the page cache, copying each chunk into
//! fresh cache pages was most of the writer's CPU, far more once the cache was full (a server
//! with tens of gigabytes of history), and the cache's writeback stalled the log's syncs
//! (bench/README.md). Reads still go through the page cache.

use crate::block::BlockBuffer;
use crate::format::crc32c;
use crate::storage::{direct_aligned, open_direct, open_direct_read};
use parking_lot::{Mutex, RwLock};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes per checksummed page.
pub const HISTORY_PAGE_BYTES: usize = 4096;
/// The sums file's first bytes.
pub const HISTORY_MAGIC: [u8; 8] = *b"BRSRHIST";
/// The sums file's format version.
pub const HISTORY_VERSION: u32 = 1;
/// Bytes of the sums file's header.
pub const HISTORY_HEADER_BYTES: u64 = 32;
/// Most reads [`HistoryStore::read_many`] keeps in flight (one thread each).
pub const HISTORY_READERS_MAX: usize = 16;
/// Fewest records a reader of [`HistoryStore::read_many`] is started for: fewer are read by the
/// caller's thread, one after another (a thread costs more than a cached page).
const HISTORY_READS_PER_READER_MIN: usize = 4;
/// The data file's name in the store's directory.
pub const HISTORY_DATA_FILE: &str = "history.dat";
/// The sums file's name in the store's directory.
pub const HISTORY_SUMS_FILE: &str = "history.sum";

/// An append-only store of fixed-size chunks with a checksum per page (see the module).
#[derive(Debug)]
pub struct HistoryStore {
    dir: PathBuf,
    data: File,
    /// `data` opened for `O_DIRECT` writes, unless the file system refuses them (tmpfs).
    direct: Mutex<Option<File>>,
    /// `data` opened for `O_DIRECT` reads, unless the file system refuses them: whole chunks
    /// read in order ([`HistoryStore::read_chunk_uncached`]).
    direct_read: Option<File>,
    sums: File,
    chunk_bytes: u64,
    /// Every stored chunk's page checksums, in chunk order (4 bytes per 4 KiB page).
    page_sums: RwLock<Vec<u32>>,
    /// Chunks stored durably.
    chunks: AtomicU64,
    /// Serializes the writers (appends, rewrites, truncation); reads never wait for it.
    writing: Mutex<()>,
    /// Opened by [`HistoryStore::open_read_only`]: nothing is written, cut or synced.
    read_only: bool,
    /// Set by [`HistoryStore::fill_disk_for_tests`]: every write fails as on a full disk.
    full: AtomicBool,
}

impl HistoryStore {
    /// Opens (or creates) the store in `dir` for chunks of `chunk_bytes` (a positive multiple of
    /// [`HISTORY_PAGE_BYTES`]). A partial chunk at the end (a crash during an append) is cut. A
    /// store of another chunk size or with a damaged header is refused (`InvalidData`, naming
    /// the file and why) and left as it is: its chunks may be all that is left of old transfers
    /// (slim snapshots leave them to the store, and retention may have recycled the log).
    pub fn open(dir: impl AsRef<Path>, chunk_bytes: u64) -> io::Result<HistoryStore> {
        HistoryStore::open_as(dir.as_ref(), chunk_bytes, false)
    }

    /// Opens an existing store for reading only (the audit tools, beside a running server):
    /// nothing in `dir` is created, written or cut; a partial tail is left and not counted.
    pub fn open_read_only(dir: impl AsRef<Path>, chunk_bytes: u64) -> io::Result<HistoryStore> {
        HistoryStore::open_as(dir.as_ref(), chunk_bytes, true)
    }

    fn open_as(dir: &Path, chunk_bytes: u64, read_only: bool) -> io::Result<HistoryStore> {
        assert!(
            chunk_bytes > 0 && chunk_bytes.is_multiple_of(HISTORY_PAGE_BYTES as u64),
            "chunk of {chunk_bytes} bytes is not whole pages"
        );
        let dir = dir.to_path_buf();
        if !read_only {
            std::fs::create_dir_all(&dir)?;
        }
        let open = |name: &str| {
            let path = dir.join(name);
            let opened = OpenOptions::new().read(true).write(!read_only).create(!read_only).truncate(false).open(&path);
            opened.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        let (data, sums) = (open(HISTORY_DATA_FILE)?, open(HISTORY_SUMS_FILE)?);
        let mut direct = None;
        if !read_only {
            crate::storage::sync_dir(&dir)?;
            direct = match open_direct(&dir.join(HISTORY_DATA_FILE), false) {
                Ok(file) => Some(file),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
                Err(e) => return Err(e),
            };
        }
        let direct_read = match open_direct_read(&dir.join(HISTORY_DATA_FILE)) {
            Ok(file) => Some(file),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
            Err(e) => return Err(e),
        };
        let mut store = HistoryStore {
            dir,
            data,
            direct: Mutex::new(direct),
            direct_read,
            sums,
            chunk_bytes,
            page_sums: RwLock::new(Vec::new()),
            chunks: AtomicU64::new(0),
            writing: Mutex::new(()),
            read_only,
            full: AtomicBool::new(false),
        };
        store.load()?;
        Ok(store)
    }

    /// Reads the header and sums, refusing a header that is damaged or names another format.
    fn load(&mut self) -> io::Result<()> {
        let sums_len = self.sums.metadata()?.len();
        if sums_len == 0 && self.data.metadata()?.len() == 0 {
            return if self.read_only { Ok(()) } else { self.write_header() };
        }
        let mut head = [0u8; HISTORY_HEADER_BYTES as usize];
        let why = match self.sums.read_exact_at(&mut head, 0) {
            Err(_) => Some(format!("{} is shorter than its header", HISTORY_SUMS_FILE)),
            Ok(()) => header_problem(&head, self.chunk_bytes),
        };
        if let Some(why) = why {
            let what = format!("{}: {why}", self.dir.join(HISTORY_SUMS_FILE).display());
            return Err(io::Error::new(io::ErrorKind::InvalidData, what));
        }
        let sums_per_chunk = self.sums_per_chunk() as u64;
        let by_sums = (sums_len - HISTORY_HEADER_BYTES) / (4 * sums_per_chunk);
        let by_data = self.data.metadata()?.len() / self.chunk_bytes;
        let chunks = by_sums.min(by_data);
        let mut raw = vec![0u8; (chunks * sums_per_chunk * 4) as usize];
        self.sums.read_exact_at(&mut raw, HISTORY_HEADER_BYTES)?;
        *self.page_sums.get_mut() = raw.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        if self.read_only {
            self.chunks.store(chunks, Ordering::Release);
            return Ok(());
        }
        self.cut_to(chunks)
    }

    fn write_header(&self) -> io::Result<()> {
        let mut head = [0u8; HISTORY_HEADER_BYTES as usize];
        head[0..8].copy_from_slice(&HISTORY_MAGIC);
        head[8..12].copy_from_slice(&HISTORY_VERSION.to_le_bytes());
        head[12..16].copy_from_slice(&(HISTORY_PAGE_BYTES as u32).to_le_bytes());
        head[16..24].copy_from_slice(&self.chunk_bytes.to_le_bytes());
        let crc = crc32c(&[&head[0..24]]);
        head[24..28].copy_from_slice(&crc.to_le_bytes());
        self.sums.write_all_at(&head, 0)?;
        self.sums.sync_data()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes per chunk.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    /// Chunks stored durably (0 to this number, all of them).
    pub fn chunks(&self) -> u64 {
        self.chunks.load(Ordering::Acquire)
    }

    fn sums_per_chunk(&self) -> usize {
        self.chunk_bytes as usize / HISTORY_PAGE_BYTES
    }

    /// Stores chunk `k`, which must be the next one (`k == chunks()`), durably: once this returns,
    /// [`HistoryStore::chunks`] counts it. On an error the store still holds the chunks before.
    pub fn append(&self, k: u64, bytes: &[u8]) -> io::Result<()> {
        let _writing = self.writing.lock();
        assert_eq!(k, self.chunks(), "history chunks are appended in order");
        self.write_chunk(k, bytes)?;
        self.chunks.store(k + 1, Ordering::Release);
        Ok(())
    }

    /// Fault injection for tests: while `full`, every write fails as it would on a full disk
    /// (`StorageFull`), before anything is written.
    #[doc(hidden)]
    pub fn fill_disk_for_tests(&self, full: bool) {
        self.full.store(full, Ordering::Relaxed);
    }

    /// Writes chunk `k` (new, or replacing a stored one) and its sums, both synced.
    fn write_chunk(&self, k: u64, bytes: &[u8]) -> io::Result<()> {
        assert!(!self.read_only, "a read-only history store is never written");
        if self.full.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on the device (injected by a test)"));
        }
        assert_eq!(bytes.len() as u64, self.chunk_bytes, "a history chunk is {} bytes", self.chunk_bytes);
        self.write_data(bytes, k * self.chunk_bytes)?;
        self.data.sync_data()?;
        let sums: Vec<u32> = bytes.chunks_exact(HISTORY_PAGE_BYTES).map(|page| crc32c(&[page])).collect();
        let raw: Vec<u8> = sums.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.sums.write_all_at(&raw, HISTORY_HEADER_BYTES + k * raw.len() as u64)?;
        self.sums.sync_data()?;
        let per_chunk = self.sums_per_chunk();
        let mut page_sums = self.page_sums.write();
        let at = k as usize * per_chunk;
        if page_sums.len() == at {
            page_sums.extend_from_slice(&sums);
        } else {
            page_sums[at..at + per_chunk].copy_from_slice(&sums);
        }
        Ok(())
    }

    /// Writes `bytes` at `offset` of the data file (not yet synced): with `O_DIRECT` where the
    /// file system allows it, from `bytes` if aligned or else from a copy; otherwise through the
    /// page cache. Either way a piece of [`PACED_WRITE_BYTES`] at a time, each on the device
    /// before the next is sent, so the log's syncs never queue behind a whole chunk.
    fn write_data(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        let mut direct = self.direct.lock();
        if let Some(file) = direct.as_ref() {
            // A copy for a caller whose bytes are not aligned (a repair, not the writer thread).
            let copy;
            let aligned = if direct_aligned(offset, bytes) {
                bytes
            } else {
                copy = aligned_copy(bytes);
                copy.bytes()
            };
            match write_pieces(aligned, offset, |piece, at| file.write_all_at(piece, at)) {
                Ok(()) => return Ok(()),
                // The file system wants another alignment: what the direct write left is
                // written again below, byte for byte, and later writes take the page cache.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => *direct = None,
                Err(e) => return Err(e),
            }
        }
        write_paced(&self.data, bytes, offset)
    }

    /// Whether stored chunk `k` holds exactly `bytes`, with matching sums (one read of the chunk).
    pub fn holds(&self, k: u64, bytes: &[u8]) -> io::Result<bool> {
        assert!(k < self.chunks(), "chunk {k} is not stored");
        let mut stored = vec![0u8; self.chunk_bytes as usize];
        self.data.read_exact_at(&mut stored, k * self.chunk_bytes)?;
        let per_chunk = self.sums_per_chunk();
        let page_sums = self.page_sums.read();
        let sums = &page_sums[k as usize * per_chunk..(k as usize + 1) * per_chunk];
        Ok(stored == bytes && stored.chunks_exact(HISTORY_PAGE_BYTES).zip(sums).all(|(page, &sum)| crc32c(&[page]) == sum))
    }

    /// Replaces stored chunk `k` with `bytes` (a chunk found damaged or stale), durably.
    pub fn rewrite(&self, k: u64, bytes: &[u8]) -> io::Result<()> {
        let _writing = self.writing.lock();
        assert!(k < self.chunks(), "chunk {k} is not stored");
        self.write_chunk(k, bytes)
    }

    /// Forgets every chunk from `chunks` on (a store ahead of the state it derives from).
    pub fn truncate(&self, chunks: u64) -> io::Result<()> {
        let _writing = self.writing.lock();
        self.cut_to(chunks.min(self.chunks()))
    }

    fn cut_to(&self, chunks: u64) -> io::Result<()> {
        assert!(!self.read_only, "a read-only history store is never cut");
        let per_chunk = self.sums_per_chunk() as u64;
        self.chunks.store(chunks, Ordering::Release);
        self.page_sums.write().truncate((chunks * per_chunk) as usize);
        self.sums.set_len(HISTORY_HEADER_BYTES + chunks * per_chunk * 4)?;
        self.data.set_len(chunks * self.chunk_bytes)?;
        self.sums.sync_all()?;
        self.data.sync_all()
    }

    /// Fills `out` with the stored bytes at `offset`, verifying every page it touches; the range
    /// must lie in stored chunks. An error names the page that could not be read or failed its
    /// checksum.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = offset + out.len() as u64;
        if end > self.chunks() * self.chunk_bytes {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("history bytes {offset}..{end} are not stored")));
        }
        let page = HISTORY_PAGE_BYTES as u64;
        if offset.is_multiple_of(page) && out.len().is_multiple_of(HISTORY_PAGE_BYTES) {
            return self.read_pages(offset / page, out);
        }
        let first = offset / page;
        let mut buffer = [0u8; HISTORY_PAGE_BYTES];
        let mut written = 0;
        for p in first..end.div_ceil(page) {
            self.read_pages(p, &mut buffer)?;
            let from = if p == first { (offset % page) as usize } else { 0 };
            let take = (HISTORY_PAGE_BYTES - from).min(out.len() - written);
            out[written..written + take].copy_from_slice(&buffer[from..from + take]);
            written += take;
        }
        Ok(())
    }

    /// Reads whole stored chunk `k` into `out` (resized to a chunk), checking every page, as
    /// [`HistoryStore::read`] does, but past the page cache where the file system allows
    /// (`O_DIRECT`, into `out`'s aligned bytes). A restore reads every stored chunk once, in
    /// order: through the page cache, each chunk is copied out of pages just filled for it, and
    /// those pages push out others the server will read again.
    pub fn read_chunk_uncached(&self, k: u64, out: &mut BlockBuffer) -> io::Result<()> {
        if k >= self.chunks() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("history chunk {k} is not stored")));
        }
        let (len, offset) = (self.chunk_bytes as usize, k * self.chunk_bytes);
        out.resize(len);
        let (vec, lead) = out.vec();
        let bytes = &mut vec[lead..lead + len];
        let Some(file) = self.direct_read.as_ref().filter(|_| direct_aligned(offset, bytes)) else {
            return self.read(offset, bytes);
        };
        match file.read_exact_at(bytes, offset) {
            Ok(()) => self.check_pages(offset / HISTORY_PAGE_BYTES as u64, bytes),
            // The file system wants another alignment: through the page cache instead.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.read(offset, bytes),
            Err(e) => Err(io::Error::new(e.kind(), format!("{} chunk {k} (offset {offset}): {e}", self.data_path().display()))),
        }
    }

    /// Reads `record_bytes` at each of `offsets` into `out` (record `i` at `i × record_bytes`),
    /// as [`HistoryStore::read`] does. What the page cache holds is read at once on this thread;
    /// the rest with up to [`HISTORY_READERS_MAX`] reads in flight, so a cold store answers many
    /// scattered records in the time of a few, not one after another.
    pub fn read_many(&self, offsets: &[u64], record_bytes: usize, out: &mut [u8]) -> io::Result<()> {
        assert_eq!(out.len(), offsets.len() * record_bytes, "one record of output per offset");
        let mut cold: Vec<(u64, &mut [u8])> = Vec::new();
        for (&at, record) in offsets.iter().zip(out.chunks_exact_mut(record_bytes)) {
            if !self.read_if_cached(at, record)? {
                cold.push((at, record));
            }
        }
        let readers = cold.len().div_ceil(HISTORY_READS_PER_READER_MIN).min(HISTORY_READERS_MAX);
        if readers <= 1 {
            return cold.into_iter().try_for_each(|(at, record)| self.read(at, record));
        }
        // Reader r takes records r, r + readers, ...
        let mut slots: Vec<Vec<(u64, &mut [u8])>> = (0..readers).map(|_| Vec::new()).collect();
        for (i, read) in cold.into_iter().enumerate() {
            slots[i % readers].push(read);
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = slots
                .into_iter()
                .map(|slot| scope.spawn(move || slot.into_iter().try_for_each(|(at, record)| self.read(at, record))))
                .collect();
            handles.into_iter().try_for_each(|h| h.join().expect("a history reader panicked"))
        })
    }

    /// As [`HistoryStore::read`] for a read within one page, if the page cache holds that page
    /// (checked against its sum); `Ok(false)` otherwise (or for a read across pages), `out` then
    /// unspecified.
    fn read_if_cached(&self, offset: u64, out: &mut [u8]) -> io::Result<bool> {
        let end = offset + out.len() as u64;
        let page = HISTORY_PAGE_BYTES as u64;
        if end > self.chunks() * self.chunk_bytes || offset / page != (end - 1) / page {
            return Ok(false);
        }
        let mut buffer = [0u8; HISTORY_PAGE_BYTES];
        let p = offset / page;
        if !crate::sys::read_cached(&self.data, p * page, &mut buffer)? {
            return Ok(false);
        }
        self.check_page(p, &buffer)?;
        let from = (offset % page) as usize;
        out.copy_from_slice(&buffer[from..from + out.len()]);
        Ok(true)
    }

    /// Whole pages of the data file from page `first` on into `out`, in one read, each checked
    /// against its sum where it landed (a chunk's restore reads 4 MiB: one system call and no
    /// copy, not 1 024 of each).
    fn read_pages(&self, first: u64, out: &mut [u8]) -> io::Result<()> {
        let at = first * HISTORY_PAGE_BYTES as u64;
        self.data
            .read_exact_at(out, at)
            .map_err(|e| io::Error::new(e.kind(), format!("{} pages from {first} (offset {at}): {e}", self.data_path().display())))?;
        self.check_pages(first, out)
    }

    /// Checks pages `first..` as read into `bytes` (whole pages) against their sums.
    fn check_pages(&self, first: u64, bytes: &[u8]) -> io::Result<()> {
        for (k, page) in bytes.chunks_exact(HISTORY_PAGE_BYTES).enumerate() {
            self.check_page(first + k as u64, page.try_into().expect("a whole page"))?;
        }
        Ok(())
    }

    /// The data file's path, for messages.
    fn data_path(&self) -> PathBuf {
        self.dir.join(HISTORY_DATA_FILE)
    }

    /// Checks page `p`, as read into `buffer`, against its sum; the error names the page.
    fn check_page(&self, p: u64, buffer: &[u8; HISTORY_PAGE_BYTES]) -> io::Result<()> {
        let expected = self.page_sums.read()[p as usize];
        let found = crc32c(&[buffer]);
        if found != expected {
            let at = p * HISTORY_PAGE_BYTES as u64;
            let what = format!(
                "{} page {p} (offset {at}): checksum {found:#010x}, stored {expected:#010x}",
                self.dir.join(HISTORY_DATA_FILE).display()
            );
            return Err(io::Error::new(io::ErrorKind::InvalidData, what));
        }
        Ok(())
    }
}

/// What is wrong with a sums file's header for chunks of `chunk_bytes`, if anything.
fn header_problem(head: &[u8; HISTORY_HEADER_BYTES as usize], chunk_bytes: u64) -> Option<String> {
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    if head[0..8] != HISTORY_MAGIC || u32_at(24) != crc32c(&[&head[0..24]]) {
        return Some(format!("{HISTORY_SUMS_FILE} has no valid header"));
    }
    if u32_at(8) != HISTORY_VERSION || u32_at(12) != HISTORY_PAGE_BYTES as u32 {
        return Some(format!("{HISTORY_SUMS_FILE} is format version {} with {}-byte pages", u32_at(8), u32_at(12)));
    }
    if u64_at(16) != chunk_bytes {
        return Some(format!("{HISTORY_SUMS_FILE} holds chunks of {} bytes, not {chunk_bytes}", u64_at(16)));
    }
    None
}

/// `bytes` in a buffer that starts at a 4 KiB-aligned address.
fn aligned_copy(bytes: &[u8]) -> BlockBuffer {
    let mut copy = BlockBuffer::with_capacity(bytes.len());
    copy.extend_from_slice(bytes);
    copy
}

/// Bytes the device takes from one history write at a time (see [`HistoryStore::write_data`]).
const PACED_WRITE_BYTES: usize = 256 << 10;

/// Writes `bytes` at `offset` of `file` through the page cache, a piece of [`PACED_WRITE_BYTES`]
/// at a time, each on the device before the next is sent (`sync_file_range`), so the log's syncs
/// never queue behind the whole write (not yet synced).
pub(crate) fn write_paced(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    write_pieces(bytes, offset, |piece, at| {
        file.write_all_at(piece, at)?;
        crate::sys::write_back(file, at, piece.len() as u64)
    })
}

/// Hands `bytes`, to be written at `offset`, to `write` a piece of [`PACED_WRITE_BYTES`] at a
/// time (each piece and its offset stay 4 KiB-aligned when `bytes` and `offset` are).
fn write_pieces(bytes: &[u8], offset: u64, mut write: impl FnMut(&[u8], u64) -> io::Result<()>) -> io::Result<()> {
    for (i, piece) in bytes.chunks(PACED_WRITE_BYTES).enumerate() {
        write(piece, offset + (i * PACED_WRITE_BYTES) as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bursar-history-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn chunk(k: u8) -> Vec<u8> {
        (0..2 * HISTORY_PAGE_BYTES).map(|i| (i as u8).wrapping_mul(31) ^ k).collect()
    }

    const CHUNK: u64 = 2 * HISTORY_PAGE_BYTES as u64;

    /// A store in `dir` holding chunks `0..n` (`chunk(k)` each), closed again.
    fn write_chunks(dir: &Path, n: u8) {
        let store = HistoryStore::open(dir, CHUNK).unwrap();
        (0..n).for_each(|k| store.append(u64::from(k), &chunk(k)).unwrap());
    }

    #[test]
    fn chunks_read_back_across_pages_and_survive_reopening() {
        let dir = temp_dir("roundtrip");
        write_chunks(&dir, 2);
        let store = HistoryStore::open(&dir, CHUNK).unwrap();
        assert_eq!(store.chunks(), 2);
        let mut out = vec![0u8; 300];
        store.read(CHUNK + 4000, &mut out).unwrap();
        assert_eq!(out, chunk(1)[4000..4300]);
        assert!(store.holds(0, &chunk(0)).unwrap() && !store.holds(0, &chunk(1)).unwrap());
        assert!(store.read(2 * CHUNK - 10, &mut out).is_err(), "beyond the stored chunks");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A chunk handed in at an aligned address (written as it is, with `O_DIRECT` here) and one
    /// at an unaligned address (copied first) are stored byte for byte; so is a rewrite, and
    /// reads right after the writes see them (the direct writes leave no stale cached page).
    #[test]
    fn aligned_and_unaligned_chunks_are_stored_alike() {
        let dir = temp_dir("aligned");
        let store = HistoryStore::open(&dir, CHUNK).unwrap();
        let mut aligned = BlockBuffer::with_capacity(CHUNK as usize);
        aligned.extend_from_slice(&chunk(0));
        assert_eq!(aligned.bytes().as_ptr() as usize % crate::block::BLOCK_BYTES, 0);
        store.append(0, aligned.bytes()).unwrap();
        let mut shifted = vec![0u8; CHUNK as usize + 1];
        shifted[1..].copy_from_slice(&chunk(1));
        store.append(1, &shifted[1..]).unwrap();
        let mut out = vec![0u8; CHUNK as usize];
        store.read(0, &mut out).unwrap();
        assert_eq!(out, chunk(0));
        store.read(CHUNK, &mut out).unwrap();
        assert_eq!(out, chunk(1));
        store.rewrite(0, &chunk(7)).unwrap();
        store.read(0, &mut out).unwrap();
        assert_eq!(out, chunk(7));
        drop(store);
        let store = HistoryStore::open(&dir, CHUNK).unwrap();
        assert!(store.holds(0, &chunk(7)).unwrap() && store.holds(1, &chunk(1)).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn many_records_read_side_by_side_equal_single_reads_and_a_damaged_one_fails_them() {
        let dir = temp_dir("many");
        write_chunks(&dir, 3);
        let store = HistoryStore::open(&dir, CHUNK).unwrap();
        // Out of the page cache (where the file system lets go of it), so the readers read.
        let _ = crate::sys::drop_cached_pages(&store.data);
        // Scattered, repeated and out of order; 3 records (one reader) and 97 (several).
        for count in [3u64, 97] {
            let offsets: Vec<u64> = (0..count).map(|i| (i * 7_919 * 128) % (3 * CHUNK - 128)).collect();
            let mut many = vec![0u8; offsets.len() * 128];
            store.read_many(&offsets, 128, &mut many).unwrap();
            for (&at, record) in offsets.iter().zip(many.chunks_exact(128)) {
                let mut one = [0u8; 128];
                store.read(at, &mut one).unwrap();
                assert_eq!(record, one, "record at {at}");
            }
        }
        let data = OpenOptions::new().write(true).open(dir.join(HISTORY_DATA_FILE)).unwrap();
        data.write_all_at(&[0xff], 2 * CHUNK + 1).unwrap();
        let offsets: Vec<u64> = (0..20).map(|i| i * 1_000).chain([2 * CHUNK]).collect();
        let error = store.read_many(&offsets, 128, &mut vec![0u8; offsets.len() * 128]).unwrap_err();
        assert!(error.to_string().contains("page 4 (offset 16384)"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_page_is_named_and_a_partial_tail_is_cut() {
        let dir = temp_dir("damage");
        write_chunks(&dir, 2);
        let data = OpenOptions::new().write(true).open(dir.join(HISTORY_DATA_FILE)).unwrap();
        data.write_all_at(&[0xff], CHUNK + 5000).unwrap();
        // A crash during the next append: its data half written, no sums.
        data.write_all_at(&chunk(2)[..100], 2 * CHUNK).unwrap();
        drop(data);
        let store = HistoryStore::open(&dir, CHUNK).unwrap();
        assert_eq!(store.chunks(), 2);
        let mut out = [0u8; 128];
        store.read(CHUNK + 128, &mut out).unwrap();
        let error = store.read(CHUNK + 4992, &mut out).unwrap_err();
        assert!(error.to_string().contains("page 3 (offset 12288)"), "{error}");
        // A whole chunk is read in one piece and each page checked where it landed: the same page
        // is named, and the undamaged chunk reads back as written.
        let mut whole = vec![0u8; CHUNK as usize];
        let error = store.read(CHUNK, &mut whole).unwrap_err();
        assert!(error.to_string().contains("page 3 (offset 12288)"), "{error}");
        store.read(0, &mut whole).unwrap();
        assert_eq!(whole, chunk(0));
        assert!(!store.holds(1, &chunk(1)).unwrap());
        store.rewrite(1, &chunk(1)).unwrap();
        store.read(CHUNK + 4992, &mut out).unwrap();
        assert_eq!(std::fs::metadata(dir.join(HISTORY_DATA_FILE)).unwrap().len(), 2 * CHUNK);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A whole chunk read past the page cache (`O_DIRECT` where the file system allows) is the
    /// chunk as stored, also right after a rewrite; a damaged page fails it, named; a chunk not
    /// stored is refused.
    #[test]
    fn whole_chunks_read_past_the_page_cache_equal_the_stored_ones_and_a_damaged_page_is_named() {
        let dir = temp_dir("uncached");
        write_chunks(&dir, 3);
        let store = HistoryStore::open(&dir, CHUNK).unwrap();
        store.rewrite(1, &chunk(9)).unwrap();
        let mut out = BlockBuffer::with_capacity(0);
        for (k, expected) in [(0, chunk(0)), (1, chunk(9)), (2, chunk(2))] {
            store.read_chunk_uncached(k, &mut out).unwrap();
            assert_eq!(out.bytes(), expected, "chunk {k}");
        }
        let error = store.read_chunk_uncached(3, &mut out).unwrap_err();
        assert!(error.to_string().contains("history chunk 3 is not stored"), "{error}");
        let data = OpenOptions::new().write(true).open(dir.join(HISTORY_DATA_FILE)).unwrap();
        data.write_all_at(&[0xff], 2 * CHUNK + 5000).unwrap();
        data.sync_all().unwrap();
        let error = store.read_chunk_uncached(2, &mut out).unwrap_err();
        assert!(error.to_string().contains("page 5 (offset 20480)"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_read_only_store_reads_and_changes_nothing() {
        let dir = temp_dir("read-only");
        assert!(HistoryStore::open_read_only(&dir, CHUNK).is_err(), "no store: nothing is created");
        assert!(!dir.exists());
        write_chunks(&dir, 1);
        let data = OpenOptions::new().write(true).open(dir.join(HISTORY_DATA_FILE)).unwrap();
        data.write_all_at(&chunk(1)[..100], CHUNK).unwrap();
        let reader = HistoryStore::open_read_only(&dir, CHUNK).unwrap();
        assert_eq!(reader.chunks(), 1);
        let mut out = vec![0u8; 64];
        reader.read(10, &mut out).unwrap();
        assert_eq!(out, chunk(0)[10..74]);
        assert_eq!(std::fs::metadata(dir.join(HISTORY_DATA_FILE)).unwrap().len(), CHUNK + 100, "the partial tail is left");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_chunk_size_or_a_damaged_header_is_refused_and_the_store_left_alone() {
        let dir = temp_dir("refused");
        write_chunks(&dir, 1);
        let error = HistoryStore::open(&dir, 2 * CHUNK).unwrap_err();
        assert!(error.to_string().contains("not 16384") && error.to_string().contains("history.sum"), "{error}");
        let sums = OpenOptions::new().write(true).open(dir.join(HISTORY_SUMS_FILE)).unwrap();
        sums.write_all_at(b"X", 0).unwrap();
        let error = HistoryStore::open(&dir, CHUNK).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        sums.write_all_at(b"B", 0).unwrap();
        let store = HistoryStore::open(&dir, CHUNK).unwrap();
        assert!(store.holds(0, &chunk(0)).unwrap(), "refusing it changed nothing");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
