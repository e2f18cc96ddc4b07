//! The format's types: version, manifest, paths inside an archive.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};

use chatvault_core::{ConversationId, keys};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ArchiveError, Result};

/// The format version this release writes, and the newest it reads.
pub const FORMAT_VERSION: FormatVersion = FormatVersion { major: 1, minor: 1 };

/// The name of the manifest file.
pub const MANIFEST: &str = "manifest.json";

/// The folder of the conversation files.
pub const CONVERSATIONS_DIR: &str = "conversations";

/// The folder of the attachment bytes.
pub const BLOBS_DIR: &str = "blobs";

/// An archive format version, `MAJOR.MINOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FormatVersion {
    /// Changes when a file's meaning changes: a reader rejects a newer major version.
    pub major: u32,
    /// Changes when only what older readers may ignore is added.
    pub minor: u32,
}

impl FormatVersion {
    /// Parses `"MAJOR.MINOR"`; anything else is [`ArchiveError::Malformed`].
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || ArchiveError::malformed(MANIFEST, format!("format {s:?} is not MAJOR.MINOR"));
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        Ok(FormatVersion {
            major: major.parse().map_err(|_| bad())?,
            minor: minor.parse().map_err(|_| bad())?,
        })
    }

    /// Ok when this release reads archives of version `self`: the same major version or
    /// an older one; [`ArchiveError::NewerFormat`] otherwise.
    pub fn check_readable(self) -> Result<()> {
        if self.major > FORMAT_VERSION.major {
            return Err(ArchiveError::NewerFormat {
                found: self.to_string(),
                supported: FORMAT_VERSION.to_string(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// How much an archive holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Conversation files.
    pub conversations: u64,
    /// Messages in all conversation files.
    pub messages: u64,
    /// Attachment records.
    pub attachments: u64,
    /// Distinct blobs (attachments sharing bytes share one).
    pub blobs: u64,
    /// Bytes in all blobs.
    pub blob_bytes: u64,
}

/// A file's checksum and size, as the manifest lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// The file's size in bytes.
    pub size: u64,
}

/// `manifest.json`: what an archive holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `"MAJOR.MINOR"`.
    pub format: String,
    /// What wrote the archive.
    pub producer: String,
    /// When the export started.
    pub created_at: DateTime<Utc>,
    /// How much it holds.
    pub counts: Counts,
    /// Every other file in the archive, by path, with its checksum and size.
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    /// An empty manifest of the current version, produced by this crate, created now.
    pub fn new() -> Self {
        Manifest {
            format: FORMAT_VERSION.to_string(),
            producer: format!("chatvault-archive {}", env!("CARGO_PKG_VERSION")),
            created_at: chatvault_core::backend::now(),
            counts: Counts::default(),
            files: BTreeMap::new(),
        }
    }

    /// Parses a manifest and checks that this release reads its version.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct VersionOnly {
            format: String,
        }
        // The version first: a newer major version may change everything else.
        let v: VersionOnly =
            serde_json::from_slice(bytes).map_err(|e| ArchiveError::malformed(MANIFEST, e))?;
        FormatVersion::parse(&v.format)?.check_readable()?;
        serde_json::from_slice(bytes).map_err(|e| ArchiveError::malformed(MANIFEST, e))
    }

    /// The conversation files with their checksums, in path order.
    pub fn conversation_entries(&self) -> impl Iterator<Item = (&str, &FileEntry)> {
        self.files
            .iter()
            .filter(|(p, _)| p.starts_with("conversations/"))
            .map(|(p, e)| (p.as_str(), e))
    }

    /// The paths of the conversation files, in path order.
    pub fn conversation_files(&self) -> impl Iterator<Item = &str> {
        self.files
            .keys()
            .map(String::as_str)
            .filter(|p| p.starts_with("conversations/"))
    }
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest::new()
    }
}

/// The path of a conversation's file inside an archive.
pub fn conversation_path(id: &ConversationId) -> String {
    format!(
        "{CONVERSATIONS_DIR}/{}.jsonl",
        keys::encode_component(id.as_str(), 200)
    )
}

/// The path of a blob inside an archive; `None` unless `sha256` is 64 lowercase hex digits.
pub fn blob_path(sha256: &str) -> Option<String> {
    let ok = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| format!("{BLOBS_DIR}/{sha256}"))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A writer that hashes and counts what passes through it.
#[derive(Debug)]
pub(crate) struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The inner writer, and the SHA-256 and size of what was written.
    pub(crate) fn finish(self) -> (W, FileEntry) {
        let sha256 = hex(&self.hasher.finalize());
        (
            self.inner,
            FileEntry {
                sha256,
                size: self.size,
            },
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes everything `reader` yields.
pub(crate) fn hash_reader(mut reader: impl io::Read) -> io::Result<FileEntry> {
    let mut sink = Hashing::new(io::sink());
    io::copy(&mut reader, &mut sink)?;
    Ok(sink.finish().1)
}
