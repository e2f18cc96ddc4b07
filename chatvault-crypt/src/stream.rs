//! Attachments as a STREAM of sealed 64 KiB segments: the header, then each segment
//! sealed at its position (the last one marked), so that memory stays bounded by a
//! segment both ways, and a reordered, cut or altered file fails to open.

use std::io;

use bytes::{Bytes, BytesMut};
use chatvault_core::backend::ByteStream;
use chatvault_core::{Error, Result};
use futures_util::stream::{self, StreamExt};
use zeroize::Zeroizing;

use crate::cipher::{DerivedKeys, SegmentCipher, TAG_LEN, random};
use crate::format::{Header, VALUE_HEADER_LEN, corrupt};

/// Plaintext bytes per segment.
pub(crate) const SEGMENT: usize = 64 * 1024;
/// The magic bytes that open a sealed file.
const MAGIC: &[u8; 4] = b"CVCF";
/// Bytes of a file's random salt.
const SALT_LEN: usize = 32;
/// Bytes reserved for the STREAM nonce prefix (XChaCha20's 19; AES-GCM uses 7).
const PREFIX_LEN: usize = 19;
/// Bytes of a sealed file's header: magic, value header, salt, nonce prefix.
pub(crate) const FILE_HEADER_LEN: usize = 4 + VALUE_HEADER_LEN + SALT_LEN + PREFIX_LEN;

/// A file's header and the STREAM it opens.
pub(crate) struct FileHeader {
    pub(crate) header: Header,
    bytes: [u8; FILE_HEADER_LEN],
}

impl FileHeader {
    /// A new header with a fresh salt and nonce prefix.
    pub(crate) fn new(header: Header) -> Result<Self> {
        let mut bytes = [0u8; FILE_HEADER_LEN];
        bytes[..4].copy_from_slice(MAGIC);
        bytes[4..4 + VALUE_HEADER_LEN].copy_from_slice(&header.bytes());
        random(&mut bytes[4 + VALUE_HEADER_LEN..])?;
        Ok(FileHeader { header, bytes })
    }

    /// Parses a header.
    pub(crate) fn parse(bytes: &[u8], location: &str) -> Result<Self> {
        let bytes: [u8; FILE_HEADER_LEN] = bytes
            .get(..FILE_HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .filter(|b: &[u8; FILE_HEADER_LEN]| &b[..4] == MAGIC)
            .ok_or_else(|| corrupt(location, "not a file sealed by chatvault-crypt"))?;
        let header = Header::parse(&bytes[4..], location)?;
        Ok(FileHeader { header, bytes })
    }

    fn cipher(&self, keys: &DerivedKeys) -> Result<SegmentCipher> {
        let alg = self.header.alg;
        let salt = &self.bytes[4 + VALUE_HEADER_LEN..4 + VALUE_HEADER_LEN + SALT_LEN];
        let key: Zeroizing<[u8; 32]> = keys.file_key(alg, salt)?;
        let prefix = &self.bytes[FILE_HEADER_LEN - PREFIX_LEN..][..alg.stream_prefix_len()];
        SegmentCipher::new(alg, &key, prefix)
    }

    /// The associated data of every segment: the header and the storage key, so that a
    /// file moved to another key fails to open.
    fn aad(&self, key: &str) -> Vec<u8> {
        [&self.bytes[..], key.as_bytes()].concat()
    }
}

/// The plaintext size of a sealed file of `stored` bytes (`None`: no sealed file has it).
pub(crate) fn plain_size(stored: u64) -> Option<u64> {
    let body = stored.checked_sub(FILE_HEADER_LEN as u64)?;
    let full = (SEGMENT + TAG_LEN) as u64;
    let segments = body.div_ceil(full).max(1);
    body.checked_sub(segments * TAG_LEN as u64)
}

/// The stored size of a plaintext of `plain` bytes.
#[cfg(test)]
pub(crate) fn stored_size(plain: u64) -> u64 {
    let segments = plain.div_ceil(SEGMENT as u64).max(1);
    FILE_HEADER_LEN as u64 + plain + segments * TAG_LEN as u64
}

/// Sealed bytes handed on at once: 16 segments.
const BATCH: usize = 16 * (SEGMENT + TAG_LEN);

struct Sealing {
    input: ByteStream,
    /// Input not yet copied into `buf`.
    carry: Bytes,
    /// Sealed segments (`..sealed`), then the open segment's plaintext.
    buf: BytesMut,
    sealed: usize,
    cipher: SegmentCipher,
    aad: Vec<u8>,
    position: u32,
    ended: bool,
    done: bool,
}

/// `data` sealed under `keys` for storage `key`: the header, then batches of sealed
/// segments, each segment sealed in place in its batch (no copy beyond the one out of
/// the input). Under a tokio runtime the sealing runs in a task of its own, ahead of the
/// consumer by at most four batches, so that sealing and storing overlap.
pub(crate) fn seal_stream(
    data: ByteStream,
    header: Header,
    keys: &DerivedKeys,
    key: &str,
) -> Result<ByteStream> {
    let file = FileHeader::new(header)?;
    let mut buf = BytesMut::with_capacity(BATCH + SEGMENT + TAG_LEN);
    buf.extend_from_slice(&file.bytes);
    let state = Sealing {
        input: data,
        carry: Bytes::new(),
        sealed: buf.len(),
        buf,
        cipher: file.cipher(keys)?,
        aad: file.aad(key),
        position: 0,
        ended: false,
        done: false,
    };
    let sealed = stream::unfold(state, |mut s| async move {
        let item = next_sealed(&mut s).await?;
        Some((item, s))
    });
    Ok(pipelined(sealed.boxed()))
}

async fn next_sealed(s: &mut Sealing) -> Option<io::Result<Bytes>> {
    while !s.done {
        if s.sealed >= BATCH {
            let out = s.buf.split_to(s.sealed).freeze();
            s.sealed = 0;
            return Some(Ok(out));
        }
        if s.carry.is_empty() && !s.ended {
            match s.input.next().await {
                Some(Ok(chunk)) => s.carry = chunk,
                Some(Err(e)) => {
                    s.done = true;
                    return Some(Err(e));
                }
                None => s.ended = true,
            }
            continue;
        }
        let open = s.buf.len() - s.sealed;
        if s.carry.is_empty() {
            // The input ended: the open segment is the last.
            if let Err(e) = seal_open(s, true) {
                return Some(Err(e));
            }
            s.done = true;
            return Some(Ok(s.buf.split().freeze()));
        }
        if open == SEGMENT {
            // More input follows: the open segment is not the last.
            if let Err(e) = seal_open(s, false) {
                return Some(Err(e));
            }
            continue;
        }
        let n = (SEGMENT - open).min(s.carry.len());
        s.buf.extend_from_slice(&s.carry.split_to(n));
    }
    None
}

/// Seals the open segment (the end of `buf`) in place.
fn seal_open(s: &mut Sealing, last: bool) -> io::Result<()> {
    let mut tail = Tail {
        buf: &mut s.buf,
        start: s.sealed,
    };
    if s.position == u32::MAX || !s.cipher.seal(s.position, last, &s.aad, &mut tail) {
        s.done = true;
        return Err(io::Error::other(Error::TooLarge {
            what: "attachment (segments)".into(),
            size: u64::from(s.position),
            limit: u64::from(u32::MAX),
        }));
    }
    s.position += 1;
    s.sealed = s.buf.len();
    Ok(())
}

/// The end of a buffer from `start`, as the AEAD's in-place buffer.
struct Tail<'a> {
    buf: &'a mut BytesMut,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
}

impl chacha20poly1305::aead::Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> chacha20poly1305::aead::Result<()> {
        self.buf.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }
}

/// Runs `stream` in a task of its own when there is a tokio runtime, handing its items
/// over a channel of four, so that producing them overlaps with consuming them; as it is
/// otherwise. The task stops when the consumer drops the stream.
fn pipelined(mut stream: ByteStream) -> ByteStream {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return stream;
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    runtime.spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// Reads a sealed file's header from `stored`: the header and what follows it.
pub(crate) async fn read_header(
    stored: &mut ByteStream,
    location: &str,
) -> Result<(FileHeader, BytesMut)> {
    let mut buf = BytesMut::with_capacity(2 * SEGMENT);
    while buf.len() < FILE_HEADER_LEN {
        match stored.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(chatvault_core::backend::download_error(e)),
            None => break,
        }
    }
    let header = FileHeader::parse(&buf, location)?;
    let rest = buf.split_off(FILE_HEADER_LEN);
    Ok((header, rest))
}

struct Opening {
    input: ByteStream,
    pending: BytesMut,
    cipher: SegmentCipher,
    aad: Vec<u8>,
    position: u32,
    location: String,
    ended: bool,
    done: bool,
}

/// The plaintext of a sealed file whose header [`read_header`] read.
pub(crate) fn open_stream(
    stored: ByteStream,
    file: &FileHeader,
    rest: BytesMut,
    keys: &DerivedKeys,
    key: &str,
) -> Result<ByteStream> {
    let state = Opening {
        input: stored,
        pending: rest,
        cipher: file.cipher(keys)?,
        aad: file.aad(key),
        position: 0,
        location: format!("file {key}"),
        ended: false,
        done: false,
    };
    let opened = stream::unfold(state, |mut s| async move {
        let item = next_opened(&mut s).await?;
        Some((item, s))
    });
    Ok(pipelined(opened.boxed()))
}

async fn next_opened(s: &mut Opening) -> Option<io::Result<Bytes>> {
    const FULL: usize = SEGMENT + TAG_LEN;
    loop {
        if s.done {
            return None;
        }
        if s.pending.len() > FULL {
            let segment = s.pending.split_to(FULL);
            return Some(open_segment(s, &segment, false));
        }
        if s.ended {
            s.done = true;
            let segment = s.pending.split();
            let opened = open_segment(s, &segment, true);
            // An empty last segment of a non-empty file carries no bytes.
            return match opened {
                Ok(b) if b.is_empty() => None,
                other => Some(other),
            };
        }
        match s.input.next().await {
            Some(Ok(chunk)) => s.pending.extend_from_slice(&chunk),
            Some(Err(e)) => {
                s.done = true;
                return Some(Err(e));
            }
            None => s.ended = true,
        }
    }
}

fn open_segment(s: &mut Opening, sealed: &[u8], last: bool) -> io::Result<Bytes> {
    let mut buf = sealed.to_vec();
    if s.position == u32::MAX || !s.cipher.open(s.position, last, &s.aad, &mut buf) {
        s.done = true;
        return Err(io::Error::from(corrupt(
            &s.location,
            format!(
                "segment {} does not authenticate: the file was altered, cut or moved",
                s.position
            ),
        )));
    }
    s.position += 1;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_invert() {
        for plain in [0u64, 1, 65_535, 65_536, 65_537, 131_072, 131_073, 10 << 20] {
            assert_eq!(plain_size(stored_size(plain)), Some(plain), "{plain}");
        }
        assert_eq!(plain_size(3), None);
    }
}
