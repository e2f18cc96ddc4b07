//! What the messages wrapper stores in place of each sensitive value, and how it reads
//! it back: pure functions of the keys (no I/O but key look-ups).

use std::sync::Arc;

use chatvault_core::backend::{
    ConversationRecord, FileAttachment, Message, MessageUpdate, Metadata, NewMessage, Part,
};
use chatvault_core::{ConversationId, Error, MessageId, Result, sha256_hex};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cipher::DerivedKeys;
use crate::files::sealed_key;
use crate::format::{
    Header, STRING_PREFIX, aad, b64, corrupt, open_value, seal_value, shredded, unb64,
};
use crate::keyring::Keyring;

/// The `type` of a sealed part.
const PART_TYPE: &str = "sealed";
/// The one key of a sealed metadata object.
const META_KEY: &str = "chatvault_crypt";
/// The file name an attachment record stores in place of the real one.
const SEALED_FILENAME: &str = "sealed";

/// The keys and header new values of one owner are sealed with.
pub(crate) struct Sealing {
    pub(crate) header: Header,
    pub(crate) keys: Arc<DerivedKeys>,
}

impl Sealing {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<String> {
        Ok(b64(&seal_value(&self.keys, self.header, aad, plaintext)?))
    }

    /// The stored form of a message about to be appended.
    pub(crate) fn new_message(
        &self,
        conv: &ConversationId,
        mut m: NewMessage,
    ) -> Result<NewMessage> {
        m.parts = self.parts(conv, &m.id, &m.parts)?;
        m.metadata = self.message_metadata(conv, &m.id, &m.metadata)?;
        Ok(m)
    }

    /// The stored form of a message update.
    pub(crate) fn update(
        &self,
        conv: &ConversationId,
        id: &MessageId,
        mut u: MessageUpdate,
    ) -> Result<MessageUpdate> {
        if let Some(parts) = &u.parts {
            u.parts = Some(self.parts(conv, id, parts)?);
        }
        if let Some(metadata) = &u.metadata {
            u.metadata = Some(self.message_metadata(conv, id, metadata)?);
        }
        if let Some(failure) = &u.failure {
            u.failure =
                Some(self.string(&aad("failure", &[conv.as_bytes(), id.as_bytes()]), failure)?);
        }
        Ok(u)
    }

    fn parts(&self, conv: &ConversationId, id: &MessageId, parts: &[Part]) -> Result<Vec<Part>> {
        let n = (parts.len() as u64).to_be_bytes();
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let place = aad(
                    "part",
                    &[
                        conv.as_bytes(),
                        id.as_bytes(),
                        &(i as u64).to_be_bytes(),
                        &n,
                    ],
                );
                let json = serde_json::to_vec(part)
                    .map_err(|e| Error::invalid_input("part", e.to_string()))?;
                Ok(Part::Unknown(
                    json!({"type": PART_TYPE, "data": self.seal(&place, &json)?}),
                ))
            })
            .collect()
    }

    fn message_metadata(
        &self,
        conv: &ConversationId,
        id: &MessageId,
        m: &Metadata,
    ) -> Result<Metadata> {
        self.metadata(
            &aad("message metadata", &[conv.as_bytes(), id.as_bytes()]),
            m,
        )
    }

    /// Non-empty metadata as `{"chatvault_crypt": sealed}` (empty stays empty).
    fn metadata(&self, place: &[u8], m: &Metadata) -> Result<Metadata> {
        if m.is_empty() {
            return Ok(Metadata::new());
        }
        let json =
            serde_json::to_vec(m).map_err(|e| Error::invalid_input("metadata", e.to_string()))?;
        let mut out = Metadata::new();
        out.insert(META_KEY.into(), Value::String(self.seal(place, &json)?));
        Ok(out)
    }

    fn string(&self, place: &[u8], s: &str) -> Result<String> {
        Ok(format!(
            "{STRING_PREFIX}{}",
            self.seal(place, s.as_bytes())?
        ))
    }

    /// A conversation title's stored form.
    pub(crate) fn title(&self, conv: &ConversationId, title: &str) -> Result<String> {
        let sealed = self.string(&aad("title", &[conv.as_bytes()]), title)?;
        if sealed.len() > chatvault_core::keys::MAX_TITLE_LEN {
            return Err(Error::invalid_input(
                "title",
                format!(
                    "is {} bytes long; sealed by chatvault-crypt it would pass the limit of {} \
                     (titles up to {} bytes are accepted)",
                    title.len(),
                    chatvault_core::keys::MAX_TITLE_LEN,
                    MAX_SEALED_TITLE
                ),
            ));
        }
        Ok(sealed)
    }

    /// An attachment record's stored form: file name, digest, storage key and metadata
    /// sealed together; in clear a neutral name, a digest of the sealed form, and the key
    /// the bytes are stored under (the file name replaced by a keyed digest).
    pub(crate) fn attachment(
        &self,
        names: &DerivedKeys,
        conv: &ConversationId,
        file: &FileAttachment,
    ) -> Result<FileAttachment> {
        let secret = SealedFile {
            filename: file.filename.clone(),
            sha256: file.sha256.clone(),
            storage_key: file.storage_key.as_str().to_owned(),
            metadata: file.metadata.clone(),
        };
        let json =
            serde_json::to_vec(&secret).map_err(|e| Error::invalid_input("file", e.to_string()))?;
        let sealed = self.seal(&file_aad(conv, file), &json)?;
        let mut metadata = Metadata::new();
        metadata.insert(META_KEY.into(), Value::String(sealed.clone()));
        let sealed_file = FileAttachment::new(
            file.id.clone(),
            SEALED_FILENAME,
            file.content_type.clone(),
            file.size,
            sha256_hex(sealed.as_bytes()),
            sealed_key(names, &file.storage_key)?,
            file.uploaded_at,
        );
        Ok(sealed_file.with_metadata(metadata))
    }
}

/// The longest title accepted through the wrapper: its sealed form must stay within the
/// core's [`MAX_TITLE_LEN`](chatvault_core::keys::MAX_TITLE_LEN), which backends check.
pub(crate) const MAX_SEALED_TITLE: usize = 3_000;

#[derive(Serialize, Deserialize)]
struct SealedFile {
    filename: String,
    sha256: String,
    storage_key: String,
    metadata: Metadata,
}

fn file_aad(conv: &ConversationId, file: &FileAttachment) -> Vec<u8> {
    aad("attachment", &[conv.as_bytes(), file.id.as_bytes()])
}

trait AsBytes {
    fn as_bytes(&self) -> &[u8];
}

macro_rules! as_bytes {
    ($($t:ty),*) => {$(impl AsBytes for $t {
        fn as_bytes(&self) -> &[u8] {
            self.as_str().as_bytes()
        }
    })*};
}
as_bytes!(ConversationId, MessageId, chatvault_core::FileId);

/// Opens sealed values, asking the keyring for the key each header names.
pub(crate) struct Opener<'a> {
    pub(crate) keyring: &'a Keyring,
}

impl Opener<'_> {
    /// The plaintext of a sealed value (base64 text); `Ok(None)` when its key is no
    /// longer in the key store (shredded).
    async fn open(&self, text: &str, place: &[u8], location: &str) -> Result<Option<Vec<u8>>> {
        let sealed = unb64(text, location)?;
        let header = Header::parse(&sealed, location)?;
        match self.keyring.for_reading(&header).await? {
            Some(keys) => open_value(&keys, header, place, &sealed, location).map(Some),
            None => Ok(None),
        }
    }

    /// [`open`](Self::open), a destroyed key being [`Error::Corrupt`] too.
    async fn must_open(&self, text: &str, place: &[u8], location: &str) -> Result<Vec<u8>> {
        self.open(text, place, location)
            .await?
            .ok_or_else(|| shredded(location))
    }

    /// A stored message as it was written.
    pub(crate) async fn message(&self, conv: &ConversationId, mut m: Message) -> Result<Message> {
        let location = format!("conversation {conv} message {}", m.id);
        let n = (m.parts.len() as u64).to_be_bytes();
        let mut parts = Vec::with_capacity(m.parts.len());
        for (i, part) in m.parts.iter().enumerate() {
            let text = match part {
                Part::Unknown(v) if v.get("type").and_then(Value::as_str) == Some(PART_TYPE) => {
                    v.get("data").and_then(Value::as_str)
                }
                _ => None,
            }
            .ok_or_else(|| corrupt(&location, format!("part {i} is not sealed")))?;
            let place = aad(
                "part",
                &[
                    conv.as_bytes(),
                    m.id.as_bytes(),
                    &(i as u64).to_be_bytes(),
                    &n,
                ],
            );
            let json = self.must_open(text, &place, &location).await?;
            parts.push(
                serde_json::from_slice(&json).map_err(|e| corrupt(&location, e.to_string()))?,
            );
        }
        m.parts = parts;
        let place = aad("message metadata", &[conv.as_bytes(), m.id.as_bytes()]);
        m.metadata = self.metadata(&place, &m.metadata, &location).await?;
        if let Some(failure) = &m.failure {
            let place = aad("failure", &[conv.as_bytes(), m.id.as_bytes()]);
            m.failure = Some(self.string(&place, failure, &location).await?);
        }
        Ok(m)
    }

    async fn metadata(&self, place: &[u8], m: &Metadata, location: &str) -> Result<Metadata> {
        if m.is_empty() {
            return Ok(Metadata::new());
        }
        let text = match (m.len(), m.get(META_KEY)) {
            (1, Some(Value::String(text))) => text,
            _ => return Err(corrupt(location, "metadata is not sealed")),
        };
        let json = self.must_open(text, place, location).await?;
        serde_json::from_slice(&json).map_err(|e| corrupt(location, e.to_string()))
    }

    async fn string(&self, place: &[u8], s: &str, location: &str) -> Result<String> {
        let text = s
            .strip_prefix(STRING_PREFIX)
            .ok_or_else(|| corrupt(location, "a string is not sealed"))?;
        let bytes = self.must_open(text, place, location).await?;
        String::from_utf8(bytes).map_err(|_| corrupt(location, "a sealed string is not UTF-8"))
    }

    /// A stored title as it was set; `Ok(None)` for a title whose key was shredded when
    /// `lenient` (listings), [`Error::Corrupt`] otherwise.
    pub(crate) async fn title(
        &self,
        conv: &ConversationId,
        title: Option<&str>,
        lenient: bool,
    ) -> Result<Option<String>> {
        let Some(title) = title else { return Ok(None) };
        let location = format!("conversation {conv} title");
        let text = title
            .strip_prefix(STRING_PREFIX)
            .ok_or_else(|| corrupt(&location, "the title is not sealed"))?;
        match self
            .open(text, &aad("title", &[conv.as_bytes()]), &location)
            .await?
        {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| corrupt(&location, "a sealed title is not UTF-8")),
            None if lenient => Ok(None),
            None => Err(shredded(&location)),
        }
    }

    /// A stored record as it was written.
    pub(crate) async fn record(&self, mut r: ConversationRecord) -> Result<ConversationRecord> {
        r.title = self.title(&r.id, r.title.as_deref(), false).await?;
        Ok(r)
    }

    /// A stored attachment record as it was written; when `lenient` and its key was
    /// shredded, the stored record as it is (its storage key still finds the bytes, so that
    /// a delete removes them).
    pub(crate) async fn attachment(
        &self,
        conv: &ConversationId,
        file: FileAttachment,
        lenient: bool,
    ) -> Result<FileAttachment> {
        let location = format!("conversation {conv} attachment {}", file.id);
        let text = match (file.metadata.len(), file.metadata.get(META_KEY)) {
            (1, Some(Value::String(text))) => text,
            _ => return Err(corrupt(&location, "the attachment record is not sealed")),
        };
        let json = match self.open(text, &file_aad(conv, &file), &location).await? {
            Some(json) => json,
            None if lenient => return Ok(file),
            None => return Err(shredded(&location)),
        };
        let secret: SealedFile =
            serde_json::from_slice(&json).map_err(|e| corrupt(&location, e.to_string()))?;
        let mut file = file;
        file.filename = secret.filename;
        file.sha256 = secret.sha256;
        file.storage_key = secret
            .storage_key
            .parse()
            .map_err(|e: Error| corrupt(&location, e.to_string()))?;
        file.metadata = secret.metadata;
        Ok(file)
    }
}

/// The headers of every sealed value a stored message holds (parts, metadata, failure).
pub(crate) fn message_headers(m: &Message) -> Vec<Header> {
    let mut texts: Vec<&str> = m
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Unknown(v) => v.get("data").and_then(Value::as_str),
            _ => None,
        })
        .collect();
    if let Some(Value::String(text)) = m.metadata.get(META_KEY) {
        texts.push(text);
    }
    if let Some(text) = m
        .failure
        .as_deref()
        .and_then(|f| f.strip_prefix(STRING_PREFIX))
    {
        texts.push(text);
    }
    texts.into_iter().filter_map(header_of).collect()
}

/// The header of a stored title.
pub(crate) fn title_header(title: &str) -> Option<Header> {
    title.strip_prefix(STRING_PREFIX).and_then(header_of)
}

fn header_of(text: &str) -> Option<Header> {
    let bytes = unb64(text.get(..40)?, "").ok()?;
    Header::parse(&bytes, "").ok()
}
