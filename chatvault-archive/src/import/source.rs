//! An export on disk: a zip (as the tools hand it out), a directory (the zip unpacked) or
//! one JSON file; where its conversations' JSON is, and which attachment bytes it holds.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use zip::ZipArchive;

use crate::error::{ArchiveError, Result, io_at};
use crate::format::hex;

/// The conversations file a zip or directory export holds.
const CONVERSATIONS_JSON: &str = "conversations.json";

/// How deep [`Export`] looks for attachment files in a directory.
const MAX_DIR_DEPTH: usize = 4;

/// An opened export.
#[derive(Debug)]
pub(crate) struct Export {
    path: PathBuf,
    kind: Kind,
    /// Attachment lookup: a file's name, and its ChatGPT file id, to its entry.
    index: HashMap<String, String>,
}

#[derive(Debug)]
enum Kind {
    /// A zip; `json` is the conversations entry; the archive serves attachment reads.
    Zip {
        json: String,
        zip: Mutex<ZipArchive<File>>,
    },
    /// A directory and its conversations file.
    Dir { root: PathBuf, json: PathBuf },
    /// One JSON file.
    File,
}

/// An attachment's bytes copied to a temporary file, with their digest.
#[derive(Debug)]
pub(crate) struct Spooled {
    pub(crate) file: NamedTempFile,
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

impl Export {
    /// Opens `path`: a zip (by its first bytes), a directory, or a JSON file.
    pub(crate) fn open(path: &Path) -> Result<Export> {
        let meta = std::fs::metadata(path).map_err(io_at("open", path))?;
        if meta.is_dir() {
            return Self::open_dir(path);
        }
        let mut magic = [0u8; 4];
        let mut file = File::open(path).map_err(io_at("open", path))?;
        let n = file.read(&mut magic).map_err(io_at("read", path))?;
        if n == 4 && magic == *b"PK\x03\x04" {
            return Self::open_zip(path);
        }
        Ok(Export {
            path: path.to_path_buf(),
            kind: Kind::File,
            index: HashMap::new(),
        })
    }

    fn open_zip(path: &Path) -> Result<Export> {
        let zip = open_zip(path)?;
        let mut index = HashMap::new();
        let mut jsons = Vec::new();
        for name in zip.file_names() {
            if name.ends_with('/') {
                continue;
            }
            let base = name.rsplit('/').next().unwrap_or(name);
            if base.ends_with(".json") {
                jsons.push(name.to_owned());
            } else {
                add_to_index(&mut index, base, name);
            }
        }
        let json = pick_json(jsons, |n| n.rsplit('/').next().unwrap_or(n).to_owned())
            .ok_or_else(|| no_json(path))?;
        Ok(Export {
            path: path.to_path_buf(),
            kind: Kind::Zip {
                json,
                zip: Mutex::new(zip),
            },
            index,
        })
    }

    fn open_dir(root: &Path) -> Result<Export> {
        let mut index = HashMap::new();
        let mut jsons = Vec::new();
        let mut stack = vec![(root.to_path_buf(), 0)];
        while let Some((dir, depth)) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(io_at("read", &dir))? {
                let entry = entry.map_err(io_at("read", &dir))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(io_at("read", &path))?;
                if kind.is_dir() && depth < MAX_DIR_DEPTH {
                    stack.push((path, depth + 1));
                } else if kind.is_file() {
                    let base = entry.file_name().to_string_lossy().into_owned();
                    let rel = path.strip_prefix(root).unwrap_or(&path);
                    let rel = rel.to_string_lossy().into_owned();
                    if base.ends_with(".json") && depth == 0 {
                        jsons.push(rel);
                    } else {
                        add_to_index(&mut index, &base, &rel);
                    }
                }
            }
        }
        let json = pick_json(jsons, |n| n.clone()).ok_or_else(|| no_json(root))?;
        Ok(Export {
            path: root.to_path_buf(),
            kind: Kind::Dir {
                root: root.to_path_buf(),
                json: root.join(json),
            },
            index,
        })
    }

    /// The export's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Streams the conversations: each is handed to `sink` as it is parsed (see
    /// [`for_each_item`](super::json::for_each_item)); returns how many.
    pub(crate) fn read_json(
        &self,
        items_key: Option<&str>,
        sink: &mut dyn FnMut(Value) -> bool,
    ) -> Result<u64> {
        let malformed = |file: &str, e: serde_json::Error| {
            ArchiveError::malformed(format!("{}: {file}", self.path.display()), e)
        };
        match &self.kind {
            Kind::Zip { json, .. } => {
                let mut zip = open_zip(&self.path)?;
                let entry = zip
                    .by_name(json)
                    .map_err(|e| ArchiveError::malformed(self.path.display().to_string(), e))?;
                super::json::for_each_item(entry, items_key, sink).map_err(|e| malformed(json, e))
            }
            Kind::Dir { json, .. } => {
                let file = File::open(json).map_err(io_at("open", json))?;
                super::json::for_each_item(file, items_key, sink)
                    .map_err(|e| malformed(&json.display().to_string(), e))
            }
            Kind::File => {
                let file = File::open(&self.path).map_err(io_at("open", &self.path))?;
                super::json::for_each_item(file, items_key, sink).map_err(|e| malformed("", e))
            }
        }
    }

    /// The entry holding the attachment `key` (its path in the export, a file name, or a
    /// ChatGPT file id such as `file-abc`), if the export holds it.
    pub(crate) fn find(&self, key: &str) -> Option<&str> {
        self.index.get(key).map(String::as_str)
    }

    /// Copies the entry's bytes to a temporary file, hashing them on the way (blocking
    /// I/O: call it off the async runtime).
    pub(crate) fn spool(&self, entry: &str) -> Result<Spooled> {
        let at = |action| io_at(action, &self.path);
        match &self.kind {
            Kind::Zip { zip, .. } => {
                let mut zip = zip
                    .lock()
                    .map_err(|_| ArchiveError::malformed(entry, "the zip reader failed"))?;
                let reader = zip
                    .by_name(entry)
                    .map_err(|e| ArchiveError::malformed(entry, e))?;
                spool(reader).map_err(at("read"))
            }
            Kind::Dir { root, .. } => {
                let path = root.join(entry);
                let file = File::open(&path).map_err(io_at("open", &path))?;
                spool(file).map_err(io_at("read", &path))
            }
            Kind::File => Err(ArchiveError::Missing {
                file: entry.to_owned(),
            }),
        }
    }
}

fn open_zip(path: &Path) -> Result<ZipArchive<File>> {
    let file = File::open(path).map_err(io_at("open", path))?;
    ZipArchive::new(file).map_err(|e| ArchiveError::malformed(path.display().to_string(), e))
}

fn no_json(path: &Path) -> ArchiveError {
    ArchiveError::malformed(
        path.display().to_string(),
        "no conversations.json (nor a single other .json file) in the export",
    )
}

/// `conversations.json` (the shallowest), else the only JSON file.
fn pick_json(mut names: Vec<String>, base: impl Fn(&String) -> String) -> Option<String> {
    names.sort_by_key(|n| (n.matches('/').count(), n.clone()));
    if let Some(n) = names.iter().find(|n| base(n) == CONVERSATIONS_JSON) {
        return Some(n.clone());
    }
    (names.len() == 1).then(|| names.remove(0))
}

/// Indexes a file by its path in the export, its name and, for ChatGPT's `file-XXXX-name.ext` and
/// `file_XXXX-name.ext`, by its file id.
fn add_to_index(index: &mut HashMap<String, String>, base: &str, entry: &str) {
    index.insert(entry.replace('\\', "/"), entry.to_owned());
    index
        .entry(base.to_owned())
        .or_insert_with(|| entry.to_owned());
    if let Some(id) = chatgpt_file_id(base) {
        index.entry(id).or_insert_with(|| entry.to_owned());
    }
}

/// The file id a ChatGPT export names a file by: `file-abc` of `file-abc-photo.png`,
/// `file_00ab` of `file_00ab-1234.png`.
pub(crate) fn chatgpt_file_id(name: &str) -> Option<String> {
    let rest = name
        .strip_prefix("file-")
        .or_else(|| name.strip_prefix("file_"))?;
    let end = rest.find(['-', '.']).unwrap_or(rest.len());
    (end > 0).then(|| name[..5 + end].to_owned())
}

fn spool(mut reader: impl Read) -> io::Result<Spooled> {
    let mut file = NamedTempFile::new()?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        size += n as u64;
    }
    file.flush()?;
    Ok(Spooled {
        file,
        sha256: hex(&hasher.finalize()),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatgpt_file_ids() {
        let id = |n| chatgpt_file_id(n);
        assert_eq!(id("file-AbC12-photo.png").as_deref(), Some("file-AbC12"));
        assert_eq!(id("file_00ab.webp").as_deref(), Some("file_00ab"));
        assert_eq!(id("file-x").as_deref(), Some("file-x"));
        assert_eq!(id("file-.png"), None);
        assert_eq!(id("photo.png"), None);
    }
}
