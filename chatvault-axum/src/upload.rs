//! Multipart uploads streamed to the files backend with bounded memory.
//!
//! The upload routes take the raw request body (so axum's `DefaultBodyLimit`, which only
//! buffering extractors apply, does not cut them off) and parse it with `multer`, whose
//! fields are streams: each file part is handed to the files backend as a
//! [`ByteStream`] while it arrives, counted on the way, and cut off with 413 when it
//! passes the limit. Text fields are read into memory up to a small limit of their own.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use chatvault_core::{ByteStream, Conversation, FileAttachment};
use futures_util::StreamExt;

use crate::error::ApiError;

/// The content type of a part that names none.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The request body as a multipart stream.
pub(crate) fn open(
    headers: &HeaderMap,
    body: Body,
) -> Result<multer::Multipart<'static>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("expected a multipart/form-data body"))?;
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::bad_request(format!("expected a multipart/form-data body: {e}")))?;
    Ok(multer::Multipart::new(body.into_data_stream(), boundary))
}

/// The next part, or `None` at the end of the form.
pub(crate) async fn next_field(
    multipart: &mut multer::Multipart<'static>,
) -> Result<Option<multer::Field<'static>>, ApiError> {
    multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))
}

/// Reads a text field whole, refusing more than `limit` bytes.
pub(crate) async fn read_text(
    mut field: multer::Field<'static>,
    name: &str,
    limit: usize,
) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?
    {
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

/// Streams a file part into `conversation` as a new attachment, refusing more than
/// `limit` bytes (413, nothing stored).
///
/// The filename is kept exactly as the part gives it; the content type is the part's
/// (`application/octet-stream` when it names none).
pub(crate) async fn attach(
    conversation: &mut Conversation,
    field: multer::Field<'static>,
    limit: u64,
) -> Result<FileAttachment, ApiError> {
    let filename = field
        .file_name()
        .ok_or_else(|| ApiError::bad_request("the file part has no filename"))?
        .to_owned();
    let content_type = field
        .content_type()
        .map_or_else(|| DEFAULT_CONTENT_TYPE.to_owned(), ToString::to_string);
    let over = Arc::new(AtomicBool::new(false));
    let stream = limited(field, limit, Arc::clone(&over));
    match conversation
        .attach_file_stream(&filename, stream, &content_type)
        .await
    {
        Ok(file) => Ok(file),
        Err(_) if over.load(Ordering::SeqCst) => Err(ApiError::too_large(format!(
            "the file {filename:?} is over the upload limit of {limit} bytes"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The part's bytes, failing (and setting `over`) once more than `limit` have passed.
fn limited(field: multer::Field<'static>, limit: u64, over: Arc<AtomicBool>) -> ByteStream {
    let mut seen: u64 = 0;
    field
        .map(move |chunk| {
            let chunk = chunk.map_err(io::Error::other)?;
            seen = seen.saturating_add(chunk.len() as u64);
            if seen > limit {
                over.store(true, Ordering::SeqCst);
                return Err(io::Error::other(format!(
                    "the upload is over the limit of {limit} bytes"
                )));
            }
            Ok(chunk)
        })
        .boxed()
}
