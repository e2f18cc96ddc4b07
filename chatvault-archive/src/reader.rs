//! Reading an archive: a directory or a `.tar` file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chatvault_core::backend::ConversationHead;
use chatvault_core::{ByteStream, Message};
use futures_util::StreamExt;

use crate::error::{ArchiveError, Result, io_at};
use crate::format::{MANIFEST, Manifest, blob_path};

/// The largest manifest read (it lists every file: 64 MiB holds ~400,000 of them).
const MAX_MANIFEST: u64 = 64 << 20;

/// An archive opened for reading; its manifest is read (and its version checked) on open.
#[derive(Debug)]
pub struct ArchiveReader {
    path: PathBuf,
    /// For a `.tar`: where each file's bytes are, `(offset, size)`.
    tar_index: Option<HashMap<String, (u64, u64)>>,
    manifest: Manifest,
}

impl ArchiveReader {
    /// Opens the archive at `path`: a directory, or a `.tar` file. Fails with
    /// [`ArchiveError::NewerFormat`] for an archive of a newer major version, and with
    /// [`ArchiveError::Malformed`] when `path` is not an archive.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(io_at("open", path))?;
        let tar_index = if meta.is_dir() {
            None
        } else {
            Some(index_tar(path)?)
        };
        let mut reader = ArchiveReader {
            path: path.to_path_buf(),
            tar_index,
            manifest: Manifest::new(),
        };
        let mut bytes = Vec::new();
        let manifest = reader.open_file(MANIFEST).map_err(|e| match e {
            ArchiveError::Missing { .. } => ArchiveError::malformed(
                path.display().to_string(),
                "no manifest.json: not a chatvault archive (or an export that did not finish)",
            ),
            other => other,
        })?;
        manifest
            .take(MAX_MANIFEST)
            .read_to_end(&mut bytes)
            .map_err(io_at("read", &path.join(MANIFEST)))?;
        reader.manifest = Manifest::parse(&bytes)?;
        Ok(reader)
    }

    /// The archive's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a file of the archive by its path inside it ([`ArchiveError::Missing`] when
    /// there is none).
    pub fn open_file(&self, rel: &str) -> Result<Box<dyn Read + Send>> {
        let missing = || ArchiveError::Missing {
            file: rel.to_owned(),
        };
        match &self.tar_index {
            None => {
                let full = self.path.join(rel);
                match File::open(&full) {
                    Ok(f) => Ok(Box::new(f)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
                    Err(e) => Err(io_at("open", &full)(e)),
                }
            }
            Some(index) => {
                let &(offset, size) = index.get(rel).ok_or_else(missing)?;
                let mut f = File::open(&self.path).map_err(io_at("open", &self.path))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(io_at("read", &self.path))?;
                Ok(Box::new(f.take(size)))
            }
        }
    }

    /// Reads a conversation file: its head, then its messages in pages of at most
    /// `page` messages.
    pub fn conversation(&self, rel: &str, page: usize) -> Result<ConversationReader> {
        let mut lines = BufReader::with_capacity(64 << 10, self.open_file(rel)?);
        let mut first = String::new();
        read_line(&mut lines, &mut first, rel)?;
        let head: ConversationHead = serde_json::from_str(&first)
            .map_err(|e| ArchiveError::malformed(rel, format!("line 1: {e}")))?;
        Ok(ConversationReader {
            rel: rel.to_owned(),
            lines: Box::new(lines),
            head,
            next_seq: 1,
            page: page.max(1),
            line: String::new(),
        })
    }

    /// The bytes of a blob as a stream ([`ArchiveError::Missing`] when absent).
    pub fn blob_stream(&self, sha256: &str) -> Result<ByteStream> {
        let rel = blob_path(sha256).ok_or_else(|| {
            ArchiveError::malformed(MANIFEST, format!("{sha256:?} is not a SHA-256"))
        })?;
        let reader = self.open_file(&rel)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        // The archive is read with blocking I/O; a blocking task feeds the stream.
        tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            loop {
                let mut buf = vec![0u8; 64 << 10];
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(buf.into())).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
        });
        Ok(tokio_stream_from(rx))
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> ByteStream {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// One conversation file being read: its head, then its messages page by page.
pub struct ConversationReader {
    rel: String,
    lines: Box<dyn BufRead + Send>,
    head: ConversationHead,
    next_seq: u64,
    page: usize,
    line: String,
}

impl std::fmt::Debug for ConversationReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationReader")
            .field("file", &self.rel)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl ConversationReader {
    /// The conversation's record and attachments (line 1).
    pub fn head(&self) -> &ConversationHead {
        &self.head
    }

    /// The next page of messages, or `None` at the end. Checks that seqs run 1, 2, 3 ...
    /// and that the file holds exactly `record.message_count` messages.
    pub fn next_page(&mut self) -> Result<Option<Vec<Message>>> {
        let mut out = Vec::new();
        while out.len() < self.page {
            self.line.clear();
            let n = self
                .lines
                .read_line(&mut self.line)
                .map_err(|e| ArchiveError::malformed(&self.rel, e))?;
            if n == 0 {
                break;
            }
            let message: Message = serde_json::from_str(&self.line).map_err(|e| {
                ArchiveError::malformed(&self.rel, format!("message {}: {e}", self.next_seq))
            })?;
            if message.seq != self.next_seq {
                return Err(ArchiveError::malformed(
                    &self.rel,
                    format!("seq {} where {} was expected", message.seq, self.next_seq),
                ));
            }
            self.next_seq += 1;
            out.push(message);
        }
        if out.is_empty() {
            let count = self.head.record.message_count;
            if self.next_seq - 1 != count {
                return Err(ArchiveError::malformed(
                    &self.rel,
                    format!(
                        "{} messages where the record counts {count}",
                        self.next_seq - 1
                    ),
                ));
            }
            return Ok(None);
        }
        Ok(Some(out))
    }
}

fn read_line(lines: &mut impl BufRead, buf: &mut String, rel: &str) -> Result<()> {
    match lines.read_line(buf) {
        Ok(0) => Err(ArchiveError::malformed(rel, "empty file")),
        Ok(_) => Ok(()),
        Err(e) => Err(ArchiveError::malformed(rel, e)),
    }
}

/// Where each regular file of a tar is: `(offset of its bytes, size)`.
fn index_tar(path: &Path) -> Result<HashMap<String, (u64, u64)>> {
    let file = File::open(path).map_err(io_at("open", path))?;
    let not_tar = |e: std::io::Error| ArchiveError::malformed(path.display().to_string(), e);
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut index = HashMap::new();
    for entry in archive.entries().map_err(not_tar)? {
        let entry = entry.map_err(not_tar)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry
            .path()
            .map_err(not_tar)?
            .to_string_lossy()
            .into_owned();
        index.insert(name, (entry.raw_file_position(), entry.size()));
    }
    if !index.contains_key(MANIFEST) {
        return Err(ArchiveError::malformed(
            path.display().to_string(),
            "no manifest.json: not a chatvault archive (or an export that did not finish)",
        ));
    }
    Ok(index)
}
