//! Following a message as server-sent events while it streams.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chatvault_core::{Conversation, ConversationId, Message};
use futures_util::Stream;

use super::messages::message_at;
use super::{ApiResult, ApiState, Caller, NoIdentity, Path, Query};
use crate::error::Problem;
use crate::views::{EventsQuery, MessageView};

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
