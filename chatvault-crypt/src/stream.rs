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

struct Sealing {
    input: ByteStream,
    pending: BytesMut,
    cipher: SegmentCipher,
    aad: Vec<u8>,
    position: u32,
    header: Option<Bytes>,
    ended: bool,
    done: bool,
}

/// `data` sealed under `keys` for storage `key`.
pub(crate) fn seal_stream(
    data: ByteStream,
    header: Header,
    keys: &DerivedKeys,
    key: &str,
) -> Result<ByteStream> {
    let file = FileHeader::new(header)?;
    let state = Sealing {
        input: data,
        pending: BytesMut::with_capacity(2 * SEGMENT),
        cipher: file.cipher(keys)?,
        aad: file.aad(key),
        position: 0,
        header: Some(Bytes::copy_from_slice(&file.bytes)),
        ended: false,
        done: false,
    };
    Ok(stream::unfold(state, |mut s| async move {
        let item = next_sealed(&mut s).await?;
        Some((item, s))
    })
    .boxed())
}

async fn next_sealed(s: &mut Sealing) -> Option<io::Result<Bytes>> {
    if s.done {
        return None;
    }
    if let Some(header) = s.header.take() {
        return Some(Ok(header));
    }
    loop {
        // A full segment is sealed once more bytes follow it: only then is it known not
        // to be the last.
        if s.pending.len() > SEGMENT {
            let segment = s.pending.split_to(SEGMENT);
            return Some(seal_segment(s, &segment, false));
        }
        if s.ended {
            s.done = true;
            let segment = s.pending.split();
            return Some(seal_segment(s, &segment, true));
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

fn seal_segment(s: &mut Sealing, plain: &[u8], last: bool) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(plain.len() + TAG_LEN);
    buf.extend_from_slice(plain);
    if s.position == u32::MAX || !s.cipher.seal(s.position, last, &s.aad, &mut buf) {
        s.done = true;
        return Err(io::Error::other(Error::TooLarge {
            what: "attachment (segments)".into(),
            size: u64::from(s.position),
            limit: u64::from(u32::MAX),
        }));
    }
    s.position += 1;
    Ok(Bytes::from(buf))
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
    Ok(stream::unfold(state, |mut s| async move {
        let item = next_opened(&mut s).await?;
        Some((item, s))
    })
    .boxed())
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
