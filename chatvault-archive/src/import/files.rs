//! A conversation's files: the parts that point at them, and the attachments to upload
//! for those whose bytes the export holds.

use base64::Engine;
use bytes::Bytes;
use chatvault_core::{ContentType, FilePart, FileSource, Part, keys};
use chrono::{DateTime, Utc};

use super::Format;
use super::model::{Conv, FileBytes, PendingFile};
use super::report::Notes;
use super::source::Export;

/// Collects a conversation's files while its converter runs.
#[derive(Debug)]
pub(crate) struct Files<'a> {
    format: Format,
    export: &'a Export,
    conversation: String,
    pending: Vec<PendingFile>,
    notes: Notes,
    time: Option<DateTime<Utc>>,
}

impl<'a> Files<'a> {
    pub(crate) fn new(format: Format, export: &'a Export) -> Self {
        Files {
            format,
            export,
            conversation: String::new(),
            pending: Vec::new(),
            notes: Notes::default(),
            time: None,
        }
    }

    /// The conversation the files belong to (their ids derive from it) and its time.
    pub(crate) fn start(&mut self, conversation: &str, time: Option<DateTime<Utc>>) {
        self.conversation = conversation.to_owned();
        self.time = time;
    }

    /// The upload time of the next attachments (`None`: the conversation's).
    pub(crate) fn set_time(&mut self, time: Option<DateTime<Utc>>) {
        self.time = time;
    }

    /// A file the export may hold under `key` (a ChatGPT file id or a file name),
    /// referred to by `pointer`: an attachment when it does, else a part pointing at
    /// `pointer`.
    pub(crate) fn exported(
        &mut self,
        key: &str,
        pointer: &str,
        filename: Option<&str>,
        media_type: Option<&str>,
    ) -> Part {
        match self.export.find(key) {
            Some(entry) => {
                let base = entry.rsplit(['/', '\\']).next().unwrap_or(entry);
                let name = filename.unwrap_or(base).to_owned();
                let entry = FileBytes::Entry(entry.to_owned());
                self.attach(pointer, &name, media_type, entry)
            }
            None => self.missing(pointer, filename, media_type),
        }
    }

    /// A file whose bytes the conversation's JSON holds.
    pub(crate) fn inline(
        &mut self,
        pointer: &str,
        filename: &str,
        media_type: Option<&str>,
        bytes: Bytes,
    ) -> Part {
        self.attach(pointer, filename, media_type, FileBytes::Inline(bytes))
    }

    /// A `data:` URL's bytes as an attachment (`None` when it is not one).
    pub(crate) fn data_url(&mut self, url: &str, filename: Option<&str>) -> Option<Part> {
        let rest = url.strip_prefix("data:")?;
        let (head, data) = rest.split_once(',')?;
        let media = head.strip_suffix(";base64")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .ok()?;
        let pointer = format!("data:{media};sha256={}", chatvault_core::sha256_hex(&bytes));
        let ext = media.rsplit('/').next().unwrap_or("bin");
        let name = filename.map_or_else(|| format!("image.{ext}"), str::to_owned);
        Some(self.inline(&pointer, &name, Some(media), Bytes::from(bytes)))
    }

    /// A file the export does not hold: a part whose URL is the source's pointer.
    pub(crate) fn missing(
        &mut self,
        pointer: &str,
        filename: Option<&str>,
        media_type: Option<&str>,
    ) -> Part {
        self.notes.missing(pointer);
        Part::File(FilePart {
            source: FileSource::Url {
                url: if pointer.is_empty() {
                    "unknown:".to_owned()
                } else {
                    pointer.to_owned()
                },
            },
            media_type: media(media_type, filename),
            filename: filename
                .filter(|n| keys::validate_filename(n).is_ok())
                .map(str::to_owned),
        })
    }

    fn attach(
        &mut self,
        pointer: &str,
        filename: &str,
        media_type: Option<&str>,
        bytes: FileBytes,
    ) -> Part {
        let id = super::ids::file(self.format, &self.conversation, pointer);
        let filename = if keys::validate_filename(filename).is_ok() {
            filename.to_owned()
        } else {
            self.notes
                .add("attachment names replaced (empty, too long or with control characters)");
            "attachment".to_owned()
        };
        let content_type =
            media(media_type, Some(&filename)).unwrap_or_else(ContentType::octet_stream);
        if !self.pending.iter().any(|f| f.id == id) {
            self.pending.push(PendingFile {
                id: id.clone(),
                pointer: pointer.to_owned(),
                filename: filename.clone(),
                content_type: content_type.clone(),
                uploaded_at: self.time,
                bytes,
            });
        }
        Part::File(FilePart {
            source: FileSource::Attachment { file_id: id },
            media_type: Some(content_type),
            filename: Some(filename),
        })
    }

    /// Hands the collected attachments and notes to `conv`.
    pub(crate) fn finish(self, conv: &mut Conv) {
        conv.files = self.pending;
        conv.notes.merge(self.notes);
    }
}

/// The media type given, or guessed from the file name's extension.
fn media(given: Option<&str>, filename: Option<&str>) -> Option<ContentType> {
    if let Some(t) = given.and_then(|g| ContentType::parse(g).ok()) {
        return Some(t);
    }
    let ext = filename?.rsplit_once('.')?.1.to_ascii_lowercase();
    let guess = match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "md" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        _ => return None,
    };
    ContentType::parse(guess).ok()
}
