//! Writing an archive: a directory or a `.tar`, file by file, manifest last.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempDir};

use crate::error::{ArchiveError, Result, io_at};
use crate::format::{Hashing, MANIFEST, Manifest};

/// Where an archive goes.
enum Target {
    Dir(PathBuf),
    Tar(tar::Builder<Box<dyn Write + Send>>),
}

/// Writes an archive file by file; each file is spooled to a temporary file (hashed as it
/// is written), then moved into the directory or appended to the tar, so memory never
/// holds more than a write buffer. [`finish`](Self::finish) writes the manifest.
pub struct ArchiveWriter {
    target: Target,
    staging: TempDir,
    manifest: Manifest,
    blobs: HashSet<String>,
    label: PathBuf,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("to", &self.label)
            .field("counts", &self.manifest.counts)
            .finish_non_exhaustive()
    }
}

/// A file being written into an archive: write to it, then hand it to
/// [`ArchiveWriter::commit`].
#[derive(Debug)]
pub struct Spool {
    out: Hashing<BufWriter<NamedTempFile>>,
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl ArchiveWriter {
    /// Writes a directory archive at `path`, which must not exist or be an empty
    /// directory ([`ArchiveError::DestinationExists`] otherwise: nothing is written over).
    pub fn create_dir(path: &Path) -> Result<Self> {
        if path.exists() {
            let mut entries = fs::read_dir(path).map_err(io_at("read", path))?;
            if entries.next().is_some() {
                return Err(ArchiveError::DestinationExists(path.to_path_buf()));
            }
        }
        for sub in [
            "",
            crate::format::CONVERSATIONS_DIR,
            crate::format::BLOBS_DIR,
        ] {
            let dir = path.join(sub);
            fs::create_dir_all(&dir).map_err(io_at("create", &dir))?;
        }
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(path)
            .map_err(io_at("create a staging directory in", path))?;
        Ok(Self::new(Target::Dir(path.to_path_buf()), staging, path))
    }

    /// Writes a `.tar` archive to a new file at `path` ([`ArchiveError::DestinationExists`]
    /// when it exists).
    pub fn create_tar(path: &Path) -> Result<Self> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    ArchiveError::DestinationExists(path.to_path_buf())
                }
                _ => io_at("create", path)(e),
            })?;
        Self::tar_to(Box::new(BufWriter::new(file)), path)
    }

    /// Writes a `.tar` archive to `out` (standard output, a pipe); `label` names it in
    /// messages.
    pub fn tar_to(out: Box<dyn Write + Send>, label: &Path) -> Result<Self> {
        let staging = tempfile::Builder::new()
            .prefix("chatvault-export-")
            .tempdir()
            .map_err(io_at(
                "create a staging directory in",
                &std::env::temp_dir(),
            ))?;
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(Self::new(Target::Tar(builder), staging, label))
    }

    fn new(target: Target, staging: TempDir, label: &Path) -> Self {
        ArchiveWriter {
            target,
            staging,
            manifest: Manifest::new(),
            blobs: HashSet::new(),
            label: label.to_path_buf(),
        }
    }

    /// The manifest so far (its counts are the caller's to keep).
    pub fn manifest_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }

    /// Whether a blob of this SHA-256 was written already (or is being written).
    pub fn has_blob(&self, sha256: &str) -> bool {
        self.blobs.contains(sha256)
    }

    /// A new file to write.
    pub fn spool(&self) -> Result<Spool> {
        let tmp = NamedTempFile::new_in(self.staging.path())
            .map_err(io_at("create a file in", self.staging.path()))?;
        Ok(Spool {
            out: Hashing::new(BufWriter::new(tmp)),
        })
    }

    /// Puts a spooled file at `rel` in the archive and lists it in the manifest; returns
    /// its checksum and size.
    pub fn commit(&mut self, rel: &str, spool: Spool) -> Result<crate::format::FileEntry> {
        let (buffered, entry) = spool.out.finish();
        let staging = self.staging.path().to_path_buf();
        let tmp = buffered
            .into_inner()
            .map_err(|e| io_at("write", &staging)(e.into_error()))?;
        match &mut self.target {
            Target::Dir(root) => {
                let dest = root.join(rel);
                tmp.persist(&dest)
                    .map_err(|e| io_at("move into place", &dest)(e.error))?;
            }
            Target::Tar(builder) => {
                let mut file = tmp.into_file();
                file.seek(SeekFrom::Start(0))
                    .map_err(io_at("read", &staging))?;
                append_tar(builder, rel, entry.size, file, &self.label)?;
            }
        }
        if let Some(sha) = rel.strip_prefix("blobs/") {
            self.blobs.insert(sha.to_owned());
        }
        self.manifest.files.insert(rel.to_owned(), entry.clone());
        Ok(entry)
    }

    /// Writes the manifest and closes the archive; returns the manifest.
    pub fn finish(mut self) -> Result<Manifest> {
        let json = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| ArchiveError::malformed(MANIFEST, e))?;
        match &mut self.target {
            Target::Dir(root) => {
                let dest = root.join(MANIFEST);
                let mut tmp = NamedTempFile::new_in(self.staging.path())
                    .map_err(io_at("create a file in", self.staging.path()))?;
                tmp.write_all(&json).map_err(io_at("write", &dest))?;
                tmp.as_file().sync_all().map_err(io_at("write", &dest))?;
                tmp.persist(&dest)
                    .map_err(|e| io_at("move into place", &dest)(e.error))?;
            }
            Target::Tar(builder) => {
                append_tar(builder, MANIFEST, json.len() as u64, &json[..], &self.label)?;
                builder.finish().map_err(io_at("write", &self.label))?;
                builder
                    .get_mut()
                    .flush()
                    .map_err(io_at("write", &self.label))?;
            }
        }
        Ok(self.manifest)
    }
}

fn append_tar(
    builder: &mut tar::Builder<Box<dyn Write + Send>>,
    rel: &str,
    size: u64,
    data: impl std::io::Read,
    label: &Path,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, rel, data)
        .map_err(io_at("write", label))
}
