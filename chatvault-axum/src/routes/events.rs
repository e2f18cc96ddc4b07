//! Following a reply as server-sent events while it streams: the whole message at each
//! revision (`.../{seq}/events`), or its text from an offset, resumable
//! (`.../{message_id}/stream`); and stopping it (`.../{message_id}/stop`).

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chatvault_core::{Conversation, ConversationId, FollowOptions, Message, MessageId, ReplyEvent};
use futures_util::{Stream, StreamExt};

use super::messages::message_at;
use super::{ApiResult, ApiState, Caller, NoIdentity, Path, Query};
use crate::error::{ApiError, Problem};
use crate::views::{DeltaView, EventsQuery, MessageView, StreamQuery};

/// Follows a message as server-sent events: a `message` event (the message as JSON) each
/// time its revision grows, until it is no longer pending or streaming; then the stream
/// ends. A reply whose writer died ends as `interrupted` once its lease runs out. An
/// `error` event (a problem document) ends the stream if the message cannot be read.
#[utoipa::path(
    get, path = "/conversations/{id}/messages/{seq}/events", tag = "messages",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("seq" = u64, Path, description = "The message's number, from 1"),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "text/event-stream of `message` events", content_type = "text/event-stream", body = String),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn follow_message(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, seq)): Path<(ConversationId, u64)>,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let conversation = state.owned(&user, &id).await?;
    // The first read answers 404 as a plain response, before the stream starts.
    let first = message_at(&conversation, seq).await?;
    let interval = state.0.poll_interval;
    let start = Follow {
        conversation,
        seq,
        sent_revision: query.after_revision.unwrap_or(0),
        pending: Some(first),
        done: false,
    };
    let stream = futures_util::stream::unfold(start, move |mut f| async move {
        loop {
            if f.done {
                return None;
            }
            let message = match f.pending.take() {
                Some(m) => m,
                None => {
                    tokio::time::sleep(interval).await;
                    match message_at(&f.conversation, f.seq).await {
                        Ok(m) => m,
                        Err(e) => {
                            f.done = true;
                            let event = Event::default()
                                .event("error")
                                .json_data(e.problem())
                                .unwrap_or_else(|_| Event::default().event("error"));
                            return Some((Ok(event), f));
                        }
                    }
                }
            };
            let versions = f.conversation.version_of(message.seq);
            let view = MessageView::with_versions(message, versions);
            let finished = !view.status.is_in_progress();
            if view.revision > f.sent_revision || finished {
                f.sent_revision = view.revision;
                f.done = finished;
                let event = Event::default()
                    .event("message")
                    .id(view.revision.to_string())
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().event("message"));
                return Some((Ok(event), f));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The state of an events stream.
struct Follow {
    conversation: Conversation,
    seq: u64,
    sent_revision: u64,
    pending: Option<Message>,
    done: bool,
}

/// Follows a reply's text from an offset, as server-sent events: a `delta` event for the
/// text stored after the offset, one for each checkpoint's new text, then one `end` event
/// (the message as stored, with its final `status`), then the stream ends. Each event's
/// `id` is the offset after it, in bytes (UTF-8) of the reply's text: a client that loses
/// the connection resumes from the last `id` it got (`Last-Event-ID`, which a browser's
/// `EventSource` sends by itself, or `?offset=`) with no text missed or repeated.
///
/// 204 when nothing is streaming: the reply has ended and there is no text after the
/// offset (or no offset was given): read the message instead. 204 also tells an
/// `EventSource` to stop reconnecting. A reply written in this server's process reaches
/// its readers as soon as it is checkpointed; one written elsewhere, within the router's
/// `poll_interval`.
#[utoipa::path(
    get, path = "/conversations/{id}/messages/{message_id}/stream", tag = "messages",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "The reply's message id"),
        StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The offset to resume from (the `id` of the last event received); takes precedence over `offset`"),
    ),
    responses(
        (status = 200, description = "text/event-stream of `delta` events (data: DeltaView), then one `end` event (data: MessageView)", content_type = "text/event-stream", body = String),
        (status = 204, description = "Nothing is streaming: the reply has ended and there is no text after the offset"),
        (status = 400, description = "The offset is past the reply's text, or inside a character", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn stream_reply(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let offset = resume_offset(&headers, &query)?;
    let conversation = state.owned(&user, &id).await?;
    let message = conversation
        .message(&message_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message not found: {message_id}")))?;
    let text = message.content();
    let at = offset.unwrap_or(0);
    if !message.status.is_in_progress() && (offset.is_none() || at == text.len() as u64) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if !usize::try_from(at).is_ok_and(|at| text.is_char_boundary(at)) {
        return Err(ApiError::bad_request(format!(
            "offset {at} is not a character boundary of the reply's {} bytes of text",
            text.len()
        )));
    }
    let versions = conversation.version_of(message.seq);
    let options = FollowOptions::default().poll_interval(state.0.poll_interval);
    let events = conversation
        .follow_reply(&message_id, at, options)
        .into_stream()
        .map(move |event| Ok::<_, Infallible>(sse_event(event, versions)));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Where a stream starts: `Last-Event-ID`, else `?offset=`; `None` when neither is given.
fn resume_offset(headers: &HeaderMap, query: &StreamQuery) -> ApiResult<Option<u64>> {
    match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request("Last-Event-ID must be an offset: a whole number of bytes")
            }),
        None => Ok(query.offset),
    }
}

/// The server-sent event of a follower's event (or of its error, which ends the stream).
fn sse_event(event: chatvault_core::Result<ReplyEvent>, versions: (usize, usize)) -> Event {
    let built = match event {
        Ok(ReplyEvent::Delta { offset, text }) => {
            let next = offset + text.len() as u64;
            Event::default()
                .event("delta")
                .id(next.to_string())
                .json_data(DeltaView { offset, text })
        }
        Ok(ReplyEvent::End(message)) => {
            let end = message.content().len() as u64;
            Event::default()
                .event("end")
                .id(end.to_string())
                .json_data(MessageView::with_versions(*message, versions))
        }
        // An event a later core release adds: nothing this route sends.
        Ok(_) => Ok(Event::default().comment("")),
        Err(e) => Event::default()
            .event("error")
            .json_data(ApiError::from(e).problem()),
    };
    built.unwrap_or_else(|_| Event::default().event("error"))
}

/// Stops a reply while it streams: it is stored as `stopped`, keeping the text stored at
/// that moment (what its readers have seen); its writer stores nothing more and ends at
/// its next checkpoint, and the readers of its stream get the `end` event. A reply that
/// has already ended is answered as it is, unchanged: stopping twice is harmless.
#[utoipa::path(
    post, path = "/conversations/{id}/messages/{message_id}/stop", tag = "messages",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "The reply's message id"),
    ),
    responses(
        (status = 200, description = "The reply after the stop: `stopped`, or the status it had already ended with", body = MessageView),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn stop_reply(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
) -> ApiResult<Json<MessageView>> {
    let mut conversation = state.owned(&user, &id).await?;
    let message = conversation.stop_reply(&message_id).await?;
    let versions = conversation.version_of(message.seq);
    Ok(Json(MessageView::with_versions(message, versions)))
}
