//! Storage behind a trait: named files in one directory. `FsStorage` is the real thing
//! (`O_DIRECT` writes, large ones through io_uring, `fdatasync`, mmap for reading);
//! `sim::SimStorage` keeps written and durable bytes apart so tests can crash it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::block::{SharedBytes, BLOCK_BYTES};

/// A file's bytes, as a mapping or a copy.
pub type Contents = Box<dyn AsRef<[u8]> + Send>;

/// What the log needs from a directory of files.
pub trait Storage: Send {
    /// Names of the files present.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Starts making `name`: `len` bytes, `head` first and zeros after, durable (file and
    /// directory synced) by the time [`Storage::finish_prepare`] returns. May run in the background.
    fn prepare(&mut self, name: &str, head: &[u8], len: u64) -> io::Result<()>;
    /// Starts making `name` out of `spare`, an existing file that is no longer part of the log
    /// (a recycled segment): `head` written over its start, the rest left as it is, and the
    /// file renamed to `name`, durable (file and directory synced) by the time
    /// [`Storage::finish_prepare`] returns. May run in the background.
    fn prepare_from(&mut self, spare: &str, name: &str, head: &[u8]) -> io::Result<()>;
    /// Renames `from` to `to`, durably (directory synced).
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Removes `name`, durably (directory synced).
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Waits for [`Storage::prepare`] of `name` to finish; succeeds at once if `name` exists already.
    fn finish_prepare(&mut self, name: &str) -> io::Result<()>;
    /// The file's bytes as written so far.
    fn read(&self, name: &str) -> io::Result<Contents>;
    /// A hint that `len` bytes of `name` from `offset` will be read soon (recovery's scan reads
    /// ahead of itself). The default does nothing.
    fn read_ahead(&self, name: &str, offset: u64, len: u64) {
        let _ = (name, offset, len);
    }
    /// Writes `bytes` at `offset` of an existing file (not durable until [`Storage::sync`]).
    fn write_at(&mut self, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written to `name` durable.
    fn sync(&mut self, name: &str) -> io::Result<()>;
    /// Waits for the write and sync started by [`Storage::write_sync_begin`].
    fn sync_end(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Starts [`Storage::write_at`] of `bytes` at `offset` followed by [`Storage::sync`] of
    /// `name`, so the caller can work meanwhile (the log hashes the entries it writes);
    /// [`Storage::sync_end`] returns the result of both. The default does both at once.
    fn write_sync_begin(&mut self, name: &str, offset: u64, bytes: SharedBytes) -> io::Result<()> {
        self.write_at(name, offset, bytes.as_ref())?;
        self.sync(name)
    }
    /// How long the last [`Storage::write_sync_begin`] took to become durable, in nanoseconds, as
    /// the storage timed it (None where it ran at once, and the caller timed it).
    fn last_sync_ns(&self) -> Option<u64> {
        None
    }
    /// Replaces `name` with `bytes` atomically and durably (temporary file, sync, rename, directory sync).
    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Starts [`Storage::write_atomic`] of `name` with the bytes `build` returns, so the caller
    /// works meanwhile (a snapshot of a large state takes seconds to write); one such write at a
    /// time, and [`Storage::write_atomic_end`] returns its result. The default does it at once.
    fn write_atomic_begin(&mut self, name: &str, build: AtomicWrite) -> io::Result<()> {
        let mut bytes = Vec::new();
        let head = build(&mut |piece| {
            bytes.extend_from_slice(piece);
            Ok(())
        })?;
        let Some(start) = bytes.get_mut(..head.len()) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an atomic write's head is longer than the write"));
        };
        start.copy_from_slice(&head);
        self.write_atomic(name, &bytes)
    }
    /// Whether the write started by [`Storage::write_atomic_begin`] has finished (or none is running).
    fn write_atomic_done(&self) -> bool {
        true
    }
    /// Waits for the write started by [`Storage::write_atomic_begin`] and returns its result (Ok if none).
    fn write_atomic_end(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Produces the bytes of a background atomic write, on the writing thread.
/// It writes the file's bytes in order through the sink it is given (so a gigabyte snapshot
/// never sits whole in memory), then returns bytes that replace the file's beginning once all is
/// written (a header whose checksum covers what follows; empty for none).
pub type AtomicWrite = Box<dyn FnOnce(&mut Sink<'_>) -> io::Result<Vec<u8>> + Send>;

/// Where an [`AtomicWrite`] puts its bytes, piece by piece.
pub type Sink<'s> = dyn FnMut(&[u8]) -> io::Result<()> + 's;

/// The real storage: a directory on a local file system.
#[derive(Debug)]
pub struct FsStorage {
    dir: PathBuf,
    files: HashMap<String, Arc<File>>,
    /// The same files opened with `O_DIRECT` for block-aligned writes (None where the file
    /// system refused it: those writes go through the page cache).
    direct_files: HashMap<String, Option<Arc<File>>>,
    preparing: HashMap<String, JoinHandle<io::Result<()>>>,
    syncer: Option<Syncer>,
    /// The io_uring the log's large writes go through (see `write_sync_begin`): None until the
    /// first, or if the kernel refused one, or if `use_io_uring` is off.
    uring: Option<crate::uring::Uring>,
    use_io_uring: bool,
    /// The file a write submitted through `uring` goes to, to sync once it is reaped.
    uring_sync: Option<(Arc<File>, std::time::Instant)>,
    /// Duration of the last sync the sync thread ran.
    last_sync_ns: Option<u64>,
    read_only: bool,
    atomic_write: Option<JoinHandle<io::Result<()>>>,
    /// The directory's lock file, held exclusively by a writable storage for as long as it lives
    /// (the kernel releases it when the process dies, kill -9 included).
    _lock: Option<File>,
}

/// The file in a log directory that a writer holds an exclusive lock on, with its pid inside.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// Takes the exclusive lock on `dir`'s lock file without waiting, and writes this process's pid
/// into it. A directory locked by another process is an error naming its pid.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() { String::from("unknown") } else { holder.to_string() };
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("{} is in use by another writer (pid {holder}): one server per data directory", dir.display()),
            ));
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
    Ok(file)
}

/// A thread that writes and syncs a log group while the log's thread hashes, where io_uring is
/// unavailable: one request in flight at a time.
#[derive(Debug)]
struct Syncer {
    requests: Sender<SyncRequest>,
    results: Receiver<(io::Result<()>, u64)>,
}

/// What the sync thread does: write `write` to the file, then sync it.
#[derive(Debug)]
struct SyncRequest {
    file: Arc<File>,
    write: (DirectOrBuffered, u64, SharedBytes),
}

/// The handle a write goes through: `O_DIRECT` (whole aligned blocks) or the page cache.
#[derive(Debug)]
enum DirectOrBuffered {
    Direct(Arc<File>),
    Buffered,
}

impl Syncer {
    fn start() -> io::Result<Syncer> {
        let (requests, inbox) = bounded::<SyncRequest>(1);
        let (outbox, results) = bounded(1);
        std::thread::Builder::new().name("wal-sync".into()).spawn(move || {
            for request in inbox {
                let started = std::time::Instant::now();
                let written = match &request.write {
                    (DirectOrBuffered::Direct(direct), offset, bytes) => direct.write_all_at(bytes.as_ref(), *offset),
                    (DirectOrBuffered::Buffered, offset, bytes) => request.file.write_all_at(bytes.as_ref(), *offset),
                };
                drop(request.write); // the log's buffer is its own again before the result is sent
                let result = written.and_then(|()| request.file.sync_data());
                if outbox.send((result, started.elapsed().as_nanos() as u64)).is_err() {
                    return;
                }
            }
        })?;
        Ok(Syncer { requests, results })
    }
}

impl FsStorage {
    /// Uses `dir` for writing, creating it if needed, and holds the exclusive lock on its
    /// [`LOCK_FILE_NAME`] file until dropped: a second writer (another server on the same
    /// directory) is refused with `ResourceBusy` and the holder's pid, before anything is read.
    /// Readers ([`FsStorage::open_read_only`]) take no lock and work beside a writer.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<FsStorage> {
        fs::create_dir_all(dir.as_ref())?;
        let lock = lock_dir(dir.as_ref())?;
        Ok(FsStorage {
            dir: dir.as_ref().to_path_buf(),
            files: HashMap::new(),
            direct_files: HashMap::new(),
            preparing: HashMap::new(),
            syncer: None,
            uring: None,
            use_io_uring: true,
            uring_sync: None,
            last_sync_ns: None,
            read_only: false,
            atomic_write: None,
            _lock: Some(lock),
        })
    }

    /// Uses an existing `dir` for reading only: every write, sync or preparation fails with
    /// `PermissionDenied`, and nothing in the directory is created, changed or removed. For
    /// audit and inspection tools, which must be able to run beside a live server.
    pub fn open_read_only(dir: impl AsRef<Path>) -> io::Result<FsStorage> {
        if !dir.as_ref().is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is not a directory", dir.as_ref().display())));
        }
        Ok(FsStorage {
            dir: dir.as_ref().to_path_buf(),
            files: HashMap::new(),
            direct_files: HashMap::new(),
            preparing: HashMap::new(),
            syncer: None,
            uring: None,
            use_io_uring: true,
            uring_sync: None,
            last_sync_ns: None,
            read_only: true,
            atomic_write: None,
            _lock: None,
        })
    }

    /// Turns the io_uring write path off (or back on): large log writes then go to the sync
    /// thread. For tests of that path, and for kernels where io_uring misbehaves.
    pub fn set_io_uring(&mut self, on: bool) {
        self.use_io_uring = on;
    }

    /// Whether a log write has gone through io_uring (see [`Storage::write_sync_begin`]).
    pub fn io_uring_in_use(&self) -> bool {
        self.uring.is_some()
    }

    /// Whether this kernel lets the process set up an io_uring.
    pub fn io_uring_available() -> bool {
        crate::uring::Uring::new().is_ok()
    }

    /// The ring, created on first use; None where it is off or the kernel refuses one.
    fn uring(&mut self) -> Option<&mut crate::uring::Uring> {
        if self.use_io_uring && self.uring.is_none() {
            match crate::uring::Uring::new() {
                Ok(ring) => self.uring = Some(ring),
                Err(_) => self.use_io_uring = false, // the sync thread serves instead
            }
        }
        self.uring.as_mut()
    }

    fn writable(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "this storage was opened read-only"));
        }
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&mut self, name: &str) -> io::Result<&Arc<File>> {
        if !self.files.contains_key(name) {
            let file = OpenOptions::new().read(true).write(true).open(self.dir.join(name))?;
            self.files.insert(name.to_string(), Arc::new(file));
        }
        Ok(&self.files[name])
    }

    /// `name` opened with `O_DIRECT`, or None if the file system refuses it.
    fn direct_file(&mut self, name: &str) -> io::Result<Option<&Arc<File>>> {
        if !self.direct_files.contains_key(name) {
            let direct = match open_direct(&self.dir.join(name), false) {
                Ok(file) => {
                    // Cached pages would send io_uring writes to a kernel worker (see `sys`);
                    // failing to drop them costs speed only.
                    let _ = crate::sys::drop_cached_pages(&file);
                    Some(Arc::new(file))
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => None,
                Err(e) => return Err(e),
            };
            self.direct_files.insert(name.to_string(), direct);
        }
        Ok(self.direct_files[name].as_ref())
    }

    /// Forgets the open handles of `name` (it is renamed or removed).
    fn forget(&mut self, name: &str) {
        self.files.remove(name);
        self.direct_files.remove(name);
    }
}

impl Drop for FsStorage {
    /// Waits for segment preparations in flight, so no thread renames a file into the directory
    /// after its owner is gone (the next owner would find a segment it did not expect).
    fn drop(&mut self) {
        for (_, handle) in self.preparing.drain() {
            let _ = handle.join();
        }
        if let Some(handle) = self.atomic_write.take() {
            let _ = handle.join();
        }
    }
}

/// Temporary file, write, sync, rename over `name`, directory sync.
pub(crate) fn write_atomic_in(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    write_atomic_stream_in(dir, name, |sink| sink(bytes).map(|()| Vec::new()))
}

/// Whether a write of `bytes` at `offset` meets `O_DIRECT`'s alignment (offset, length and address).
pub(crate) fn direct_aligned(offset: u64, bytes: &[u8]) -> bool {
    let block = BLOCK_BYTES as u64;
    !bytes.is_empty()
        && offset.is_multiple_of(block)
        && (bytes.len() as u64).is_multiple_of(block)
        && (bytes.as_ptr() as u64).is_multiple_of(block)
}

/// Bytes each `O_DIRECT` write of a streamed atomic write or a segment's zero-fill carries.
const DIRECT_CHUNK_BYTES: usize = 1 << 20;

/// Opens `path` for reading with `O_DIRECT`. Fails with `EINVAL` where the file system refuses
/// `O_DIRECT`.
pub(crate) fn open_direct_read(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)
}

/// Opens `path` for writing with `O_DIRECT`, creating (and emptying) it if `create`. Fails with
/// `EINVAL` where the file system refuses `O_DIRECT`.
pub(crate) fn open_direct(path: &Path, create: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create(create).truncate(create).custom_flags(libc::O_DIRECT).open(path)
}

/// As [`write_atomic_in`], with the bytes streamed by `build` (see [`AtomicWrite`]); the head it
/// returns is written over the file's start before the sync.
///
/// The file is written with `O_DIRECT` where the file system allows it, from a page-aligned
/// staging buffer: a gigabyte snapshot then costs no copy into fresh page-cache pages (that copy
/// was an eighth of all CPU while a snapshot was written; bench/README.md). Elsewhere (tmpfs,
/// say) it is written through the page cache.
fn write_atomic_stream_in(dir: &Path, name: &str, build: impl FnOnce(&mut Sink<'_>) -> io::Result<Vec<u8>>) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let Ok(file) = open_direct(&tmp, true) else {
        return write_atomic_buffered(dir, name, &tmp, build);
    };
    let outcome = write_direct(&file, build);
    if outcome.is_err() {
        let _ = fs::remove_file(&tmp); // a half-written temporary file is of no use to anyone
    }
    outcome?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// The `O_DIRECT` body of [`write_atomic_stream_in`]: whole 1 MiB chunks from an aligned buffer,
/// the last one padded to a block and the file cut back to its length, the head written over a
/// saved copy of the first block, then the file synced.
fn write_direct(file: &File, build: impl FnOnce(&mut Sink<'_>) -> io::Result<Vec<u8>>) -> io::Result<()> {
    let mut staging = memmap2::MmapMut::map_anon(DIRECT_CHUNK_BYTES)?;
    let mut first_block = vec![0u8; BLOCK_BYTES];
    let mut filled = 0usize;
    let mut flushed = 0u64;
    let mut flush = |staging: &mut [u8], filled: usize, flushed: &mut u64| -> io::Result<()> {
        let len = filled.next_multiple_of(BLOCK_BYTES);
        staging[filled..len].fill(0);
        if *flushed == 0 {
            first_block.copy_from_slice(&staging[..BLOCK_BYTES]);
        }
        file.write_all_at(&staging[..len], *flushed)?;
        *flushed += filled as u64;
        Ok(())
    };
    let head = build(&mut |mut piece| {
        while !piece.is_empty() {
            let n = piece.len().min(DIRECT_CHUNK_BYTES - filled);
            staging[filled..filled + n].copy_from_slice(&piece[..n]);
            filled += n;
            piece = &piece[n..];
            if filled == DIRECT_CHUNK_BYTES {
                flush(&mut staging, filled, &mut flushed)?;
                filled = 0;
            }
        }
        Ok(())
    })?;
    if filled > 0 {
        flush(&mut staging, filled, &mut flushed)?;
    }
    let written = flushed;
    if head.len() as u64 > written || head.len() > BLOCK_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "an atomic write's head is longer than the write or a block"));
    }
    if !head.is_empty() {
        first_block[..head.len()].copy_from_slice(&head);
        staging[..BLOCK_BYTES].copy_from_slice(&first_block);
        file.write_all_at(&staging[..BLOCK_BYTES], 0)?;
    }
    file.set_len(written)?;
    file.sync_all()
}

/// [`write_atomic_stream_in`] through the page cache, for file systems without `O_DIRECT`.
fn write_atomic_buffered(dir: &Path, name: &str, tmp: &Path, build: impl FnOnce(&mut Sink<'_>) -> io::Result<Vec<u8>>) -> io::Result<()> {
    let mut file = File::create(tmp)?;
    let mut written = 0u64;
    let head = build(&mut |piece| {
        written += piece.len() as u64;
        file.write_all(piece)
    });
    let head = match head {
        Ok(head) if head.len() as u64 <= written => head,
        outcome => {
            let _ = fs::remove_file(tmp); // a half-written temporary file is of no use to anyone
            return Err(outcome
                .err()
                .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an atomic write's head is longer than the write")));
        }
    };
    file.write_all_at(&head, 0)?;
    file.sync_all()?;
    fs::rename(tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Syncs a directory, so that file creations and renames in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes the segment `name`: the head, then zeros to `len` bytes, in a temporary file that is
/// synced, renamed into place, and the directory synced.
///
/// Zeros written for real, not fallocate'd: overwriting allocated, initialised blocks later needs
/// no metadata journal write per fdatasync (docs/wal-format.md, "Write path"). With `O_DIRECT`
/// where the file system allows it (and the length is whole blocks): the log writes its segments
/// with `O_DIRECT` and drops their cached pages first, so zeros copied into the page cache would
/// be CPU spent for nothing. Synced every 4 MiB: one large flush would queue ahead of the log's
/// own syncs (the measurements behind both choices: docs/wal-format.md, "Write path").
fn prepare_file(dir: &Path, name: &str, head: &[u8], len: u64) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = match open_direct(&tmp, true) {
        Ok(file) if len.is_multiple_of(BLOCK_BYTES as u64) && head.len() <= DIRECT_CHUNK_BYTES => file,
        _ => File::create(&tmp)?, // no O_DIRECT here, or not whole blocks: through the page cache
    };
    zero_fill(&file, head, len)?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Bytes written between syncs while a segment is prepared.
const ZERO_SYNC_EVERY_BYTES: u64 = 4 << 20;

/// [`prepare_file`]'s body: `head`, then zeros to `len`, in 1 MiB chunks from a zeroed,
/// page-aligned anonymous map (whole blocks from an aligned address, as an `O_DIRECT` file needs),
/// synced every 4 MiB and at the end.
fn zero_fill(file: &File, head: &[u8], len: u64) -> io::Result<()> {
    let mut chunk = memmap2::MmapMut::map_anon(DIRECT_CHUNK_BYTES)?;
    chunk[..head.len()].copy_from_slice(head);
    let (mut at, mut unsynced) = (0u64, 0u64);
    while at < len {
        let n = (len - at).min(DIRECT_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&chunk[..n], at)?;
        if at == 0 {
            chunk[..head.len()].fill(0);
        }
        at += n as u64;
        unsynced += n as u64;
        if unsynced >= ZERO_SYNC_EVERY_BYTES {
            file.sync_data()?;
            unsynced = 0;
        }
    }
    file.sync_all()
}

/// Writes `head` over the start of the existing file `spare`, syncs it, renames it to `name` and
/// syncs the directory. Overwriting blocks that are allocated and written already needs no
/// metadata journal write, and on this machine's disk is much faster than writing fresh ones
/// (docs/wal-format.md, "Retention and recycling").
fn prepare_from_file(dir: &Path, spare: &str, name: &str, head: &[u8]) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(dir.join(spare))?;
    file.write_all_at(head, 0)?;
    file.sync_data()?;
    fs::rename(dir.join(spare), dir.join(name))?;
    sync_dir(dir)
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn prepare(&mut self, name: &str, head: &[u8], len: u64) -> io::Result<()> {
        self.writable()?;
        let (dir, name_owned, head) = (self.dir.clone(), name.to_string(), head.to_vec());
        let handle = std::thread::Builder::new().name("wal-prepare".into()).spawn(move || prepare_file(&dir, &name_owned, &head, len))?;
        self.preparing.insert(name.to_string(), handle);
        Ok(())
    }

    fn prepare_from(&mut self, spare: &str, name: &str, head: &[u8]) -> io::Result<()> {
        self.writable()?;
        self.forget(spare);
        self.forget(name);
        let (dir, spare, name_owned, head) = (self.dir.clone(), spare.to_string(), name.to_string(), head.to_vec());
        let handle =
            std::thread::Builder::new().name("wal-prepare".into()).spawn(move || prepare_from_file(&dir, &spare, &name_owned, &head))?;
        self.preparing.insert(name.to_string(), handle);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.writable()?;
        self.forget(from);
        self.forget(to);
        fs::rename(self.dir.join(from), self.dir.join(to))?;
        sync_dir(&self.dir)
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.writable()?;
        self.forget(name);
        fs::remove_file(self.dir.join(name))?;
        sync_dir(&self.dir)
    }

    fn finish_prepare(&mut self, name: &str) -> io::Result<()> {
        match self.preparing.remove(name) {
            Some(handle) => handle.join().map_err(|_| io::Error::other("segment preparation thread panicked"))?,
            // Prepared before a restart: nothing to wait for.
            None if self.dir.join(name).exists() => Ok(()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{name} was never prepared"))),
        }
    }

    fn read(&self, name: &str) -> io::Result<Contents> {
        let file = File::open(self.dir.join(name))?;
        if file.metadata()?.len() == 0 {
            return Ok(Box::new(Vec::new()));
        }
        Ok(Box::new(crate::mmap::map_read(&file)?))
    }

    fn read_ahead(&self, name: &str, offset: u64, len: u64) {
        if let Ok(file) = File::open(self.dir.join(name)) {
            let _ = crate::sys::read_ahead(&file, offset, len); // a hint: failure costs speed only
        }
    }

    /// A write whose offset, length and buffer address are all multiples of 4 KiB (the log's
    /// writes, see `Wal::write_pending`) goes to the device with `O_DIRECT`: no copy into the
    /// page cache and no writeback at the sync, which then only flushes the device's cache.
    /// Measured with `pwrite` + `fdatasync` over a preallocated file (docs/wal-format.md,
    /// "Write path"), 10-40% more records per second than through the page cache. Other writes,
    /// and every write where the file system refuses `O_DIRECT`, go through the page cache.
    fn write_at(&mut self, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.writable()?;
        if direct_aligned(offset, bytes) {
            if let Some(file) = self.direct_file(name)? {
                match file.write_all_at(bytes, offset) {
                    Ok(()) => return Ok(()),
                    // The file system wants another alignment: nothing was written that the
                    // buffered write below does not write again, byte for byte.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        self.direct_files.insert(name.to_string(), None);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.file(name)?.write_all_at(bytes, offset)
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.writable()?;
        self.file(name)?.sync_data()
    }

    /// A block-aligned write goes through `O_DIRECT` where the file system allows it (see
    /// [`Storage::write_at`]), submitted through io_uring: the device takes the bytes while
    /// the caller works, and `sync_end` reaps the write and syncs on the caller's thread. Where
    /// io_uring is refused or off, the write and the sync run on the sync thread. An `EINVAL`
    /// from an `O_DIRECT` write here is not retried but reported, and the log stops.
    fn write_sync_begin(&mut self, name: &str, offset: u64, bytes: SharedBytes) -> io::Result<()> {
        self.writable()?;
        let file = Arc::clone(self.file(name)?);
        let direct = match direct_aligned(offset, bytes.as_ref()) {
            true => self.direct_file(name)?.map(Arc::clone),
            false => None,
        };
        if let Some(direct) = &direct {
            let (direct, buffered) = (Arc::clone(direct), Arc::clone(&file));
            if let Some(ring) = self.uring() {
                ring.write_begin(direct, buffered, offset, bytes)?;
                self.uring_sync = Some((file, std::time::Instant::now()));
                return Ok(());
            }
        }
        let through = direct.map_or(DirectOrBuffered::Buffered, DirectOrBuffered::Direct);
        if self.syncer.is_none() {
            self.syncer = Some(Syncer::start()?);
        }
        let syncer = self.syncer.as_ref().expect("started above");
        let request = SyncRequest { file, write: (through, offset, bytes) };
        syncer.requests.send(request).map_err(|_| io::Error::other("the sync thread stopped"))
    }

    fn sync_end(&mut self) -> io::Result<()> {
        if let Some((file, started)) = self.uring_sync.take() {
            let ring = self.uring.as_mut().ok_or_else(|| io::Error::other("the io_uring is gone"))?;
            let result = ring.write_end().and_then(|()| file.sync_data());
            self.last_sync_ns = Some(started.elapsed().as_nanos() as u64);
            return result;
        }
        let syncer = self.syncer.as_ref().ok_or_else(|| io::Error::other("no sync in flight"))?;
        let (result, ns) = syncer.results.recv().map_err(|_| io::Error::other("the sync thread stopped"))?;
        self.last_sync_ns = Some(ns);
        result
    }

    fn last_sync_ns(&self) -> Option<u64> {
        self.last_sync_ns
    }

    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.writable()?;
        self.forget(name);
        write_atomic_in(&self.dir, name, bytes)
    }

    fn write_atomic_begin(&mut self, name: &str, build: AtomicWrite) -> io::Result<()> {
        self.writable()?;
        if self.atomic_write.as_ref().is_some_and(|h| !h.is_finished()) {
            return Err(io::Error::other("an atomic write is still running"));
        }
        if let Some(earlier) = self.atomic_write.take() {
            // Its result was never collected: report it now rather than lose it.
            earlier.join().map_err(|_| io::Error::other("the atomic write thread panicked"))??;
        }
        self.forget(name);
        let (dir, name) = (self.dir.clone(), name.to_string());
        let handle = std::thread::Builder::new().name("wal-snapshot".into()).spawn(move || write_atomic_stream_in(&dir, &name, build))?;
        self.atomic_write = Some(handle);
        Ok(())
    }

    fn write_atomic_done(&self) -> bool {
        self.atomic_write.as_ref().is_none_or(|h| h.is_finished())
    }

    fn write_atomic_end(&mut self) -> io::Result<()> {
        match self.atomic_write.take() {
            Some(handle) => handle.join().map_err(|_| io::Error::other("the atomic write thread panicked"))?,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bursar-storage-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// One writer per directory: a second writable open is refused with the holder's pid while
    /// the first lives, readers are not; once the first is dropped the lock is free again.
    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid() {
        let dir = temp_dir("lock");
        let first = FsStorage::open(&dir).expect("first writer");
        let refused = FsStorage::open(&dir).expect_err("second writer");
        assert_eq!(refused.kind(), io::ErrorKind::ResourceBusy);
        assert!(refused.to_string().contains(&format!("pid {}", std::process::id())), "{refused}");
        let reader = FsStorage::open_read_only(&dir).expect("a reader beside the writer");
        assert!(reader.list().expect("list").contains(&LOCK_FILE_NAME.to_string()));
        drop(first);
        let again = FsStorage::open(&dir).expect("the lock is released with its holder");
        drop((again, reader));
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A streamed atomic write (O_DIRECT where the file system allows) lands byte for byte:
    /// lengths below a block, on a chunk boundary and ragged, pieces of every size, the head
    /// over the start; no temporary file is left.
    #[test]
    fn streamed_atomic_writes_land_whole() {
        let dir = temp_dir("atomic");
        fs::create_dir_all(&dir).unwrap();
        for len in [100usize, 4096, DIRECT_CHUNK_BYTES, (5 << 19) + 123] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
            let head = vec![0xAB; 88.min(len)];
            let pieces = payload.clone();
            write_atomic_stream_in(&dir, "file", |sink| {
                let mut rest = &pieces[..];
                let mut size = 1;
                while !rest.is_empty() {
                    let n = size.min(rest.len());
                    sink(&rest[..n])?;
                    rest = &rest[n..];
                    size = size * 3 + 1;
                }
                Ok(head.clone())
            })
            .unwrap();
            let mut expected = payload;
            expected[..head.len()].copy_from_slice(&head);
            assert!(fs::read(dir.join("file")).unwrap() == expected, "length {len}");
            assert!(!dir.join("file.tmp").exists());
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A prepared segment is the head, then zeros to exactly the length asked (a multiple of the
    /// chunk or not), under the final name, with no temporary file left behind.
    #[test]
    fn prepare_writes_head_then_zeros_to_the_length() {
        let dir = temp_dir("prepare");
        let mut storage = FsStorage::open(&dir).unwrap();
        let head: Vec<u8> = (1..=200u8).collect();
        for (name, len) in [("aligned", (3 << 20) + 8192u64), ("unaligned", (1 << 20) + 1000)] {
            storage.prepare(name, &head, len).unwrap();
            storage.finish_prepare(name).unwrap();
            let bytes = fs::read(dir.join(name)).unwrap();
            assert_eq!(bytes.len() as u64, len, "{name}");
            assert_eq!(&bytes[..head.len()], &head[..], "{name}");
            assert!(bytes[head.len()..].iter().all(|b| *b == 0), "{name}: zeros after the head");
            assert!(!dir.join(format!("{name}.tmp")).exists());
        }
        drop(storage);
        fs::remove_dir_all(&dir).unwrap();
    }
}
