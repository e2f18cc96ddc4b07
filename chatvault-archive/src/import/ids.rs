//! Deterministic ids: the same source ids give the same ChatVault ids, so importing an
//! export twice finds what the first import stored.

use chatvault_core::{ConversationId, FileId, MessageId};
use sha2::{Digest, Sha256};

use super::Format;

/// A UUID-shaped string (version 8, RFC 9562 variant) from the SHA-256 of `parts`, each
/// length-prefixed so that no two lists of parts hash alike.
fn uuid_of(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"chatvault-import\0");
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&hasher.finalize()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The ChatVault id of the source conversation `source_id` of `format`.
pub(crate) fn conversation(format: Format, source_id: &str) -> ConversationId {
    ConversationId::parse(uuid_of(&[format.name(), source_id]))
        .unwrap_or_else(|_| ConversationId::new())
}

/// The ChatVault id of the source message `node` of a conversation.
pub(crate) fn message(format: Format, conversation: &str, node: &str) -> MessageId {
    MessageId::parse(uuid_of(&[format.name(), conversation, "message", node]))
        .unwrap_or_else(|_| MessageId::new())
}

/// The ChatVault id of the attachment `pointer` of a conversation.
pub(crate) fn file(format: Format, conversation: &str, pointer: &str) -> FileId {
    FileId::parse(uuid_of(&[format.name(), conversation, "file", pointer]))
        .unwrap_or_else(|_| FileId::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = message(Format::ChatGpt, "c", "n1");
        assert_eq!(a, message(Format::ChatGpt, "c", "n1"));
        assert_ne!(a, message(Format::ChatGpt, "c", "n2"));
        assert_ne!(a, message(Format::Claude, "c", "n1"));
        assert_ne!(
            conversation(Format::ChatGpt, "ab"),
            conversation(Format::ChatGpt, "a")
        );
        assert_eq!(a.as_str().len(), 36);
        assert_eq!(&a.as_str()[14..15], "8");
    }
}
