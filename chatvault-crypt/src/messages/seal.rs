//! What the messages wrapper stores in place of each sensitive value, and how it reads
//! it back: pure functions of the keys (no I/O but key look-ups).

use std::fmt;
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

    /// The stored form of a message about to be appended (`m` is left as it was: its
    /// content is sealed from where it is, not copied first).
    pub(crate) fn new_message(
        &self,
        conv: &ConversationId,
        m: &mut NewMessage,
    ) -> Result<NewMessage> {
        let parts = std::mem::take(&mut m.parts);
        let metadata = std::mem::take(&mut m.metadata);
        let mut sealed = m.clone();
        m.parts = parts;
        m.metadata = metadata;
        sealed.parts = self.parts(conv, &m.id, &m.parts)?;
        sealed.metadata = self.message_metadata(conv, &m.id, &m.metadata)?;
        Ok(sealed)
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
                let mut json = Vec::with_capacity(json_capacity(part));
                serde_json::to_writer(&mut json, part)
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

/// Room for a part's JSON, so that writing it rarely grows the buffer: a text part is its
/// text and a few bytes (more only where characters are escaped).
fn json_capacity(part: &Part) -> usize {
    match part {
        Part::Text { text } => text.len() + 32,
        _ => 256,
    }
}

/// The JSON a sealed part adds to its data: `{"type":"sealed","data":""}`.
const SEALED_PART_JSON: usize = r#"{"type":"sealed","data":""}"#.len();

/// The size of a sealed message's JSON form, exactly as [`NewMessage::json_len`] counts
/// it, without writing its sealed parts again: each part sealed here is
/// `{"type":"sealed","data":"..."}` around base64 (URL-safe, which JSON writes as it is);
/// the rest of the message is written with the parts left out. A part of any other form
/// is written to be counted. For messages from [`Sealing::new_message`] only.
pub(crate) fn sealed_json_len(m: &mut NewMessage) -> usize {
    let parts = std::mem::take(&mut m.parts);
    // `"parts":[]` is in there already; n parts add theirs and n - 1 commas.
    let mut size = m.json_len().saturating_add(parts.len().saturating_sub(1));
    for part in &parts {
        let len = match sealed_data(part) {
            Some(data) => SEALED_PART_JSON + data.len(),
            None => serde_json::to_vec(part).map_or(usize::MAX, |v| v.len()),
        };
        size = size.saturating_add(len);
    }
    m.parts = parts;
    size
}

/// An upper bound on [`sealed_json_len`] from string lengths alone, for a message from
/// [`Sealing::new_message`] without usage (the common case); `None` for any other. JSON
/// writes a byte of the id or role as at most 6 (`\u001f`) and the sealed values (base64)
/// as they are; the rest (keys, status, timestamps, a lease, a parent's seq) fits in the
/// fixed allowance.
pub(crate) fn sealed_json_bound(m: &NewMessage) -> Option<usize> {
    if m.usage.is_some() {
        return None;
    }
    let mut bound = 1024 + 6 * (m.id.as_str().len() + m.role.as_str().len());
    for part in &m.parts {
        bound += SEALED_PART_JSON + 1 + sealed_data(part)?.len();
    }
    match (m.metadata.len(), m.metadata.get(META_KEY)) {
        (0, _) => {}
        (1, Some(Value::String(sealed))) => bound += META_KEY.len() + 8 + sealed.len(),
        _ => return None,
    }
    Some(bound)
}

/// The base64 of a part in the form [`Sealing::new_message`] gives it.
fn sealed_data(part: &Part) -> Option<&str> {
    match part {
        Part::Unknown(Value::Object(o))
            if o.len() == 2 && o.get("type").and_then(Value::as_str) == Some(PART_TYPE) =>
        {
            o.get("data").and_then(Value::as_str)
        }
        _ => None,
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

/// Where a sealed value is, for the errors about it: written out only when one is made
/// (not for every value opened).
enum Location<'a> {
    /// A message's parts, metadata or failure reason.
    Message(&'a ConversationId, &'a MessageId),
    /// A conversation's title.
    Title(&'a ConversationId),
    /// An attachment record.
    Attachment(&'a ConversationId, &'a chatvault_core::FileId),
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Message(conv, id) => write!(f, "conversation {conv} message {id}"),
            Location::Title(conv) => write!(f, "conversation {conv} title"),
            Location::Attachment(conv, id) => write!(f, "conversation {conv} attachment {id}"),
        }
    }
}

/// Opens sealed values, asking the keyring for the key each header names.
pub(crate) struct Opener<'a> {
    pub(crate) keyring: &'a Keyring,
}

impl Opener<'_> {
    /// The plaintext of a sealed value (base64 text); `Ok(None)` when its key is no
    /// longer in the key store (shredded).
    async fn open(
        &self,
        text: &str,
        place: &[u8],
        location: &Location<'_>,
    ) -> Result<Option<Vec<u8>>> {
        let sealed = unb64(text, location)?;
        let header = Header::parse(&sealed, location)?;
        match self.keyring.for_reading(&header).await? {
            Some(keys) => open_value(&keys, header, place, &sealed, location).map(Some),
            None => Ok(None),
        }
    }

    /// [`open`](Self::open), a destroyed key being [`Error::Corrupt`] too.
    async fn must_open(
        &self,
        text: &str,
        place: &[u8],
        location: &Location<'_>,
    ) -> Result<Vec<u8>> {
        self.open(text, place, location)
            .await?
            .ok_or_else(|| shredded(location))
    }

    /// A stored message as it was written.
    pub(crate) async fn message(&self, conv: &ConversationId, mut m: Message) -> Result<Message> {
        let location = Location::Message(conv, &m.id);
        let n = (m.parts.len() as u64).to_be_bytes();
        let mut parts = Vec::with_capacity(m.parts.len());
        for (i, part) in m.parts.iter().enumerate() {
            let text = match part {
                Part::Unknown(v) if v.get("type").and_then(Value::as_str) == Some(PART_TYPE) => {
                    v.get("data").and_then(Value::as_str)
                }
                _ => None,
            }
            .ok_or_else(|| corrupt(location.to_string(), format!("part {i} is not sealed")))?;
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
                serde_json::from_slice(&json)
                    .map_err(|e| corrupt(location.to_string(), e.to_string()))?,
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

    async fn metadata(
        &self,
        place: &[u8],
        m: &Metadata,
        location: &Location<'_>,
    ) -> Result<Metadata> {
        if m.is_empty() {
            return Ok(Metadata::new());
        }
        let text = match (m.len(), m.get(META_KEY)) {
            (1, Some(Value::String(text))) => text,
            _ => return Err(corrupt(location.to_string(), "metadata is not sealed")),
        };
        let json = self.must_open(text, place, location).await?;
        serde_json::from_slice(&json).map_err(|e| corrupt(location.to_string(), e.to_string()))
    }

    async fn string(&self, place: &[u8], s: &str, location: &Location<'_>) -> Result<String> {
        let text = s
            .strip_prefix(STRING_PREFIX)
            .ok_or_else(|| corrupt(location.to_string(), "a string is not sealed"))?;
        let bytes = self.must_open(text, place, location).await?;
        String::from_utf8(bytes)
            .map_err(|_| corrupt(location.to_string(), "a sealed string is not UTF-8"))
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
        let location = Location::Title(conv);
        let text = title
            .strip_prefix(STRING_PREFIX)
            .ok_or_else(|| corrupt(location.to_string(), "the title is not sealed"))?;
        match self
            .open(text, &aad("title", &[conv.as_bytes()]), &location)
            .await?
        {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| corrupt(location.to_string(), "a sealed title is not UTF-8")),
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
        let file_id = file.id.clone();
        let location = Location::Attachment(conv, &file_id);
        let text = match (file.metadata.len(), file.metadata.get(META_KEY)) {
            (1, Some(Value::String(text))) => text,
            _ => {
                return Err(corrupt(
                    location.to_string(),
                    "the attachment record is not sealed",
                ));
            }
        };
        let json = match self.open(text, &file_aad(conv, &file), &location).await? {
            Some(json) => json,
            None if lenient => return Ok(file),
            None => return Err(shredded(&location)),
        };
        let secret: SealedFile = serde_json::from_slice(&json)
            .map_err(|e| corrupt(location.to_string(), e.to_string()))?;
        let mut file = file;
        file.filename = secret.filename;
        file.sha256 = secret.sha256;
        file.storage_key = secret
            .storage_key
            .parse()
            .map_err(|e: Error| corrupt(location.to_string(), e.to_string()))?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chatvault_core::Role;
    use chatvault_core::backend::Usage;

    use super::*;
    use crate::cipher::{Algorithm, DataKey};
    use crate::format::Owner;

    fn sealing(alg: Algorithm) -> Sealing {
        let keys = DerivedKeys::new(&DataKey::from_slice(&[7u8; 32]).unwrap()).unwrap();
        let header = Header {
            alg,
            key_ref: Owner::of(None).key_ref(),
            version: 3,
        };
        Sealing {
            header,
            keys: Arc::new(keys),
        }
    }

    fn message() -> NewMessage {
        let mut m = NewMessage::with_parts(
            Role::User,
            vec![
                Part::text("hello"),
                Part::tool_call("call_1", "f", json!({"a": 1})),
            ],
        );
        m.id = "m1".parse().unwrap();
        m.metadata.insert("k".into(), json!("v"));
        m
    }

    /// What earlier releases stored for these values (computed by the code at 17e4603, before
    /// sealing was streamlined): sealing must keep giving the same bytes, so that a retried append
    /// is recognised and nothing stored changes form.
    #[test]
    fn sealed_messages_keep_their_stored_bytes() {
        let expected = [
            (
                Algorithm::Aes256Gcm,
                [
                    "AQIPH5XdtnXvu1APoU-0xA8VAAAAA_7ilWNV1IbDcU_mMYOK0UpTOJEs-LBN9xThmUOEw6mbuapk7OoyzhZaKyt6Tg3Cko2-jV-ULFH7Spg",
                    "AQIPH5XdtnXvu1APoU-0xA8VAAAAA05uq-CSKa40tPyhC_N45SXunn8pHcqkEkrhhKOc0RMNdFLA-qTA6RjftEUI4TPcEIutiOZud3IxTExGpCCHUIO-Ib6AZGgCxA4nOEGPPbcr3QpTywPxtlnECW9PCQ",
                    "AQIPH5XdtnXvu1APoU-0xA8VAAAAAx42DqWwcUf2q4esM2-3kjpFTJnJLhtUwKtGIu-0vAKyo4cgzzU",
                    "cvc1:AQIPH5XdtnXvu1APoU-0xA8VAAAAA0bSd5gMlP5PWuwDUw80wyAN-UnnKVAOVz5D6VlID7u-aw",
                ],
            ),
            (
                Algorithm::XChaCha20Poly1305,
                [
                    "AQEPH5XdtnXvu1APoU-0xA8VAAAAA3eg3618dJ_6YhpyozYkBJHAMxch21ZcjyDUMLGxX5zIId23R1jh_0qF4lJiBfOlpmE05AybshdcfguRmPiQavPgnjmAi1s",
                    "AQEPH5XdtnXvu1APoU-0xA8VAAAAA8rHZ9RPq5YhMm8QehtsUJ6yOTi3mhKIDsltcM96DqE41wB8D-vAvxXvxRYHjzCeUSnB31XYrtHznUVKjH9TgEUttWjwsOdcBvFnZdeZ830s9teZTKQlulyIu_SZXiTYgg6e88mayaPEGg",
                    "AQEPH5XdtnXvu1APoU-0xA8VAAAAA3ZNAPU38-Sj95U98DoSQlbE93JA0LeXLqri7w-wdV2WyVsa-jVUvRnMJn-87kkCoG0",
                    "cvc1:AQEPH5XdtnXvu1APoU-0xA8VAAAAAwHt0UUDYUxcCxLwopXhXPthzXVAhESxvzB52k_ur_ST-T3JW6m0cx3_VLHFnQ",
                ],
            ),
        ];
        let conv: ConversationId = "c1".parse().unwrap();
        for (alg, [part0, part1, meta, title]) in expected {
            let sealing = sealing(alg);
            let mut m = message();
            let before = m.clone();
            let s = sealing.new_message(&conv, &mut m).unwrap();
            assert_eq!(m, before, "the clear message is left as it was");
            let data: Vec<&str> = s
                .parts
                .iter()
                .map(|p| match p {
                    Part::Unknown(v) => v["data"].as_str().unwrap(),
                    other => panic!("not sealed: {other:?}"),
                })
                .collect();
            assert_eq!(data, [part0, part1], "{alg:?}");
            assert_eq!(s.metadata[META_KEY].as_str(), Some(meta), "{alg:?}");
            assert_eq!(sealing.title(&conv, "Hello").unwrap(), title, "{alg:?}");
        }
    }

    #[test]
    fn sealed_json_len_is_json_len() {
        let conv: ConversationId = "c1".parse().unwrap();
        let sealing = sealing(Algorithm::Aes256Gcm);
        let mut several = message().with_usage(Usage::new("gpt-4o", 120, 18));
        several.parts.push(Part::text("x\u{1}\"\\é".repeat(300)));
        for mut m in [
            message(),
            several,
            NewMessage::with_parts(Role::User, vec![]),
        ] {
            let mut s = sealing.new_message(&conv, &mut m).unwrap();
            assert_eq!(sealed_json_len(&mut s), s.json_len());
            match sealed_json_bound(&s) {
                Some(bound) => assert!(bound >= s.json_len()),
                None => assert!(s.usage.is_some()),
            }
            // A part in another form is counted by writing it.
            s.parts.push(Part::text("\"quoted\""));
            assert_eq!(sealed_json_len(&mut s), s.json_len());
            assert_eq!(sealed_json_bound(&s), None);
        }
    }
}
