//! The redaction route: a message's content replaced by a tombstone that keeps its place,
//! and the attachments only it referenced deleted (`chatvault_core::Conversation::redact`;
//! see chatvault-core's `docs/forgetting.md`).

use axum::Json;
use axum::extract::State;
use chatvault_core::{ConversationId, MessageId};

use super::{ApiResult, ApiState, Caller, JsonBody, NoIdentity, Path};
use crate::error::Problem;
use crate::views::{MessageView, RedactMessage, RedactedView};

/// Redacts a message (on any branch): its parts and metadata are replaced by a tombstone
/// holding only the redaction (`reason`, time) under the metadata key
/// `chatvault_redacted`; its id, seq, parent, role, times and usage stay, so the
/// numbering and the branches do not move. The attachments only this message referenced
/// are deleted, bytes and record. Redacting a tombstone again replaces its reason.
#[utoipa::path(
    post, path = "/conversations/{id}/messages/{message_id}/redact", tag = "messages",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "The id of the message to redact"),
    ),
    request_body = RedactMessage,
    responses(
        (status = 200, description = "The tombstone, and the attachments deleted with it", body = RedactedView),
        (status = 400, description = "A blank reason, one over 1024 bytes, or a bad body", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The message is a reply still being written (stop it first), or another writer changed it meanwhile; nothing was written", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn redact_message(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
    JsonBody(body): JsonBody<RedactMessage>,
) -> ApiResult<Json<RedactedView>> {
    let mut conversation = state.owned(&user, &id).await?;
    let redacted = conversation.redact(&message_id, &body.reason).await?;
    let versions = conversation.version_of(redacted.message.seq);
    Ok(Json(RedactedView {
        message: MessageView::with_versions(redacted.message, versions),
        files_deleted: redacted.files_deleted.into_iter().map(|f| f.id).collect(),
    }))
}
