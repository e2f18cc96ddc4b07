//! `header.json` as read: an intact checkpoint, 0.1's header, or neither.

use std::fs;
use std::path::Path;

use chatvault_core::backend::Result;

use super::checkpoint::Checkpoint;
use crate::error::{damaged, io_error};
use crate::fsutil::is_absent;
use crate::messages::format::{FORMAT_VERSION, HEADER, LEGACY_FORMAT, LegacyHeader};

/// What `header.json` turned out to be.
#[derive(Debug)]
pub(crate) enum HeaderRead {
    /// There is none.
    Missing,
    /// Neither an intact checkpoint nor an 0.1 header.
    Damaged,
    /// 0.1's header.
    Legacy(Box<LegacyHeader>),
    /// An intact checkpoint.
    Checkpoint(Box<Checkpoint>),
}

impl HeaderRead {
    /// Reads `header.json` in conversation directory `dir`.
    pub(crate) fn read(dir: &Path) -> Result<HeaderRead> {
        let path = dir.join(HEADER);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if is_absent(&e) => return Ok(HeaderRead::Missing),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        if Checkpoint::is_marked(&bytes) {
            return Ok(match Checkpoint::decode(&bytes) {
                Some(cp) if cp.format <= FORMAT_VERSION => HeaderRead::Checkpoint(Box::new(cp)),
                Some(cp) => {
                    return Err(damaged(
                        &path,
                        format!(
                            "format {} is newer than this release's {FORMAT_VERSION}",
                            cp.format
                        ),
                    ));
                }
                None => HeaderRead::Damaged,
            });
        }
        match serde_json::from_slice::<LegacyHeader>(&bytes) {
            Ok(h) if h.format == LEGACY_FORMAT => Ok(HeaderRead::Legacy(Box::new(h))),
            Ok(h) if h.format > FORMAT_VERSION => Err(damaged(
                &path,
                format!(
                    "format {} is newer than this release's {FORMAT_VERSION}",
                    h.format
                ),
            )),
            _ => Ok(HeaderRead::Damaged),
        }
    }
}
