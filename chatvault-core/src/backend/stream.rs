//! Byte streams: what streaming uploads take and streaming downloads give, and helpers to
//! make, collect and map them.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};

use crate::error::Error;

/// A stream of bytes: what streaming uploads take and streaming downloads give.
///
/// Items are `std::io::Result<Bytes>`, so `tokio_util::io::ReaderStream` makes one from
/// any `AsyncRead`, and `tokio_util::io::StreamReader` turns one back into an `AsyncRead`.
/// A backend failure in the middle of a download arrives as an `io::Error` whose inner
/// error is a [`crate::Error`].
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// A [`ByteStream`] that yields `data` in one chunk.
pub fn bytes_stream(data: Bytes) -> ByteStream {
    stream::once(async move { Ok(data) }).boxed()
}

/// Reads a whole [`ByteStream`] into memory.
pub async fn collect_stream(mut stream: ByteStream) -> io::Result<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}

/// Turns an error met while reading a download stream back into a [`crate::Error`].
pub fn download_error(err: io::Error) -> Error {
    if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        match err.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(inner)) => *inner,
            Some(Err(other)) => Error::backend("files", other),
            None => Error::backend("files", "download stream failed"),
        }
    } else {
        Error::backend("files", err)
    }
}

/// Boxes a stream of `Bytes` results into a [`ByteStream`].
pub fn into_byte_stream<S>(stream: S) -> ByteStream
where
    S: futures_core::Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    stream.boxed()
}
