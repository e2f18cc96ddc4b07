//! The SHA-256 and size of an attachment's bytes, computed as they stream to the files
//! backend, beside the upload rather than in its way.
//!
//! The first [`INLINE_BYTES`] are hashed as the stream is polled. Past that, a thread of
//! its own hashes the chunks (each one shared, not copied: a [`Bytes`] clone), so the
//! upload's stream, the backend's writes and the hash use as many cores as there are. The
//! thread may be at most [`BEHIND_BYTES`] behind the stream (that much memory, in chunks
//! the backend may already have dropped): when it is, the stream waits for it (an async
//! wait, no thread blocked). Plain `std` threads and `tokio::sync` primitives, which need
//! no runtime: any executor polls the stream.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::backend::ByteStream;

/// Bytes hashed on the thread polling the stream: small attachments never start a thread.
const INLINE_BYTES: u64 = 1024 * 1024;

/// How far (in bytes of chunks) the hashing thread may be behind the stream. Small on
/// purpose: the chunks it holds are freed only once hashed, and a window of many chunks
/// (8 MiB, before) made the allocator give memory back and fault it in again, about a
/// tenth more CPU for a 1 GiB attach; the backend's own write queue absorbs the jitter.
const BEHIND_BYTES: usize = 1024 * 1024;

/// The hashing thread gives room back to the stream in steps of this many bytes (one
/// wake-up of the stream per step, not per chunk), and whenever it runs out of chunks.
const GIVE_BACK_BYTES: usize = 256 * 1024;

/// The SHA-256 and size of the bytes of a stream, computed as they pass: see the module's
/// documentation.
#[derive(Debug, Clone)]
pub(super) struct StreamHash {
    shared: Arc<Mutex<Hashing>>,
}

#[derive(Debug)]
struct Hashing {
    size: u64,
    how: How,
}

#[derive(Debug)]
enum How {
    /// Hashed as the stream is polled.
    Here(Sha256),
    /// Hashed by a thread of its own, which sends the hasher back once `chunks` closes.
    Thread {
        chunks: mpsc::UnboundedSender<(Bytes, OwnedSemaphorePermit)>,
        /// Room for the chunks queued to the thread, in bytes.
        room: Arc<Semaphore>,
        done: oneshot::Receiver<Sha256>,
    },
    /// [`StreamHash::finish`] was called.
    Finished,
}

impl StreamHash {
    /// `data`, whose chunks are hashed as they pass, and the hash.
    pub(super) fn tap(data: ByteStream) -> (ByteStream, StreamHash) {
        let hash = StreamHash {
            shared: Arc::new(Mutex::new(Hashing {
                size: 0,
                how: How::Here(Sha256::new()),
            })),
        };
        let feed = hash.clone();
        let hashed = futures_util::stream::unfold((data, feed), |(mut data, feed)| async move {
            let item = data.next().await?;
            if let Ok(bytes) = &item {
                feed.feed(bytes).await;
            }
            Some((item, (data, feed)))
        })
        .boxed();
        (hashed, hash)
    }

    /// Hashes `bytes`, the stream's next chunk.
    async fn feed(&self, bytes: &Bytes) {
        let room = {
            let mut hashing = self.lock();
            let size = hashing.size + bytes.len() as u64;
            match &mut hashing.how {
                How::Here(hasher) if size <= INLINE_BYTES => {
                    hasher.update(bytes);
                    hashing.size = size;
                    return;
                }
                How::Here(_) => {
                    let How::Here(hasher) = std::mem::replace(&mut hashing.how, How::Finished)
                    else {
                        return;
                    };
                    match start_thread(hasher) {
                        Ok(thread) => hashing.how = thread,
                        // No thread to be had: everything is hashed here.
                        Err(mut hasher) => {
                            hasher.update(bytes);
                            hashing.how = How::Here(hasher);
                            hashing.size = size;
                            return;
                        }
                    }
                    let How::Thread { room, .. } = &hashing.how else {
                        return;
                    };
                    Arc::clone(room)
                }
                How::Thread { room, .. } => Arc::clone(room),
                How::Finished => return,
            }
        };
        let wanted = u32::try_from(bytes.len().min(BEHIND_BYTES)).unwrap_or(u32::MAX);
        // The semaphore is never closed.
        let Ok(permit) = room.acquire_many_owned(wanted).await else {
            return;
        };
        let mut hashing = self.lock();
        if let How::Thread { chunks, .. } = &hashing.how {
            // A send fails only once the thread is gone: `finish` reports it.
            let _ = chunks.send((bytes.clone(), permit));
            hashing.size += bytes.len() as u64;
        }
    }

    /// The SHA-256 (lowercase hex) and size of the bytes that went through; `None` if
    /// the hashing thread stopped before the end (it cannot, short of a panic).
    pub(super) async fn finish(self) -> Option<(String, u64)> {
        let (how, size) = {
            let mut hashing = self.lock();
            (
                std::mem::replace(&mut hashing.how, How::Finished),
                hashing.size,
            )
        };
        let hasher = match how {
            How::Here(hasher) => hasher,
            How::Thread { chunks, done, .. } => {
                // Closing the queue lets the thread finish what is in it and answer.
                drop(chunks);
                done.await.ok()?
            }
            How::Finished => return None,
        };
        Some((crate::digest::hex(&hasher.finalize()), size))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hashing> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the thread that hashes the next chunks with `hasher`; gives `hasher` back when
/// no thread can be started.
fn start_thread(hasher: Sha256) -> std::result::Result<How, Sha256> {
    let (chunks, mut queued) = mpsc::unbounded_channel::<(Bytes, OwnedSemaphorePermit)>();
    let (answer, done) = oneshot::channel();
    // The hasher is handed over once the thread runs: kept here if it cannot start.
    let (give, take) = oneshot::channel::<Sha256>();
    let spawned = std::thread::Builder::new()
        .name("chatvault-sha256".to_owned())
        .spawn(move || {
            let Ok(mut hasher) = take.blocking_recv() else {
                return;
            };
            // Room taken by hashed chunks, given back in steps.
            let mut hashed: Option<OwnedSemaphorePermit> = None;
            loop {
                let next = match queued.try_recv() {
                    Ok(next) => Some(next),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // About to wait: give all the room back first, or a stream
                        // waiting for it would wait for us.
                        hashed = None;
                        queued.blocking_recv()
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                };
                let Some((bytes, permit)) = next else { break };
                hasher.update(&bytes);
                drop(bytes);
                match &mut hashed {
                    Some(held) => held.merge(permit),
                    None => hashed = Some(permit),
                }
                if hashed
                    .as_ref()
                    .is_some_and(|held| held.num_permits() >= GIVE_BACK_BYTES)
                {
                    hashed = None;
                }
            }
            // The receiver is gone only if the upload was abandoned.
            let _ = answer.send(hasher);
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no thread for SHA-256: hashing as the stream is polled");
        return Err(hasher);
    }
    // Fails only if the thread is already gone.
    give.send(hasher)?;
    let room = Arc::new(Semaphore::new(BEHIND_BYTES));
    Ok(How::Thread { chunks, room, done })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8).collect()
    }

    fn stream_of(data: &[u8], chunk: usize) -> ByteStream {
        let chunks: Vec<std::io::Result<Bytes>> = data
            .chunks(chunk.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(chunks).boxed()
    }

    async fn drain(mut stream: ByteStream) -> Vec<u8> {
        let mut seen = Vec::new();
        while let Some(chunk) = stream.next().await {
            seen.extend_from_slice(&chunk.unwrap());
        }
        seen
    }

    fn on_a_thread(hash: &StreamHash) -> bool {
        matches!(hash.lock().how, How::Thread { .. })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn small_streams_are_hashed_as_they_are_polled() {
        for len in [0, 1, 1000, INLINE_BYTES as usize] {
            let data = pattern(len);
            let (stream, hash) = StreamHash::tap(stream_of(&data, 4096));
            assert!(drain(stream).await == data);
            assert!(!on_a_thread(&hash), "{len} bytes");
            let (digest, size) = hash.finish().await.unwrap();
            assert_eq!(digest, crate::digest::sha256_hex(&data));
            assert_eq!(size, len as u64);
        }
    }

    /// Past the first MiB a thread hashes, whatever the chunks' sizes (one larger than
    /// the room it may be behind included), and the stream passes every byte in order.
    #[tokio::test(flavor = "current_thread")]
    async fn large_streams_are_hashed_on_a_thread_of_their_own() {
        let data = pattern(3 * BEHIND_BYTES + 12345);
        for chunk in [1000, 64 * 1024, INLINE_BYTES as usize + 1, BEHIND_BYTES + 1] {
            let (stream, hash) = StreamHash::tap(stream_of(&data, chunk));
            assert!(drain(stream).await == data);
            assert!(on_a_thread(&hash), "chunks of {chunk}");
            let (digest, size) = hash.finish().await.unwrap();
            assert_eq!(
                digest,
                crate::digest::sha256_hex(&data),
                "chunks of {chunk}"
            );
            assert_eq!(size, data.len() as u64);
        }
    }

    /// A stream the backend stops reading (and keeps) still gives the hash of what went
    /// through, without waiting for the rest.
    #[tokio::test(flavor = "current_thread")]
    async fn finishing_early_hashes_what_went_through() {
        let data = pattern(4 * INLINE_BYTES as usize);
        let (mut stream, hash) = StreamHash::tap(stream_of(&data, 64 * 1024));
        let mut seen = Vec::new();
        while seen.len() < 2 * INLINE_BYTES as usize {
            seen.extend_from_slice(&stream.next().await.unwrap().unwrap());
        }
        let (digest, size) = hash.finish().await.unwrap();
        assert_eq!(digest, crate::digest::sha256_hex(&seen));
        assert_eq!(size, seen.len() as u64);
        // Chunks still read are passed on, unhashed.
        assert!(stream.next().await.unwrap().is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn failed_chunks_pass_through_unhashed() {
        let chunks = vec![
            Ok(Bytes::from(pattern(2 * INLINE_BYTES as usize))),
            Err(std::io::Error::other("lost")),
        ];
        let (mut stream, hash) = StreamHash::tap(futures_util::stream::iter(chunks).boxed());
        assert!(stream.next().await.unwrap().is_ok());
        assert!(stream.next().await.unwrap().is_err());
        assert!(stream.next().await.is_none());
        drop(stream);
        let (_, size) = hash.finish().await.unwrap();
        assert_eq!(size, 2 * INLINE_BYTES);
    }
}
