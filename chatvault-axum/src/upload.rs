//! Multipart uploads streamed to the files backend with bounded memory.
//!
//! The upload routes take the raw request body (so axum's `DefaultBodyLimit`, which only
//! buffering extractors apply, does not cut them off) and parse it with `multer`, whose
//! fields are streams: each file part is handed to the files backend as a
//! [`ByteStream`] while it arrives, counted on the way, and cut off with 413 when it
//! passes the limit. Text fields are read into memory up to a small limit of their own.
//!
//! A file part's stream does not end where the part's bytes end: it first reads the
//! headers of the part that follows (or the form's closing boundary) and lets the route
//! judge them. So an upload followed by a part the route refuses, or by a body cut
//! before its closing boundary, fails while its bytes are still streaming: the files
//! backend drops them and no attachment is recorded. What a route refuses only later
//! (another part's content) it must undo itself: see the routes.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use chatvault_core::{ByteStream, Conversation, FileAttachment};
use futures_util::StreamExt;

use crate::error::ApiError;

/// The content type of a part that names none.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// A multipart part.
pub(crate) type Field = multer::Field<'static>;

/// What a route says of the part that follows a file part (`None`: the end of the form),
/// before the file is recorded: `Err` refuses the whole upload.
pub(crate) type FollowCheck = Box<dyn FnOnce(Option<&str>) -> Result<(), ApiError> + Send>;

/// A multipart form, read a part at a time.
pub(crate) struct Form {
    /// The parser; taken by a file part's stream while it is uploaded.
    multipart: Option<multer::Multipart<'static>>,
    /// The part a file part's stream read after itself.
    peeked: Option<Field>,
    /// The closing boundary was read.
    ended: bool,
}

impl Form {
    /// The request body as a multipart form.
    pub(crate) fn open(headers: &HeaderMap, body: Body) -> Result<Form, ApiError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::bad_request("expected a multipart/form-data body"))?;
        let boundary = multer::parse_boundary(content_type).map_err(|e| {
            ApiError::bad_request(format!("expected a multipart/form-data body: {e}"))
        })?;
        Ok(Form {
            multipart: Some(multer::Multipart::new(body.into_data_stream(), boundary)),
            peeked: None,
            ended: false,
        })
    }

    /// The next part, or `None` after the closing boundary. A body cut before its closing
    /// boundary is a 400.
    pub(crate) async fn next(&mut self) -> Result<Option<Field>, ApiError> {
        if let Some(field) = self.peeked.take() {
            return Ok(Some(field));
        }
        if self.ended {
            return Ok(None);
        }
        let multipart = self.multipart.as_mut().ok_or_else(lost_parser)?;
        let next = multipart.next_field().await.map_err(malformed)?;
        self.ended = next.is_none();
        Ok(next)
    }

    /// Streams the file part `field` into `conversation` as a new attachment, refusing
    /// more than `limit` bytes (413).
    ///
    /// The attachment is recorded only once `check` accepted the part after it (read
    /// while the bytes are still streaming); on any error nothing is stored. The filename
    /// is kept exactly as the part gives it; the content type is the part's
    /// (`application/octet-stream` when it names none).
    pub(crate) async fn attach(
        &mut self,
        conversation: &mut Conversation,
        field: Field,
        limit: u64,
        check: FollowCheck,
    ) -> Result<FileAttachment, ApiError> {
        let filename = field
            .file_name()
            .ok_or_else(|| ApiError::bad_request("the file part has no filename"))?
            .to_owned();
        let content_type = field
            .content_type()
            .map_or_else(|| DEFAULT_CONTENT_TYPE.to_owned(), ToString::to_string);
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let stream = file_stream(FilePart {
            field,
            multipart: self.multipart.take().ok_or_else(lost_parser)?,
            seen: 0,
            limit,
            filename: filename.clone(),
            check,
            outcome: Arc::clone(&outcome),
        });
        let result = conversation
            .attach_file_stream(&filename, stream, &content_type)
            .await;
        let Outcome { error, next } = std::mem::take(&mut *lock(&outcome));
        if let Some((multipart, next)) = next {
            self.multipart = Some(multipart);
            self.ended = next.is_none();
            self.peeked = next;
        }
        match (result, error) {
            (Ok(file), None) if self.multipart.is_some() => Ok(file),
            // The files backend did not read the part to its end, so what follows it was
            // never checked (no first-party backend does this): take the file back.
            (Ok(file), None) => {
                discard(conversation, std::slice::from_ref(&file)).await;
                Err(ApiError::from(chatvault_core::Error::backend(
                    "chatvault-axum",
                    "the files backend stopped reading the upload before its end",
                )))
            }
            // The backend stored the bytes of a stream that failed: take them back.
            (Ok(file), Some(error)) => {
                discard(conversation, std::slice::from_ref(&file)).await;
                Err(error)
            }
            (Err(_), Some(error)) => Err(error),
            (Err(error), None) => Err(error.into()),
        }
    }
}

/// Removes attachments of a refused request, best effort: a failure is logged (the
/// caller answers with the error that made it refuse).
pub(crate) async fn discard(conversation: &mut Conversation, files: &[FileAttachment]) {
    for file in files {
        if let Err(error) = conversation.delete_file(&file.id).await {
            tracing::warn!(
                conversation = %conversation.id(), file = %file.id, %error,
                "could not remove the attachment of a refused upload"
            );
        }
    }
}

/// Reads a text field whole, refusing more than `limit` bytes.
pub(crate) async fn read_text(
    mut field: Field,
    name: &str,
    limit: usize,
) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::too_large(format!(
                "the form field {name:?} is over its limit of {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf)
        .map_err(|_| ApiError::bad_request(format!("the form field {name:?} is not UTF-8")))
}

fn malformed(e: multer::Error) -> ApiError {
    ApiError::bad_request(format!("malformed multipart body: {e}"))
}

/// The parser went away with a file part's stream that failed; nothing reads on then.
fn lost_parser() -> ApiError {
    ApiError::bad_request("malformed multipart body: the form cannot be read past a failed part")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a file part's stream ended.
#[derive(Default)]
struct Outcome {
    /// Why it failed, as the answer to give.
    error: Option<ApiError>,
    /// The parser and the part after the file (`None`: the closing boundary), when the
    /// check accepted it.
    next: Option<(multer::Multipart<'static>, Option<Field>)>,
}

/// A file part being streamed, and what its stream checks.
struct FilePart {
    field: Field,
    multipart: multer::Multipart<'static>,
    /// Bytes passed so far.
    seen: u64,
    limit: u64,
    filename: String,
    check: FollowCheck,
    /// Where the stream says how it ended.
    outcome: Arc<Mutex<Outcome>>,
}

/// An item of a file part's stream, and the state after it.
type Step = (io::Result<Bytes>, Option<FilePart>);

/// The part's bytes, failing once more than its limit have passed; then the part after
/// it is read and checked before the stream ends.
fn file_stream(part: FilePart) -> ByteStream {
    futures_util::stream::unfold(Some(part), |state| async move {
        let mut part = state?;
        match part.field.chunk().await {
            Ok(Some(chunk)) => {
                part.seen = part.seen.saturating_add(chunk.len() as u64);
                if part.seen > part.limit {
                    let error = ApiError::too_large(format!(
                        "the file {:?} is over the upload limit of {} bytes",
                        part.filename, part.limit
                    ));
                    return Some(fail(&part.outcome, error));
                }
                Some((Ok(chunk), Some(part)))
            }
            Ok(None) => part.finish().await,
            Err(e) => Some(fail(&part.outcome, malformed(e))),
        }
    })
    .boxed()
}

impl FilePart {
    /// Reads the part after this one and checks it: the stream ends when the check
    /// accepts it, and fails otherwise.
    async fn finish(self) -> Option<Step> {
        let FilePart {
            field,
            mut multipart,
            check,
            outcome,
            ..
        } = self;
        // The parser reads on only once the part it gave is gone.
        drop(field);
        let next = match multipart.next_field().await {
            Ok(next) => next,
            Err(e) => return Some(fail(&outcome, malformed(e))),
        };
        if let Err(error) = check(next.as_ref().and_then(|f| f.name())) {
            return Some(fail(&outcome, error));
        }
        lock(&outcome).next = Some((multipart, next));
        None
    }
}

/// Fails a file part's stream with `error` as the answer.
fn fail(outcome: &Mutex<Outcome>, error: ApiError) -> Step {
    let message = error.problem().detail;
    lock(outcome).error = Some(error);
    (Err(io::Error::other(message)), None)
}
