//! One asynchronous `O_DIRECT` write at a time through io_uring, so the log's thread can hash
//! (or the sequencer apply a batch) while the device takes the bytes, with no second thread.
//!
//! Why not a thread: on this project's VM a woken thread is queued on the waker's vCPU (waking
//! a halted vCPU costs tens of µs, so the scheduler prefers the busy one) and runs only when
//! the waker blocks, so hashing beside a sync thread overlapped nothing (`bench/README.md`).
//! An io_uring write is issued to the device inside the submitting call and completes on its own.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use io_uring::{opcode, types, IoUring};

use crate::block::SharedBytes;

/// Submission queue entries: one write in flight at a time needs one.
const RING_ENTRIES: u32 = 4;

/// A write submitted and not yet reaped: what must outlive it (the file and the bytes).
#[derive(Debug)]
struct InFlight {
    /// Held, not read: the descriptor the kernel writes through stays open until the write is reaped.
    _direct: Arc<File>,
    buffered: Arc<File>,
    offset: u64,
    bytes: SharedBytes,
}

/// An io_uring instance for the log's writes.
pub(crate) struct Uring {
    ring: IoUring,
    in_flight: Option<InFlight>,
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring").field("in_flight", &self.in_flight).finish_non_exhaustive()
    }
}

impl Uring {
    /// A new ring, or the reason the kernel refused one (io_uring disabled, say).
    pub(crate) fn new() -> io::Result<Uring> {
        Ok(Uring { ring: IoUring::new(RING_ENTRIES)?, in_flight: None })
    }

    /// Submits a write of `bytes` at `offset` through `direct` (a file opened with `O_DIRECT`;
    /// `buffered` is the same file through the page cache, for the rest of a short write).
    /// The ring keeps both files and the bytes until [`Uring::write_end`] reaps the write.
    pub(crate) fn write_begin(&mut self, direct: Arc<File>, buffered: Arc<File>, offset: u64, bytes: SharedBytes) -> io::Result<()> {
        assert!(self.in_flight.is_none(), "one io_uring write at a time");
        let slice = bytes.as_ref();
        let len = u32::try_from(slice.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a write of 4 GiB or more"))?;
        let entry = opcode::Write::new(types::Fd(direct.as_raw_fd()), slice.as_ptr(), len).offset(offset).build();
        // SAFETY: the entry points into `bytes` and names `direct`'s descriptor. Both are held in
        // `self.in_flight` until the completion is reaped (`write_end`, or `drop`, which waits
        // for it), and the bytes cannot change meanwhile: the log's buffer refuses changes
        // while a `SharedBytes` of it is alive.
        unsafe {
            self.ring.submission().push(&entry).map_err(|_| io::Error::other("the io_uring submission queue is full"))?;
        }
        self.in_flight = Some(InFlight { _direct: direct, buffered, offset, bytes });
        if let Err(e) = self.ring.submit() {
            // The entry may yet be submitted (it is still queued): keep its bytes and file alive
            // (leaked). The log stops after this error, so it happens once at most.
            std::mem::forget(self.in_flight.take());
            return Err(e);
        }
        Ok(())
    }

    /// Waits for the write submitted by [`Uring::write_begin`] and returns its outcome (Ok if
    /// none). A short write's rest is written through the page cache.
    pub(crate) fn write_end(&mut self) -> io::Result<()> {
        if self.in_flight.is_none() {
            return Ok(());
        }
        let result = loop {
            if let Some(completion) = self.ring.completion().next() {
                break completion.result();
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The write may still be in flight: keep its bytes and file alive (leaked)
                    // rather than let the kernel write from freed memory.
                    std::mem::forget(self.in_flight.take());
                    return Err(e);
                }
            }
        };
        let in_flight = self.in_flight.take().expect("checked above");
        let wanted = in_flight.bytes.as_ref().len();
        match result {
            n if n < 0 => Err(io::Error::from_raw_os_error(-n)),
            n if n as usize == wanted => Ok(()),
            n => {
                let done = n as usize;
                in_flight.buffered.write_all_at(&in_flight.bytes.as_ref()[done..], in_flight.offset + done as u64)
            }
        }
    }
}

impl Drop for Uring {
    /// Waits for a write in flight, so the kernel never writes from memory that was freed.
    fn drop(&mut self) {
        let _ = self.write_end();
    }
}
