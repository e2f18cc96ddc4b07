//! Helpers the message checks share.

use crate::backend::MessagesBackend;
use crate::conformance::util::{exact_metadata, ok, parse};
use crate::digest::sha256_hex;
use crate::ids::{ConversationId, FileId, UserId};
use crate::keys;
use crate::model::NewMessage;
use crate::model::{ConversationRecord, FileAttachment, Role, now};

/// 193 arbitrary bytes (ending in 0x00 0xFF 0xFE) in base64, as providers send reasoning
/// signatures: `+`, `/` and `=` padding included.
pub(super) const SIGNATURE: &str = "pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU81lSvTfrXFCegrrP+6SMvivIhH57kkcWxC+y1Vjv8Hm+TQn7LyP4pVeXNjkbcjtS3wnZNKlpNdncG+F2GkAJK1r2jQBvpyMvMyTX2zR9hImrhUziuGjQATTO6DSRqwEyBsbryPjv57vX3nytJNK+H9VILablLDZguhbtVtnKocmN6zXRm/AD//g==";

pub(super) fn user_msg(text: impl Into<String>) -> NewMessage {
    NewMessage::new(Role::User, text)
}

pub(super) async fn head_record(
    backend: &dyn MessagesBackend,
    id: &ConversationId,
) -> ConversationRecord {
    match ok(backend.head(id).await, "head") {
        Some(head) => head.record,
        None => panic!("head: conversation {id} is missing"),
    }
}

pub(super) fn attachment(
    user: Option<&UserId>,
    conversation: &ConversationId,
    name: &str,
) -> FileAttachment {
    let id = FileId::new();
    FileAttachment {
        storage_key: ok(
            keys::storage_key(user, conversation, &id, name),
            "storage key",
        ),
        id,
        filename: name.into(),
        content_type: parse("application/pdf"),
        size: 10,
        sha256: sha256_hex(name.as_bytes()),
        uploaded_at: now(),
        metadata: exact_metadata(),
    }
}

/// Checks (as the vault would) that a message the suite sends is one the core accepts.
#[track_caller]
pub(super) fn accepted(message: &NewMessage, limit: usize) {
    if let Err(e) = message.validate() {
        panic!("the suite built a message the core refuses: {e}");
    }
    assert!(
        message.json_len() <= limit,
        "the suite built a message of {} bytes, over the backend's limit {limit}",
        message.json_len()
    );
}
