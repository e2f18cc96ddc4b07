//! SHA-256 as lowercase hex: the digest of attachments and of over-long key components.
//! A leaf: it imports nothing from the crate.

use sha2::{Digest, Sha256};

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of `data` as lowercase hex, the form of
/// [`FileAttachment::sha256`](crate::FileAttachment::sha256).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}
