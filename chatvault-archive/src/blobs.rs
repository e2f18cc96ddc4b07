//! Attachment bytes: streams checked against their record's SHA-256 and size.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use chatvault_core::{ByteStream, FileAttachment};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::format::hex;

/// A byte stream that ends in an error instead of its end when its bytes do not have the
/// expected SHA-256 and size, so a backend's upload of it stores nothing.
struct Checked {
    inner: ByteStream,
    hasher: Sha256,
    size: u64,
    expected_sha256: String,
    expected_size: u64,
    what: String,
    done: bool,
}

impl Stream for Checked {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.hasher.update(&chunk);
                self.size += chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                let sha = hex(&std::mem::take(&mut self.hasher).finalize());
                if sha == self.expected_sha256 && self.size == self.expected_size {
                    Poll::Ready(None)
                } else {
                    let msg = format!(
                        "{}: checksum mismatch (expected sha256 {} and {} bytes, found {sha} \
                         and {} bytes)",
                        self.what, self.expected_sha256, self.expected_size, self.size
                    );
                    Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        msg,
                    ))))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `stream`, failing at its end unless its bytes are `file`'s (its SHA-256 and size).
pub(crate) fn checked(stream: ByteStream, file: &FileAttachment) -> ByteStream {
    Checked {
        inner: stream,
        hasher: Sha256::new(),
        size: 0,
        expected_sha256: file.sha256.clone(),
        expected_size: file.size,
        what: format!("attachment {} ({})", file.id, file.storage_key),
        done: false,
    }
    .boxed()
}

/// The SHA-256 and size of everything `stream` yields.
pub(crate) async fn digest(mut stream: ByteStream) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}
