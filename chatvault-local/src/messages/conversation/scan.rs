//! Replaying a log: [`Scan`] checks its records one by one and gathers the state they
//! describe, a window of the log at a time.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use chatvault_core::backend::{ConversationRecord, FileAttachment, Message, Result};

use super::check_headroom;
use crate::error::{damaged, io_at, io_error};
use crate::fsutil::{is_absent, read_at};
use crate::log::{
    Body, DecodedFrame, FRAME_HEADER, FrameAt, INDEX_ENTRY, IndexEntry, MAGIC, MAX_RECORD_BYTES,
    decode_frame, frame_len,
};

/// The most log bytes read at once by a replay or an id map's build (more only for one
/// larger record, or damage: see [`for_each_window`]).
const LOG_WINDOW: u64 = 4 << 20;
/// Index bytes read at a time when the index is checked against the log.
const INDEX_WINDOW: u64 = 64 << 10;

/// Reads `from..to` of a log in windows of about [`LOG_WINDOW`] bytes and passes each to
/// `visit` with its log offset, until `visit` says to stop.
///
/// A window holds whole records only: one cut by the window's end starts the next
/// window, and a record larger than a window gets a window of its own. Only bytes that
/// are no record a header can delimit (a record whose length runs past `to`, or no record
/// header at all: a torn write, or damage) get a window running to `to`, so that what
/// follows them is seen with them. Memory stays bounded by the largest record, whatever
/// the log's length.
pub(crate) fn for_each_window(
    log: &mut File,
    path: &Path,
    from: u64,
    to: u64,
    mut visit: impl FnMut(&[u8], u64) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let mut at = from;
    while at < to {
        let mut want = (to - at).min(LOG_WINDOW);
        let buf = loop {
            let buf = read_at(log, path, at, want)?;
            match frame_len(&buf) {
                Some(len) if len <= want => break buf,
                Some(len) if len <= to - at => want = len,
                // The rest of the log at once: the visitor tells a torn tail from damage.
                _ if want < to - at => want = to - at,
                _ => break buf,
            }
        };
        let reaches_end = at + buf.len() as u64 == to;
        // The whole records the window holds.
        let mut whole = 0usize;
        while let Some(len) = frame_len(&buf[whole..]) {
            match usize::try_from(len) {
                Ok(len) if len <= buf.len() - whole => whole += len,
                _ => break,
            }
        }
        let window = if reaches_end || whole == 0 {
            &buf[..]
        } else {
            &buf[..whole]
        };
        if visit(window, at)?.is_break() {
            return Ok(());
        }
        at += window.len() as u64;
    }
    Ok(())
}

/// The generations of the logs in a conversation directory.
pub(crate) fn log_generations(dir: &Path) -> Result<Vec<u64>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_at("list", dir))?;
        if let Some(g) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("log-"))
            .and_then(|g| g.parse::<u64>().ok())
        {
            out.push(g);
        }
    }
    Ok(out)
}

pub(super) struct Scan<'a> {
    pub(super) path: &'a Path,
    /// `None` until a state record (or an 0.1 header) says what the record is.
    pub(super) record: Option<ConversationRecord>,
    pub(super) files: Vec<FileAttachment>,
    pub(super) count: u64,
    pub(super) valid_end: u64,
    pub(super) last_frame: Option<(u64, u32)>,
    pub(super) keep: bool,
    pub(super) tail: Vec<(Message, IndexEntry)>,
    pub(super) frames: usize,
    /// Log bytes known to hold acknowledged records: an end found before it is damage.
    pub(super) acknowledged: u64,
    /// The index, whose entry past the last message shows an acknowledged record.
    pub(super) index: Option<PathBuf>,
    /// Messages before the replay's start: updates to them go to `edits`.
    pub(super) start_count: u64,
    pub(super) edits: BTreeMap<u64, (Message, IndexEntry)>,
    pub(super) edited: bool,
    pub(super) deleting: bool,
}

impl<'a> Scan<'a> {
    /// A replay of the log at `path`, keeping its messages when `keep`.
    pub(super) fn new(path: &'a Path, keep: bool) -> Self {
        Scan {
            acknowledged: 0,
            index: None,
            start_count: 0,
            edits: BTreeMap::new(),
            edited: false,
            deleting: false,
            path,
            record: None,
            files: Vec::new(),
            count: 0,
            valid_end: 0,
            last_frame: None,
            keep,
            tail: Vec::new(),
            frames: 0,
        }
    }

    /// Replays the records in `from..to` of `log`. A torn record ends the replay; one
    /// followed by intact records is damage, reported, never cut off.
    pub(super) fn run(&mut self, log: &mut File, from: u64, to: u64) -> Result<()> {
        if to <= from {
            return self.check_unacknowledged(to, false);
        }
        let path = self.path;
        let mut torn = None;
        for_each_window(log, path, from, to, |buf, base| {
            let mut pos = 0usize;
            while pos < buf.len() {
                match decode_frame(path, buf, pos, base)? {
                    FrameAt::Torn => {
                        torn = Some(base + pos as u64);
                        return Ok(ControlFlow::Break(()));
                    }
                    FrameAt::Damaged => {
                        return Err(damaged(
                            path,
                            format!("damaged record at byte {}", base + pos as u64),
                        ));
                    }
                    FrameAt::Valid(frame) => {
                        let end = frame.end;
                        self.apply(frame, base + pos as u64)?;
                        pos = (end - base) as usize;
                    }
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if let Some(at) = torn {
            // A torn write ends a log: anything intact after it is damage, not a tail.
            let rest = read_at(log, path, at, to - at)?;
            check_torn(path, &rest, 0, at)?;
        }
        // Whether the log ends at a torn record or at a record boundary, it must not end
        // before what derived files show was acknowledged: a log cut exactly between two
        // records looks complete on its own.
        self.check_unacknowledged(self.valid_end, torn.is_some())
    }

    /// The log's valid records end at `end` (a torn record or the file's end follows):
    /// fails if acknowledged records were there. Derived files are written only after the
    /// records they describe were flushed, so none may describe more than the log holds:
    /// `end` must not be before the bytes a checkpoint accounted for, and no index entry
    /// of the replayed messages, of the last message (a streamed reply's newest
    /// checkpoint) or of the next position may point past `end`. After a torn record
    /// (a crash, or a cut inside a record: rare) every entry is checked, so that an
    /// update of an older message whose record was cut shows too.
    fn check_unacknowledged(&self, end: u64, torn: bool) -> Result<()> {
        if end < self.acknowledged {
            return Err(damaged(
                self.path,
                format!(
                    "the log's intact records end at byte {end}; {} bytes were acknowledged",
                    self.acknowledged
                ),
            ));
        }
        let Some(index_path) = &self.index else {
            return Ok(());
        };
        let first = if torn {
            0
        } else {
            self.start_count.min(self.count.saturating_sub(1))
        };
        let Some(offset) = first.checked_mul(INDEX_ENTRY) else {
            return Ok(());
        };
        let Ok(mut index) = File::open(index_path) else {
            return Ok(());
        };
        // Entries of positions `first + 1 ..= count + 1`, as far as the index has them,
        // read a window at a time.
        let mut left = (self.count - first + 1).saturating_mul(INDEX_ENTRY);
        if index.seek(SeekFrom::Start(offset)).is_err() {
            return Ok(());
        }
        let mut seq = first + 1;
        let mut raw = Vec::new();
        while left > 0 {
            raw.clear();
            let window = left.min(INDEX_WINDOW);
            match (&mut index).take(window).read_to_end(&mut raw) {
                Ok(read) if read > 0 => left -= read as u64,
                _ => break,
            }
            for raw in raw.chunks_exact(INDEX_ENTRY as usize) {
                if let Some(entry) = IndexEntry::decode(raw)
                    && shows_a_record_after(&entry, end)
                {
                    let what = if seq > self.count {
                        "was acknowledged"
                    } else {
                        "has an acknowledged version"
                    };
                    return Err(damaged(
                        self.path,
                        format!(
                            "message {seq} {what} at byte {} of the log, whose intact \
                             records end at byte {end}",
                            entry.offset
                        ),
                    ));
                }
                seq += 1;
            }
        }
        Ok(())
    }

    fn apply(&mut self, frame: DecodedFrame, offset: u64) -> Result<()> {
        let DecodedFrame { at, body, crc, end } = frame;
        match body {
            Body::Messages(messages, entries) => {
                let n = messages.len() as u64;
                for (i, m) in messages.iter().enumerate() {
                    let want = self.count.checked_add(i as u64 + 1);
                    if Some(m.seq) != want {
                        return Err(damaged(
                            self.path,
                            format!(
                                "the record at byte {offset} holds seq {} where {} belongs",
                                m.seq,
                                self.count.saturating_add(i as u64 + 1)
                            ),
                        ));
                    }
                }
                if let Some(record) = &mut self.record {
                    check_headroom(record, n, self.path)?;
                    if record.message_count != self.count {
                        return Err(damaged(self.path, "the record's count disagrees"));
                    }
                    let news = messages.iter().map(Message::to_new).collect();
                    record.apply_append(news, at).map_err(|e| {
                        damaged(self.path, format!("the record at byte {offset}: {e}"))
                    })?;
                }
                self.count += n;
                if self.keep {
                    self.tail.extend(messages.into_iter().zip(entries));
                }
            }
            Body::Edit(message, entry, record) => {
                let seq = message.seq;
                if seq == 0 || seq > self.count || record.message_count != self.count {
                    return Err(damaged(
                        self.path,
                        format!(
                            "the update at byte {offset} is of message {seq} of {}",
                            self.count
                        ),
                    ));
                }
                if self.keep {
                    if seq > self.start_count {
                        let slot = (seq - self.start_count - 1) as usize;
                        if let Some(held) = self.tail.get_mut(slot) {
                            *held = (*message, entry);
                        }
                    } else {
                        self.edits.insert(seq, (*message, entry));
                    }
                }
                self.edited = true;
                self.record = Some(*record);
            }
            Body::State(state) => {
                if state.record.message_count != self.count {
                    return Err(damaged(
                        self.path,
                        format!(
                            "the state record at byte {offset} counts {} messages after {}",
                            state.record.message_count, self.count
                        ),
                    ));
                }
                self.record = Some(state.record);
                self.files = state.files;
                self.deleting = state.deleting;
            }
        }
        self.valid_end = end;
        self.last_frame = Some((offset, crc));
        self.frames += 1;
        Ok(())
    }
}

/// Whether an index entry describes a message line in a record that starts at or after
/// `end`: a record the log no longer holds. Entries no writer could have written (empty,
/// longer than a record, past the largest file offset) are damage to the index itself,
/// which reads bypass; they prove nothing about the log.
fn shows_a_record_after(entry: &IndexEntry, end: u64) -> bool {
    entry.len > 0
        && u64::from(entry.len) <= MAX_RECORD_BYTES
        && entry.end().is_some_and(|e| e <= i64::MAX as u64)
        && entry.offset >= end.saturating_add(FRAME_HEADER)
}

/// After a torn record at `buf[pos..]`: fails when an intact record follows (damage in
/// the middle of the log, whose later records must not be cut off).
fn check_torn(path: &Path, buf: &[u8], pos: usize, base: u64) -> Result<()> {
    let mut at = pos + 1;
    while let Some(found) = buf
        .get(at..)
        .and_then(|rest| rest.windows(MAGIC.len()).position(|w| w == MAGIC))
    {
        let candidate = at + found;
        match decode_frame(path, buf, candidate, base) {
            Ok(FrameAt::Torn | FrameAt::Damaged) => at = candidate + 1,
            Ok(FrameAt::Valid(_)) | Err(_) => {
                return Err(damaged(
                    path,
                    format!(
                        "damaged record at byte {}, followed by an intact record at byte {}",
                        base + pos as u64,
                        base + candidate as u64
                    ),
                ));
            }
        }
    }
    Ok(())
}
