//! A message as the log holds it: the usual kind (one text part, as added, never
//! updated) in about a third of the space of a [`Message`], any other whole.

use std::borrow::Cow;

use chatvault_core::backend::{Message, MessageId, MessageStatus, Part, Role};
use chrono::{DateTime, Utc};

/// A stored message. Its `seq` is where it is held (index `i`: seq `i + 1`), which only
/// [`Stored::Whole`] keeps for itself.
///
/// [`Stored::Text`] is 72 bytes, its id and text being in the log's [`Texts`], against a
/// `Message`'s 248 plus its id, its text and a list of parts, each allocated on its own:
/// most of an append's new memory and allocations, and so of the page faults an append
/// pays, at any length.
#[derive(Debug)]
pub(crate) enum Stored {
    /// A message of one text part (with its id, at most [`Texts::LONGEST`] bytes),
    /// complete, at revision 1, without metadata, usage, failure or lease: everything
    /// else is what [`Message::new`] sets.
    Text {
        role: Role,
        parent: Option<u64>,
        created_at: DateTime<Utc>,
        /// The id then the text.
        id_and_text: TextAt,
        /// The id's length (ids are at most 128 bytes).
        id_len: u8,
    },
    /// Any other message.
    Whole(Box<Message>),
}

impl Stored {
    /// `message` (of seq `seq`), in the smaller form when it fits, its text copied into
    /// `texts`.
    pub(crate) fn of(message: &Message, seq: u64, texts: &mut Texts) -> Stored {
        let id = message.id.as_str();
        let text = match message.parts.as_slice() {
            [Part::Text { text }] if id.len() + text.len() <= Texts::LONGEST => Some(text),
            _ => None,
        };
        match (text, u8::try_from(id.len())) {
            (Some(text), Ok(id_len))
                if message.seq == seq
                    && message.status == MessageStatus::Complete
                    && message.updated_at.is_none()
                    && message.revision == 1
                    && message.metadata.is_empty()
                    && message.usage.is_none()
                    && message.failure.is_none()
                    && message.lease_expires_at.is_none() =>
            {
                Stored::Text {
                    role: message.role.clone(),
                    parent: message.parent,
                    created_at: message.created_at,
                    id_and_text: texts.push(id, text),
                    id_len,
                }
            }
            _ => Stored::Whole(Box::new(message.clone())),
        }
    }

    /// The message's id (`None`, like the two below, only when `texts` is not the one
    /// it was stored with).
    pub(crate) fn id<'a>(&'a self, texts: &'a Texts) -> Option<&'a str> {
        match self {
            Stored::Text { .. } => Some(self.split(texts)?.0),
            Stored::Whole(message) => Some(message.id.as_str()),
        }
    }

    /// A [`Stored::Text`]'s id and text.
    fn split<'a>(&self, texts: &'a Texts) -> Option<(&'a str, &'a str)> {
        match self {
            Stored::Text {
                id_and_text,
                id_len,
                ..
            } => {
                let all = texts.get(id_and_text)?;
                let id_len = usize::from(*id_len);
                Some((all.get(..id_len)?, all.get(id_len..)?))
            }
            Stored::Whole(_) => None,
        }
    }

    /// The message, held at seq `seq`.
    pub(crate) fn to_message(&self, seq: u64, texts: &Texts) -> Option<Message> {
        Some(match self {
            Stored::Text {
                role,
                parent,
                created_at,
                ..
            } => {
                let (id, text) = self.split(texts)?;
                Message::new(
                    // Checked when it was stored, checked again: cheap next to a read.
                    MessageId::parse(id).ok()?,
                    seq,
                    *parent,
                    role.clone(),
                    vec![Part::text(text)],
                    *created_at,
                )
            }
            Stored::Whole(message) => Message::clone(message),
        })
    }

    /// Overwrites a [`Stored::Text`]'s id and text in `texts` with zero bytes, for a
    /// message being replaced: an update (a redaction among them) leaves nothing of the
    /// old text readable in memory.
    pub(crate) fn wipe(&self, texts: &mut Texts) {
        if let Stored::Text { id_and_text, .. } = self {
            texts.wipe(id_and_text);
        }
    }

    /// [`Message::content`], without copying the text of a [`Stored::Text`].
    pub(crate) fn content<'a>(&'a self, texts: &'a Texts) -> Cow<'a, str> {
        match self {
            Stored::Text { .. } => Cow::Borrowed(self.split(texts).map_or("", |(_, text)| text)),
            Stored::Whole(message) => Cow::Owned(message.content()),
        }
    }
}

/// Where a text is in [`Texts`].
#[derive(Debug)]
pub(crate) struct TextAt {
    chunk: u32,
    start: u32,
    len: u32,
}

/// The texts of a log's [`Stored::Text`] messages, one after the other in chunks of up
/// to 64 KiB (the first 256 bytes, each next one twice the last): no allocation of its
/// own per message, and no unused space but the end of a chunk. A text is never
/// removed: one whose message is replaced (an update) stays until the log is dropped.
#[derive(Debug, Default)]
pub(crate) struct Texts {
    chunks: Vec<String>,
}

impl Texts {
    /// The longest text held here, in bytes: a quarter of the largest chunk.
    pub(crate) const LONGEST: usize = Self::LARGEST / 4;
    /// The first chunk's size.
    const FIRST: usize = 256;
    /// The largest chunk's size.
    const LARGEST: usize = 64 << 10;

    /// Copies `id` then `text` (together at most [`Texts::LONGEST`] bytes) in, side by
    /// side.
    fn push(&mut self, id: &str, text: &str) -> TextAt {
        let len = id.len() + text.len();
        let room = self.chunks.last().map(|c| c.capacity() - c.len());
        if room.is_none_or(|room| room < len) {
            let size = self
                .chunks
                .last()
                .map_or(Self::FIRST, |c| (c.capacity() * 2).min(Self::LARGEST));
            self.chunks.push(String::with_capacity(size.max(len)));
        }
        let chunk = self.chunks.len() - 1;
        let start = self.chunks[chunk].len();
        self.chunks[chunk].push_str(id);
        self.chunks[chunk].push_str(text);
        // A chunk's index and offsets fit: there are fewer than 2^32 chunks of at
        // most 64 KiB.
        TextAt {
            chunk: chunk as u32,
            start: start as u32,
            len: len as u32,
        }
    }

    /// Overwrites the text at `at` with as many zero bytes (its place and every other
    /// text's stay as they are).
    fn wipe(&mut self, at: &TextAt) {
        let start = at.start as usize;
        let end = start + at.len as usize;
        if let Some(chunk) = self.chunks.get_mut(at.chunk as usize)
            && chunk.is_char_boundary(start)
            && end <= chunk.len()
            && chunk.is_char_boundary(end)
        {
            chunk.replace_range(start..end, &"\0".repeat(end - start));
        }
    }

    /// The text at `at`.
    fn get(&self, at: &TextAt) -> Option<&str> {
        let start = at.start as usize;
        self.chunks
            .get(at.chunk as usize)?
            .get(start..start + at.len as usize)
    }
}

#[cfg(test)]
mod tests {
    use chatvault_core::{Metadata, NewMessage, Usage};

    use super::*;

    fn message(seq: u64) -> Message {
        let mut m = Message::new(
            MessageId::new(),
            seq,
            seq.checked_sub(1).filter(|p| *p > 0),
            Role::User,
            vec![Part::text(format!("message {seq}"))],
            chrono::Utc::now(),
        );
        m.role = Role::from("critic");
        m
    }

    #[test]
    fn every_message_comes_back_as_it_was() {
        let plain = message(3);
        let mut variants: Vec<(Message, bool)> = vec![(plain.clone(), true)];
        let mut change = |f: &dyn Fn(&mut Message)| {
            let mut m = plain.clone();
            f(&mut m);
            variants.push((m, false));
        };
        change(&|m| m.seq = 4);
        change(&|m| m.parts.push(Part::text("more")));
        change(&|m| m.parts.clear());
        change(&|m| m.parts = NewMessage::with_parts(Role::Tool, Vec::new()).parts);
        change(&|m| m.status = MessageStatus::Streaming);
        change(&|m| m.updated_at = Some(chrono::Utc::now()));
        change(&|m| m.revision = 2);
        change(&|m| {
            let mut metadata = Metadata::new();
            metadata.insert("k".into(), "v".into());
            m.metadata = metadata;
        });
        change(&|m| m.usage = Some(Usage::new("model", 1, 2)));
        change(&|m| m.failure = Some("why".into()));
        change(&|m| m.lease_expires_at = Some(chrono::Utc::now()));
        change(&|m| m.parts = vec![Part::attachment("f1".parse().unwrap(), None)]);
        change(&|m| m.parts = vec![Part::text("é".repeat(Texts::LONGEST / 2 + 1))]);
        let mut longest = plain.clone();
        longest.parts = vec![Part::text("a".repeat(Texts::LONGEST - 36))];
        variants.push((longest, true));
        let mut too_long = plain.clone();
        too_long.parts = vec![Part::text("a".repeat(Texts::LONGEST - 35))];
        variants.push((too_long, false));
        let mut texts = Texts::default();
        for (m, small) in variants {
            let stored = Stored::of(&m, 3, &mut texts);
            assert_eq!(matches!(stored, Stored::Text { .. }), small, "{m:?}");
            assert_eq!(stored.to_message(m.seq, &texts), Some(m.clone()));
            assert_eq!(stored.id(&texts), Some(m.id.as_str()));
            assert_eq!(stored.content(&texts), m.content());
        }
    }

    #[test]
    fn texts_are_held_in_growing_chunks() {
        let mut texts = Texts::default();
        let all: Vec<String> = (0..5_000)
            .map(|i| format!("text {i} {}", "é".repeat(i % 50)))
            .collect();
        let at: Vec<TextAt> = all.iter().map(|t| texts.push("id", t)).collect();
        for (text, at) in all.iter().zip(&at) {
            assert_eq!(texts.get(at), Some(format!("id{text}").as_str()));
        }
        let sizes: Vec<usize> = texts.chunks.iter().map(String::capacity).collect();
        assert_eq!(sizes[..3], [256, 512, 1_024]);
        assert!(sizes.iter().all(|s| *s <= Texts::LARGEST));
        assert_eq!(sizes.last(), Some(&Texts::LARGEST));
        assert_eq!(texts.push("", "").len, 0);
        let longest = "b".repeat(Texts::LONGEST - 1);
        assert_eq!(texts.push("a", &longest).len as usize, Texts::LONGEST);
        assert_eq!(
            texts.get(&TextAt {
                chunk: 999,
                start: 0,
                len: 1
            }),
            None
        );
    }

    #[test]
    fn a_wiped_text_is_gone_and_its_neighbours_stay() {
        let mut texts = Texts::default();
        let before = texts.push("id1", "secret é");
        let wiped = Stored::of(&message(1), 1, &mut texts);
        let after = texts.push("id3", "kept");
        let Stored::Text { id_and_text, .. } = &wiped else {
            panic!("expected the text form");
        };
        let len = id_and_text.len as usize;
        wiped.wipe(&mut texts);
        assert_eq!(texts.get(id_and_text), Some("\0".repeat(len).as_str()));
        assert!(texts.chunks.iter().all(|c| !c.contains("message 1")));
        assert_eq!(texts.get(&before), Some("id1secret é"));
        assert_eq!(texts.get(&after), Some("id3kept"));
    }

    #[test]
    fn the_text_form_is_smaller() {
        assert!(size_of::<Stored>() <= 72, "{}", size_of::<Stored>());
        assert!(size_of::<Message>() > 2 * size_of::<Stored>());
    }
}
