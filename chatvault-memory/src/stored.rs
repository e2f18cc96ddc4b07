//! A message as the log holds it: the usual kind (one text part, as added, never
//! updated) in under half the space of a [`Message`], any other whole.

use std::borrow::Cow;

use chatvault_core::backend::{Message, MessageId, MessageStatus, Part, Role};
use chrono::{DateTime, Utc};

/// A stored message. Its `seq` is where it is held (index `i`: seq `i + 1`), which only
/// [`Stored::Whole`] keeps for itself.
///
/// [`Stored::Text`] is 96 bytes plus its id and its text, against a `Message`'s 248 plus
/// its id, its text and a list of parts: most of an append's new memory, and so of the
/// page faults an append pays, at any length.
#[derive(Debug)]
pub(crate) enum Stored {
    /// A message of one text part, complete, at revision 1, without metadata, usage,
    /// failure or lease: everything else is what [`Message::new`] sets.
    Text {
        id: MessageId,
        role: Role,
        parent: Option<u64>,
        created_at: DateTime<Utc>,
        text: Box<str>,
    },
    /// Any other message.
    Whole(Box<Message>),
}

impl Stored {
    /// `message` (of seq `seq`), in the smaller form when it fits.
    pub(crate) fn of(message: &Message, seq: u64) -> Stored {
        let text = match message.parts.as_slice() {
            [Part::Text { text }] => Some(text),
            _ => None,
        };
        match text {
            Some(text)
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
                    id: message.id.clone(),
                    role: message.role.clone(),
                    parent: message.parent,
                    created_at: message.created_at,
                    text: text.as_str().into(),
                }
            }
            _ => Stored::Whole(Box::new(message.clone())),
        }
    }

    /// The message's id.
    pub(crate) fn id(&self) -> &MessageId {
        match self {
            Stored::Text { id, .. } => id,
            Stored::Whole(message) => &message.id,
        }
    }

    /// The message, held at seq `seq`.
    pub(crate) fn to_message(&self, seq: u64) -> Message {
        match self {
            Stored::Text {
                id,
                role,
                parent,
                created_at,
                text,
            } => Message::new(
                id.clone(),
                seq,
                *parent,
                role.clone(),
                vec![Part::text(text.as_ref())],
                *created_at,
            ),
            Stored::Whole(message) => Message::clone(message),
        }
    }

    /// [`Message::content`], without copying the text of a [`Stored::Text`].
    pub(crate) fn content(&self) -> Cow<'_, str> {
        match self {
            Stored::Text { text, .. } => Cow::Borrowed(text),
            Stored::Whole(message) => Cow::Owned(message.content()),
        }
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
        for (m, small) in variants {
            let stored = Stored::of(&m, 3);
            assert_eq!(matches!(stored, Stored::Text { .. }), small, "{m:?}");
            assert_eq!(stored.to_message(m.seq), m);
            assert_eq!(stored.id(), &m.id);
            assert_eq!(stored.content(), m.content());
        }
    }

    #[test]
    fn the_text_form_is_smaller() {
        assert!(size_of::<Stored>() <= 96, "{}", size_of::<Stored>());
        assert!(size_of::<Message>() > 2 * size_of::<Stored>());
    }
}
