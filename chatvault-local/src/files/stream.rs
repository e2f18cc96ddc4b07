//! The writer of a streamed upload's data temp file.
//!
//! The stream's chunks are copied into buffers of [`WRITE_BUFFER`] bytes whose memory
//! starts at a multiple of [`ALIGN`], and full buffers are queued (at most
//! [`WRITE_QUEUE`]) to one writer on the blocking pool, which writes each with one `write`
//! call and flushes the file to disk once at the end. So the stream (and whatever it
//! computes as it is polled) runs beside the disk writes, the two wait for each other only
//! when the queue is full or empty (not once per buffer), and the cost per write call is
//! paid once per buffer whatever the chunks' sizes (a stream of 1-byte chunks costs no
//! more system calls than one of 8 MiB chunks). Buffers are reused.
//!
//! # Direct I/O (Linux)
//!
//! The file is switched to direct I/O (`O_DIRECT`, through `fcntl(F_SETFL)`) before the
//! first write: each full buffer (aligned in memory, a multiple of [`ALIGN`] long, written
//! at a multiple of [`ALIGN`]) then goes from the buffer to the disk, with no copy into
//! the page cache and no writeback left for the final fsync. The last, partial buffer is
//! written in two parts: its aligned part still direct, the rest (under [`ALIGN`] bytes)
//! through the page cache after direct I/O is switched off again. The final `fsync` is the
//! same either way (it also commits the file's size and blocks).
//!
//! Where direct I/O is refused (the flag cannot be set: `EINVAL` on file systems without
//! it; or a direct write fails with `EINVAL`: an alignment the device does not accept), it
//! is switched off for the rest of the file and the refused bytes are written again
//! through the page cache (a failed write wrote nothing; a short one is continued from
//! where it stopped), as on other systems. Through the page cache, every
//! [`WRITEBACK_EVERY`] bytes the writer starts the disk writes of what it wrote since the
//! last time, without waiting for them ([`start_writeback`]), so the disk works while the
//! stream still arrives, the final fsync has little left to do, and the upload does not
//! pile up dirty pages that the kernel would throttle it for. (An `fdatasync` there would
//! also work, but on ext4 each one commits the journal, which waits for every other file's
//! ordered data too.)
//!
//! Memory: at most `WRITE_QUEUE + 2` buffers (32 MiB), plus one chunk when a single chunk
//! is larger than a buffer and direct I/O is off (the caller holds it anyway).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use chatvault_core::backend::{Error, Result};
use tokio::task::JoinHandle;

use crate::error::{BACKEND, io_at, io_error};

/// The alignment of direct I/O, in memory, in the file and in length: the page size,
/// which is also the largest logical block size of common disks. (A device that needs
/// more refuses the writes with `EINVAL`, and the upload goes on through the page cache.)
pub(super) const ALIGN: usize = 4096;

/// Size of the writes of a streamed upload (a multiple of [`ALIGN`]).
pub(super) const WRITE_BUFFER: usize = 8 * 1024 * 1024;

/// How many full buffers may wait for the writer.
const WRITE_QUEUE: usize = 2;

/// Through the page cache, the writer starts the disk writes of what it wrote after this
/// many bytes.
const WRITEBACK_EVERY: u64 = 16 * 1024 * 1024;

const _: () = assert!(WRITE_BUFFER.is_multiple_of(ALIGN));

/// Whether streamed uploads try direct I/O; tests make the file system refuse it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum DirectIo {
    /// Direct I/O where the file system takes it, the page cache elsewhere.
    #[default]
    Try,
    /// As if the file system refused to switch direct I/O on (`EINVAL` from `fcntl`).
    #[cfg(test)]
    RefuseFlag,
    /// As if the file system refused direct writes (`EINVAL`) once this many bytes are
    /// written.
    #[cfg(test)]
    RefuseWritesAfter(u64),
}

/// A buffer whose bytes start at a multiple of [`ALIGN`] in memory, as direct I/O needs:
/// a vector [`ALIGN`] bytes longer than [`WRITE_BUFFER`], used from its first aligned
/// address on.
#[derive(Debug)]
struct AlignedBuf {
    mem: Vec<u8>,
    /// Where the aligned part starts in `mem`.
    start: usize,
    /// How many bytes are filled from `start`.
    len: usize,
}

impl AlignedBuf {
    fn new() -> Self {
        // Zeroed memory from the allocator (fresh pages), touched only as it is filled.
        let mem = vec![0u8; WRITE_BUFFER + ALIGN];
        let start = (ALIGN - mem.as_ptr().addr() % ALIGN) % ALIGN;
        AlignedBuf { mem, start, len: 0 }
    }

    /// The bytes filled so far.
    fn bytes(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    /// Appends as much of `from` as fits; returns how much.
    fn fill(&mut self, from: &[u8]) -> usize {
        let n = from.len().min(WRITE_BUFFER - self.len);
        let at = self.start + self.len;
        self.mem[at..at + n].copy_from_slice(&from[..n]);
        self.len += n;
        n
    }

    fn is_full(&self) -> bool {
        self.len == WRITE_BUFFER
    }
}

/// What a streamed upload's writer is sent.
#[derive(Debug)]
enum ToWriter {
    /// Bytes gathered from the stream's chunks, to append to the file; the emptied
    /// buffer goes back to the pool.
    Buffer(AlignedBuf),
    /// A chunk at least as large as a buffer, appended as it is (only when the file is
    /// not in direct I/O: the chunk's memory is not aligned).
    Chunk(Bytes),
    /// The stream ended: flush the file to disk.
    Finish,
}

/// What the writer gives back once the file is flushed.
#[derive(Debug)]
pub(super) struct Written {
    /// The file's metadata.
    pub(super) meta: fs::Metadata,
    /// How many of its bytes were written with direct I/O.
    pub(super) direct: u64,
}

/// A data temp file being written by a streamed upload: see the module's documentation.
#[derive(Debug)]
pub(super) struct StreamWriter {
    /// The queue to the writer.
    queue: tokio::sync::mpsc::Sender<ToWriter>,
    /// The writer: gives back the file's metadata once it is flushed.
    writer: JoinHandle<io::Result<Written>>,
    /// Emptied buffers, given back by the writer.
    pool: Arc<Mutex<Vec<AlignedBuf>>>,
    /// The buffer being filled.
    buf: Option<AlignedBuf>,
    /// Whether the file started in direct I/O (then every byte goes through a buffer).
    direct: bool,
    path: PathBuf,
}

impl StreamWriter {
    /// Starts the writer of `file` (new and empty), in direct I/O if `direct_io` and the
    /// file system allow.
    pub(super) fn new(file: File, path: PathBuf, direct_io: DirectIo) -> Self {
        let direct = set_direct(&file, true, direct_io).is_ok();
        let (queue, mut received) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        let pool: Arc<Mutex<Vec<AlignedBuf>>> = Arc::default();
        let give_back = Arc::clone(&pool);
        let writer = tokio::task::spawn_blocking(move || {
            let mut sink = Sink {
                file,
                direct,
                direct_io,
                written: 0,
                advised: 0,
                direct_bytes: 0,
            };
            loop {
                match received.blocking_recv() {
                    Some(ToWriter::Buffer(mut buf)) => {
                        sink.write(buf.bytes())?;
                        buf.len = 0;
                        give_back
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(buf);
                    }
                    Some(ToWriter::Chunk(chunk)) => sink.write(&chunk)?,
                    Some(ToWriter::Finish) => break,
                    // The upload was abandoned: its temp file is already removed.
                    None => return Err(io::Error::other("the upload was abandoned")),
                }
            }
            sink.file.sync_all()?;
            Ok(Written {
                meta: sink.file.metadata()?,
                direct: sink.direct_bytes,
            })
        });
        StreamWriter {
            queue,
            writer,
            pool,
            buf: None,
            direct,
            path,
        }
    }

    /// Adds `chunk`, queueing buffers as they fill.
    pub(super) async fn push(&mut self, chunk: Bytes) -> Result<()> {
        if !self.direct && self.buf.is_none() && chunk.len() >= WRITE_BUFFER {
            return self.send(ToWriter::Chunk(chunk)).await;
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let buf = match &mut self.buf {
                Some(buf) => buf,
                None => {
                    let reused = self
                        .pool
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .pop();
                    self.buf.insert(reused.unwrap_or_else(AlignedBuf::new))
                }
            };
            let n = buf.fill(rest);
            rest = &rest[n..];
            if buf.is_full()
                && let Some(full) = self.buf.take()
            {
                self.send(ToWriter::Buffer(full)).await?;
            }
        }
        Ok(())
    }

    /// Queues `message` to the writer.
    async fn send(&mut self, message: ToWriter) -> Result<()> {
        if self.queue.send(message).await.is_err() {
            // The writer stopped: its error says why.
            return Err(match self.join().await {
                Err(e) => e,
                Ok(_) => io_error(
                    "write",
                    &self.path,
                    io::Error::other("the writer stopped early"),
                ),
            });
        }
        Ok(())
    }

    /// Waits for the writer.
    async fn join(&mut self) -> Result<Written> {
        match (&mut self.writer).await {
            Ok(done) => done.map_err(io_at("write", &self.path)),
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => Err(Error::backend(BACKEND, join)),
        }
    }

    /// Writes what is left, flushes the file to disk, and gives back its metadata.
    pub(super) async fn finish(mut self) -> Result<Written> {
        if let Some(last) = self.buf.take().filter(|b| b.len > 0) {
            self.send(ToWriter::Buffer(last)).await?;
        }
        self.send(ToWriter::Finish).await?;
        self.join().await
    }
}

/// The writer's end of the file.
#[derive(Debug)]
struct Sink {
    file: File,
    /// Whether the file is in direct I/O now.
    direct: bool,
    direct_io: DirectIo,
    /// Bytes written so far (the file's offset).
    written: u64,
    /// Up to where the disk writes were started ([`start_writeback`]).
    advised: u64,
    /// Bytes written with direct I/O.
    direct_bytes: u64,
}

impl Sink {
    /// Appends `data`: in direct I/O its aligned part, then (direct I/O switched off)
    /// the rest.
    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while self.direct && !data.is_empty() {
            let aligned = data.len() - data.len() % ALIGN;
            if aligned == 0 {
                // Less than a block left: the end of the file.
                self.stop_direct()?;
                break;
            }
            match self.write_direct(&data[..aligned]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    data = &data[n..];
                    self.written += n as u64;
                    self.direct_bytes += n as u64;
                    self.advised = self.written;
                    if !n.is_multiple_of(ALIGN) {
                        // A short write left the offset unaligned.
                        self.stop_direct()?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_invalid(&e) => {
                    // Refused: nothing was written; write it through the page cache.
                    tracing::debug!(error = %e, "direct write refused; using the page cache");
                    self.stop_direct()?;
                }
                Err(e) => return Err(e),
            }
        }
        if !data.is_empty() {
            self.file.write_all(data)?;
            self.written += data.len() as u64;
            if self.written - self.advised >= WRITEBACK_EVERY {
                start_writeback(&self.file, self.advised, self.written);
                self.advised = self.written;
            }
        }
        Ok(())
    }

    /// One direct `write` of `data` (a multiple of [`ALIGN`] bytes, aligned in memory).
    fn write_direct(&mut self, data: &[u8]) -> io::Result<usize> {
        #[cfg(test)]
        if let DirectIo::RefuseWritesAfter(limit) = self.direct_io
            && self.written >= limit
        {
            return Err(io::Error::from_raw_os_error(22)); // EINVAL
        }
        let _ = self.direct_io;
        self.file.write(data)
    }

    /// Switches direct I/O off for the rest of the file.
    fn stop_direct(&mut self) -> io::Result<()> {
        set_direct(&self.file, false, self.direct_io)?;
        self.direct = false;
        self.advised = self.written;
        Ok(())
    }
}

/// Whether `e` is `EINVAL`: how Linux refuses direct I/O (no support in the file system,
/// or an alignment the device does not take).
fn is_invalid(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        rustix::io::Errno::from_io_error(e) == Some(rustix::io::Errno::INVAL)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = e;
        false
    }
}

/// Switches direct I/O on or off for `file` (Linux: `O_DIRECT` through `fcntl`). Switching
/// on fails where the file system refuses it, and always elsewhere; switching off never
/// fails on a valid file.
fn set_direct(file: &File, on: bool, direct_io: DirectIo) -> io::Result<()> {
    #[cfg(test)]
    if on && direct_io == DirectIo::RefuseFlag {
        return Err(io::Error::from_raw_os_error(22)); // EINVAL
    }
    let _ = direct_io;
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
        let mut flags = fcntl_getfl(file)?;
        flags.set(OFlags::DIRECT, on);
        fcntl_setfl(file, flags)?;
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        if on {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        } else {
            Ok(())
        }
    }
}

/// Starts writing `file`'s dirty pages to disk without waiting for them (Linux:
/// `posix_fadvise(DONTNEED)` submits them for writeback and then drops the cached pages
/// that are already clean). Elsewhere a no-op: the final fsync writes everything.
fn start_writeback(file: &File, from: u64, to: u64) {
    #[cfg(target_os = "linux")]
    {
        // Only advice: a failure changes nothing that the final fsync does not do.
        if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
            let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    /// Bytes that tell every offset from every other.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7])
            .collect()
    }

    /// Writes `data` through a [`StreamWriter`] in chunks of the sizes `chunks` cycles
    /// through; returns the file's bytes and how many were written with direct I/O.
    async fn write_through(
        dir: &std::path::Path,
        data: &[u8],
        chunks: &[usize],
        direct_io: DirectIo,
    ) -> (Vec<u8>, u64) {
        let path = dir.join("upload");
        let file = File::create_new(&path).unwrap();
        let mut writer = StreamWriter::new(file, path.clone(), direct_io);
        let mut rest = data;
        for &size in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = size.min(rest.len());
            writer
                .push(Bytes::copy_from_slice(&rest[..n]))
                .await
                .unwrap();
            rest = &rest[n..];
        }
        let written = writer.finish().await.unwrap();
        assert_eq!(written.meta.len(), data.len() as u64);
        let stored = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        (stored, written.direct)
    }

    /// Whether the file system of `dir` takes direct I/O.
    fn takes_direct_io(dir: &std::path::Path) -> bool {
        let path = dir.join("probe");
        let file = File::create_new(&path).unwrap();
        let on = set_direct(&file, true, DirectIo::Try).is_ok();
        fs::remove_file(&path).unwrap();
        on
    }

    /// Sizes around the buffer's and the alignment's edges.
    fn sizes() -> Vec<usize> {
        vec![
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            WRITE_BUFFER - 1,
            WRITE_BUFFER,
            WRITE_BUFFER + 100,
            3 * WRITE_BUFFER + ALIGN + 7,
        ]
    }

    #[tokio::test]
    async fn direct_io_stores_every_byte_and_writes_the_tail_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let direct = takes_direct_io(dir.path());
        for len in sizes() {
            let data = pattern(len);
            for chunks in [&[64 * 1024][..], &[1, 4095, 100_000], &[WRITE_BUFFER + 3]] {
                let (stored, direct_bytes) =
                    write_through(dir.path(), &data, chunks, DirectIo::Try).await;
                assert!(stored == data, "{len} bytes in chunks of {chunks:?}");
                // Every whole block goes direct where the file system takes it; the tail
                // (under a block) never does.
                let expected = if direct { len - len % ALIGN } else { 0 };
                assert_eq!(direct_bytes, expected as u64, "{len} bytes, {chunks:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_refused_direct_io_flag_falls_back_to_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        for len in sizes() {
            let data = pattern(len);
            // Chunks larger than a buffer go to the writer as they are then.
            for chunks in [&[64 * 1024][..], &[WRITE_BUFFER + 3]] {
                let (stored, direct_bytes) =
                    write_through(dir.path(), &data, chunks, DirectIo::RefuseFlag).await;
                assert!(stored == data, "{len} bytes in chunks of {chunks:?}");
                assert_eq!(direct_bytes, 0);
            }
        }
    }

    /// A directory on a file system that takes direct I/O: the temp directory, or else
    /// one in the crate's own directory. Fails (never skips) when neither does.
    #[cfg(target_os = "linux")]
    fn direct_io_dir() -> tempfile::TempDir {
        let candidates = [
            std::env::temp_dir(),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        ];
        for place in &candidates {
            if let Ok(dir) = tempfile::tempdir_in(place)
                && takes_direct_io(dir.path())
            {
                return dir;
            }
        }
        panic!("no file system taking O_DIRECT among {candidates:?}: set TMPDIR to one that does");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn refused_direct_writes_are_written_again_through_the_page_cache() {
        let dir = direct_io_dir();
        let data = pattern(3 * WRITE_BUFFER + ALIGN + 7);
        for after in [0, WRITE_BUFFER as u64, 2 * WRITE_BUFFER as u64] {
            let (stored, direct_bytes) = write_through(
                dir.path(),
                &data,
                &[64 * 1024],
                DirectIo::RefuseWritesAfter(after),
            )
            .await;
            assert!(stored == data, "refused after {after}");
            assert_eq!(direct_bytes, after);
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn on_tmpfs_every_byte_is_stored_whichever_way_it_goes() {
        let dir = tempfile::tempdir_in("/dev/shm").expect("a directory on tmpfs, in /dev/shm");
        let data = pattern(2 * WRITE_BUFFER + 5000);
        let (stored, direct_bytes) =
            write_through(dir.path(), &data, &[64 * 1024], DirectIo::Try).await;
        assert!(stored == data);
        // tmpfs takes direct I/O since Linux 6.6; before, it refuses the flag.
        let expected = if takes_direct_io(dir.path()) {
            2 * WRITE_BUFFER + 4096
        } else {
            0
        };
        assert_eq!(direct_bytes, expected as u64);
    }

    #[test]
    fn buffers_are_aligned_in_memory() {
        for _ in 0..4 {
            let mut buf = AlignedBuf::new();
            assert_eq!(buf.bytes().as_ptr().addr() % ALIGN, 0);
            assert_eq!(buf.fill(&[7; 10]), 10);
            assert_eq!(buf.bytes(), &[7; 10]);
            assert_eq!(buf.fill(&vec![1; WRITE_BUFFER]), WRITE_BUFFER - 10);
            assert!(buf.is_full());
        }
    }
}
