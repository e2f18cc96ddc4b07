//! `POST /chat`: one chat turn (conversation, files and message) in one multipart call.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chatvault_core::{
    Conversation, ConversationId, FileAttachment, NewMessage, Part, Role, UserId, keys,
};

use super::{ApiResult, ApiState, Caller, NoIdentity};
use crate::error::{ApiError, Problem};
use crate::upload;
use crate::views::{ChatForm, ChatResult, FileView, MessageView};

/// The largest `conversation_id` or `title` form field.
const MAX_SHORT_FIELD: usize = keys::MAX_TITLE_LEN;

/// One chat turn: creates the conversation unless `conversation_id` names one of the
/// caller's, uploads the `file` parts (streamed), and adds the user's `message` with a
/// file part for each upload. Text fields must come before the files.
///
/// Any answer but 201 leaves nothing of the turn stored: no new conversation, no file,
/// no message (except a 504, whose message may have been stored).
#[utoipa::path(
    post, path = "/chat", tag = "chat",
    request_body(content = ChatForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The turn was stored", body = ChatResult),
        (status = 400, description = "Bad form", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "conversation_id names no conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A file over the upload limit", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn chat(
    State(state): State<ApiState>,
    Caller(user): Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ChatResult>)> {
    let mut form = upload::Form::open(&headers, body)?;
    let mut turn = Turn::default();
    match take_turn(&state, &user, &mut form, &mut turn).await {
        Ok(result) => Ok((StatusCode::CREATED, Json(result))),
        Err(error) => {
            turn.undo(&state).await;
            Err(error)
        }
    }
}

/// What a chat turn has read and stored so far.
#[derive(Default)]
struct Turn {
    conversation_id: Option<ConversationId>,
    title: Option<String>,
    text: Option<String>,
    conversation: Option<Conversation>,
    /// The conversation was created by this turn.
    created: bool,
    files: Vec<FileAttachment>,
    /// The message may have been stored (its outcome is unknown): its files stay.
    keep: bool,
}

impl Turn {
    /// The turn's conversation: the caller's one named by `conversation_id`, or a new
    /// one, made when first needed.
    async fn conversation(
        &mut self,
        state: &ApiState,
        user: &UserId,
    ) -> ApiResult<&mut Conversation> {
        let conversation = match (self.conversation.take(), &self.conversation_id) {
            (Some(c), _) => c,
            (None, Some(id)) => state.owned(user, id).await?,
            (None, None) => {
                let mut builder = state.0.vault.new_conversation().user(user.clone());
                if let Some(title) = self.title.take() {
                    builder = builder.title(title);
                }
                let c = builder.create().await?;
                self.created = true;
                c
            }
        };
        Ok(self.conversation.insert(conversation))
    }

    /// Removes what the turn stored (best effort: a failure is logged).
    async fn undo(self, state: &ApiState) {
        let Some(mut conversation) = self.conversation else {
            return;
        };
        if self.created {
            if let Err(error) = state.0.vault.delete_conversation(conversation.id()).await {
                tracing::warn!(
                    conversation = %conversation.id(), %error,
                    "could not delete the conversation of a refused chat turn"
                );
            }
        } else if !self.keep {
            upload::discard(&mut conversation, &self.files).await;
        }
    }
}

/// Reads the form of a chat turn and stores it, keeping in `turn` what it stored.
async fn take_turn(
    state: &ApiState,
    user: &UserId,
    form: &mut upload::Form,
    turn: &mut Turn,
) -> ApiResult<ChatResult> {
    while let Some(field) = form.next().await? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "conversation_id" | "title" if turn.conversation.is_some() => {
                return Err(chat_field_error(Some(&name), true));
            }
            "conversation_id" => {
                let raw = upload::read_text(field, &name, MAX_SHORT_FIELD).await?;
                turn.conversation_id = Some(raw.parse()?);
            }
            "title" => turn.title = Some(upload::read_text(field, &name, MAX_SHORT_FIELD).await?),
            "message" => {
                let limit = chatvault_core::MAX_MESSAGE_BYTES;
                turn.text = Some(upload::read_text(field, &name, limit).await?);
            }
            "file" => {
                // The file is recorded only once the part after it is one that may follow.
                let has_text = turn.text.is_some();
                let check: upload::FollowCheck = Box::new(move |next| match next {
                    Some("file" | "message") => Ok(()),
                    None if has_text => Ok(()),
                    other => Err(chat_field_error(other, true)),
                });
                let limit = state.upload_limit();
                let conversation = turn.conversation(state, user).await?;
                let file = form.attach(conversation, field, limit, check).await?;
                turn.files.push(file);
            }
            other => return Err(chat_field_error(Some(other), false)),
        }
    }
    let text = turn
        .text
        .take()
        .ok_or_else(|| chat_field_error(None, false))?;
    let mut parts = vec![Part::text(text)];
    for file in &turn.files {
        let mut part = Part::attachment(file.id.clone(), Some(file.content_type.clone()));
        if let Part::File(f) = &mut part {
            f.filename = Some(file.filename.clone());
        }
        parts.push(part);
    }
    let conversation = turn.conversation(state, user).await?;
    let message = match conversation
        .add(NewMessage::with_parts(Role::User, parts))
        .await
    {
        Ok(message) => message,
        Err(error) => {
            turn.keep = error.kind() == chatvault_core::ErrorKind::OutcomeUnknown;
            return Err(error.into());
        }
    };
    let versions = conversation.version_of(message.seq);
    Ok(ChatResult {
        conversation: conversation.record().clone().into(),
        message: MessageView::with_versions(message, versions),
        files: FileView::all(&turn.files),
        created: turn.created,
    })
}

/// 400 for a part of a chat form that does not belong where it is (`None`: the form
/// ended without a message).
fn chat_field_error(name: Option<&str>, after_files: bool) -> ApiError {
    match name {
        None => ApiError::bad_request("the form has no \"message\" field"),
        Some(name @ ("conversation_id" | "title")) if after_files => ApiError::bad_request(
            format!("the form field {name:?} must come before the files"),
        ),
        Some(other) => ApiError::bad_request(format!(
            "unexpected form field {other:?}; expected conversation_id, title, message, file"
        )),
    }
}
