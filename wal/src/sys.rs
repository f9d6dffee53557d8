//! What the standard library lacks: two page-cache hints (drop a file's clean pages, read a
//! range ahead), writing a range back now, reading only what the page cache holds, and a
//! thread's scheduling priority.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Asks the kernel to drop `file`'s clean pages from the page cache (`posix_fadvise`
/// `POSIX_FADV_DONTNEED`). The log writes its segments with `O_DIRECT`; an io_uring `O_DIRECT`
/// write over a cached page cannot be issued inline and goes to a kernel worker thread instead
/// (whose wake-up, on this VM, waits for the submitting vCPU to block), so a segment's cached
/// pages (zero-filled through the page cache, or read by recovery) are dropped before its first
/// write. Advice only: the file's contents never change.
pub(crate) fn drop_cached_pages(file: &File) -> io::Result<()> {
    // SAFETY: posix_fadvise reads no memory of ours; the descriptor is open for the call.
    let result = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    match result {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Asks the kernel to start reading `len` bytes of `file` at `offset` into the page cache
/// (`posix_fadvise` `POSIX_FADV_WILLNEED`), without waiting for them. Recovery reads a window
/// ahead of its scan this way, so verifying one stretch overlaps reading the next: the log's
/// `O_DIRECT` writes leave nothing in the cache for a restart to find. Advice only.
pub(crate) fn read_ahead(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a read-ahead range beyond off_t"));
    };
    // SAFETY: posix_fadvise reads no memory of ours; the descriptor is open for the call.
    let result = unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_WILLNEED) };
    match result {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Sends `len` dirty bytes of `file` at `offset` to the device and waits until it has them
/// (`sync_file_range` with `WAIT_BEFORE | WRITE | WAIT_AFTER`): writeback of that range, now,
/// without the metadata or the device cache flush an `fdatasync` adds (durability still needs
/// one after).
pub(crate) fn write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len)) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a write-back range beyond off64_t"));
    };
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: sync_file_range reads no memory of ours; the descriptor is open for the call.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `out.len()` bytes of `file` at `offset` only if the page cache holds them all
/// (`preadv2` with `RWF_NOWAIT`): `Ok(true)` with `out` filled, `Ok(false)` if the read would
/// wait for the device (or came back short, or the kernel cannot tell), and then `out` is
/// unspecified. What lets a reader serve cached pages at once and hand the rest to readers
/// that can wait side by side.
pub(crate) fn read_cached(file: &File, offset: u64, out: &mut [u8]) -> io::Result<bool> {
    let Ok(offset) = libc::off_t::try_from(offset) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a read beyond off_t"));
    };
    let iov = libc::iovec { iov_base: out.as_mut_ptr().cast(), iov_len: out.len() };
    // SAFETY: the kernel writes at most `iov_len` bytes into `out`, which lives and is borrowed
    // mutably for the call; the descriptor is open for it.
    let read = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    if read >= 0 {
        return Ok(read as usize == out.len());
    }
    match io::Error::last_os_error() {
        e if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL)) => Ok(false),
        e => Err(e),
    }
}

/// Allocations from this size on get memory maps of their own from the C allocator.
pub const MAP_FROM_BYTES: usize = 1 << 20;
/// Free memory an arena keeps at its top before giving it back to the kernel: room for the
/// buffers below [`MAP_FROM_BYTES`] that come and go by the thousand (a restore image's 528 KiB
/// read buffer), so each is not faulted in again.
pub const TRIM_FROM_BYTES: usize = 4 << 20;

/// Makes the C allocator serve every allocation of [`MAP_FROM_BYTES`] or more from a memory map
/// of its own, given back to the kernel when freed (glibc's `M_MMAP_THRESHOLD`, fixed). Left
/// alone, glibc raises that threshold after the first large free (up to 32 MiB), and serves the
/// chunks of transfers a server allocates and frees by the thousand from per-thread arenas whose
/// freed memory stays resident: up to 64 MiB an arena, a few hundred MB in all, differing from
/// run to run. Fixing it also fixes the trim threshold (glibc moves both together), which is set
/// to [`TRIM_FROM_BYTES`]. Returns whether the allocator took the settings (false on other C
/// libraries).
pub fn map_large_allocations() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt changes the allocator's settings only; it reads no memory of ours.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MAP_FROM_BYTES as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_FROM_BYTES as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Makes the calling thread run only on CPU time no other thread wants (Linux `SCHED_IDLE`), for
/// threads that read the log in the background (the change feed's followers): they take what the
/// writer and the network leave, and give it back at once. Best effort: a refusal leaves the
/// thread as it was.
pub fn background_thread() -> io::Result<()> {
    set_policy(libc::SCHED_IDLE)
}

/// Undoes [`background_thread`]: the calling thread competes for CPU time as every other thread
/// does (Linux `SCHED_OTHER`), for a background worker that fell behind by more than it may.
pub fn foreground_thread() -> io::Result<()> {
    set_policy(libc::SCHED_OTHER)
}

/// Sets the calling thread's scheduling policy (one with no static priority).
fn set_policy(policy: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param`, which lives for the call; 0 names this thread.
    let result = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc takes the setting; an allocation above it and one below both behave as before.
    #[test]
    fn large_allocations_are_mapped_on_glibc() {
        assert_eq!(map_large_allocations(), cfg!(all(target_os = "linux", target_env = "gnu")));
        let large = vec![7u8; MAP_FROM_BYTES * 4];
        let small: Vec<u8> = (0..64).map(|_| 9).collect();
        assert!(large.iter().all(|&b| b == 7) && small.iter().all(|&b| b == 9));
    }

    /// A thread moved to the background and back to the foreground: both are accepted.
    #[test]
    fn a_thread_goes_to_the_background_and_back() {
        std::thread::spawn(|| {
            background_thread().expect("SCHED_IDLE");
            foreground_thread().expect("SCHED_OTHER");
        })
        .join()
        .expect("the thread");
    }
}
