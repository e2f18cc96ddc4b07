//! The content-type file kept beside each blob under `meta/`, and the identity of the
//! data file it was written for.

use std::fs;

use serde::{Deserialize, Serialize};

/// The format of the content-type files this release writes.
pub(super) const META_VERSION: u32 = 2;

/// The largest content-type file read (they hold a few hundred bytes).
pub(super) const MAX_META_BYTES: u64 = 64 * 1024;

/// The sidecar kept for each blob under `meta/`: its content type, and the identity of
/// the data file it was written for.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) v: u32,
    pub(super) content_type: String,
    /// The data file this content type belongs to. A content-type file counts only while
    /// that very file is the key's data; written by every release since format 2 (format
    /// 1 had none, and is taken as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) data: Option<DataIdentity>,
    /// The inode number of this content-type file itself when it was written (Unix; since
    /// 0.2, still format 2: earlier readers ignore it). A rename keeps it; a copy of the
    /// store does not, and changes the data files' inodes (and, often, their modification
    /// times) too. So when it differs, the store was copied, and the data file is
    /// recognised by its size (and the content-type file by its `key`): a copied store
    /// keeps its content types. (A crash
    /// between an upload's two renames leaves the old content-type file in place, its
    /// own inode unchanged: that case is still judged by the full identity.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) this: Option<u64>,
    /// The key it was written for (since 0.2): a content-type file found under another
    /// key (copied there by hand) counts for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<String>,
}

/// The inode number of a file (Unix).
pub(super) fn inode(m: &fs::Metadata) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        None
    }
}

/// What tells one data file from another at the same path. A rename keeps all of it, so
/// the identity of an upload's temp file is that of the key's data once it is in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DataIdentity {
    pub(super) size: u64,
    /// The inode number (Unix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ino: Option<u64>,
    /// Last modification, in nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified_ns: Option<u64>,
}

impl DataIdentity {
    /// The identity of the file whose metadata is `m`.
    pub(super) fn of(m: &fs::Metadata) -> Self {
        let ino = inode(m);
        let modified_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok());
        DataIdentity {
            size: m.len(),
            ino,
            modified_ns,
        }
    }
}
