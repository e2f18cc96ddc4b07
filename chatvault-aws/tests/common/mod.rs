//! Shared helpers of the AWS tests (and the benchmark): emulator endpoints from the
//! environment, a fresh table or bucket per test, a request counter, a tiny HTTP client.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use chatvault_aws::{DynamoMessages, S3Files};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How to point the tests at the emulators.
pub(crate) const HOW_TO_RUN: &str = "\
the chatvault-aws tests run against local AWS emulators only, never real AWS. Run them with
    ./scripts/test.sh -p chatvault-aws
or start the emulators and export their endpoints first:
    scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\"
    cargo test -p chatvault-aws
(with Docker: AWS_ENDPOINT_URL=http://localhost:4566 for LocalStack, and
AWS_ENDPOINT_URL_DYNAMODB=http://localhost:8000 for DynamoDB Local)";

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// `None` if the endpoint of the service whose variable is `service_env` is configured,
/// else what is missing.
pub(crate) fn missing_endpoint(service_env: &str) -> Option<String> {
    if env_set(service_env) || env_set("AWS_ENDPOINT_URL") {
        None
    } else {
        Some(format!(
            "neither {service_env} nor AWS_ENDPOINT_URL is set: {HOW_TO_RUN}"
        ))
    }
}

/// Fails the test when the service's endpoint is not configured.
///
/// Without the endpoints, the build script compiles every AWS test as ignored (with the
/// reason), so plain `cargo test` reports them as not run. A test only gets here without
/// an endpoint when it was built to run: under `CHATVAULT_REQUIRE_AWS=1` (the test
/// command), or as a test binary built with the endpoints and run without them. Either
/// way it must fail, never pass without having run.
pub(crate) fn require_endpoint(service_env: &str) {
    if let Some(message) = missing_endpoint(service_env) {
        if env_set("CHATVAULT_REQUIRE_AWS") {
            panic!("CHATVAULT_REQUIRE_AWS=1 requires the AWS tests to run, but {message}");
        }
        panic!("this test was built to run against the AWS emulators, but {message}");
    }
}

/// The SDK configuration from the environment; test credentials and `us-east-1` when the
/// environment has none (the emulators accept any).
pub(crate) async fn sdk_config() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if !env_set("AWS_REGION") && !env_set("AWS_DEFAULT_REGION") {
        loader = loader.region(Region::new("us-east-1"));
    }
    if !env_set("AWS_ACCESS_KEY_ID") {
        loader = loader.credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "chatvault-tests",
        ));
    }
    loader.load().await
}

/// A fresh lowercase name, valid for buckets and tables: `cv-{what}-{16 hex digits}`.
pub(crate) fn unique_name(what: &str) -> String {
    format!("cv-{what}-{:016x}", fastrand::u64(..))
}

/// A DynamoDB backend on a fresh table of its own.
pub(crate) async fn dynamo() -> DynamoMessages {
    require_endpoint("AWS_ENDPOINT_URL_DYNAMODB");
    let messages = DynamoMessages::from_sdk_config(&sdk_config().await, unique_name("table"));
    messages.create_table().await.expect("create_table");
    messages
}

/// A DynamoDB backend on a fresh table that seals full tails inside the appends, in a
/// transaction (`background_seals(false)`): for tests of that path.
pub(crate) async fn dynamo_sealing_inline() -> DynamoMessages {
    require_endpoint("AWS_ENDPOINT_URL_DYNAMODB");
    let messages = DynamoMessages::builder(unique_name("table"))
        .sdk_config(&sdk_config().await)
        .background_seals(false)
        .build()
        .await
        .expect("build");
    messages.create_table().await.expect("create_table");
    messages
}

/// A DynamoDB backend on a fresh table, whose client counts the HTTP requests it sends.
pub(crate) async fn dynamo_counted() -> (DynamoMessages, RequestCounter) {
    require_endpoint("AWS_ENDPOINT_URL_DYNAMODB");
    let counter = RequestCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .interceptor(counter.clone())
        .build();
    let messages = DynamoMessages::from_client(
        aws_sdk_dynamodb::Client::from_conf(config),
        unique_name("table"),
    );
    messages.create_table().await.expect("create_table");
    (messages, counter)
}

/// Deletes a test's table.
pub(crate) async fn drop_table(messages: &DynamoMessages) {
    messages
        .client()
        .delete_table()
        .table_name(messages.table_name())
        .send()
        .await
        .expect("delete_table");
}

/// An S3 backend on a fresh bucket of its own.
pub(crate) async fn s3() -> S3Files {
    require_endpoint("AWS_ENDPOINT_URL_S3");
    let files = S3Files::from_sdk_config(&sdk_config().await, unique_name("bucket"));
    files
        .create_bucket_if_missing()
        .await
        .expect("create bucket");
    files
}

/// Empties a test's bucket (objects and unfinished multipart uploads), then deletes it.
pub(crate) async fn drop_bucket(files: &S3Files) {
    let client = files.client();
    let bucket = files.bucket();
    let uploads = client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list uploads");
    for u in uploads.uploads() {
        client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(u.key().unwrap_or_default())
            .upload_id(u.upload_id().unwrap_or_default())
            .send()
            .await
            .expect("abort");
    }
    loop {
        let listed = client
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .expect("list objects");
        if listed.contents().is_empty() {
            break;
        }
        for object in listed.contents() {
            client
                .delete_object()
                .bucket(bucket)
                .key(object.key().unwrap_or_default())
                .send()
                .await
                .expect("delete object");
        }
    }
    client
        .delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("delete bucket");
}

/// An SDK interceptor counting the HTTP requests a client sends (retries included).
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestCounter(Arc<AtomicUsize>);

impl RequestCounter {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub(crate) fn reset(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The answer of [`http_get`].
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of this name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 GET over a TCP socket: what a browser does with a presigned URL.
pub(crate) async fn http_get(url: &str) -> HttpResponse {
    let rest = url
        .strip_prefix("http://")
        .expect("an http:// URL (the emulators speak plain HTTP)");
    let split = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = if path.is_empty() { "/" } else { path };
    let mut socket = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await.expect("read response");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8(raw[..head_end].to_vec()).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[head_end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&data[..line_end]).expect("chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .expect("hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A files backend for vaults that never attach anything.
#[derive(Debug)]
pub(crate) struct NoFiles;

#[chatvault_core::backend::async_trait]
impl chatvault_core::FilesBackend for NoFiles {
    fn capabilities(&self) -> chatvault_core::backend::FilesCapabilities {
        chatvault_core::backend::FilesCapabilities::basic()
    }
    async fn upload_stream(
        &self,
        _: &chatvault_core::StorageKey,
        _: chatvault_core::ByteStream,
        _: &chatvault_core::ContentType,
    ) -> chatvault_core::Result<u64> {
        Err(chatvault_core::Error::not_supported("none", "upload"))
    }
    async fn download_stream(
        &self,
        _: &chatvault_core::StorageKey,
    ) -> chatvault_core::Result<Option<chatvault_core::ByteStream>> {
        Ok(None)
    }
    async fn head(
        &self,
        _: &chatvault_core::StorageKey,
    ) -> chatvault_core::Result<Option<chatvault_core::backend::ObjectMeta>> {
        Ok(None)
    }
    async fn delete(&self, _: &chatvault_core::StorageKey) -> chatvault_core::Result<bool> {
        Ok(false)
    }
    async fn signed_url(
        &self,
        _: &chatvault_core::StorageKey,
        _: std::time::Duration,
        _: Option<&str>,
    ) -> chatvault_core::Result<String> {
        Err(chatvault_core::Error::not_supported("none", "signed_url"))
    }
}

/// Turns the responses of the first `n` write requests of one kind
/// (`TransactWriteItems`, [`puts`](Self::puts) `PutItem`, [`updates`](Self::updates)
/// `UpdateItem`) into HTTP 500s, after DynamoDB has carried them out: the "it committed,
/// but the answer was lost" case. [`lost`](Self::lost) counts the answers it dropped, so
/// that a test can prove that its fault happened.
#[derive(Clone, Debug)]
pub(crate) struct LoseWriteAnswers {
    pub(crate) remaining: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    lost: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    transaction: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The end of the `x-amz-target` header of the requests it loses answers of.
    target: &'static str,
}

impl LoseWriteAnswers {
    /// Loses the answers of the first `n` `TransactWriteItems`.
    pub(crate) fn new(n: usize) -> Self {
        Self::of(n, ".TransactWriteItems")
    }

    /// Loses the answers of the first `n` `PutItem`s (appends to the tail).
    pub(crate) fn puts(n: usize) -> Self {
        Self::of(n, ".PutItem")
    }

    /// Loses the answers of the first `n` `UpdateItem`s (updates of a message in the
    /// tail).
    pub(crate) fn updates(n: usize) -> Self {
        Self::of(n, ".UpdateItem")
    }

    fn of(n: usize, target: &'static str) -> Self {
        LoseWriteAnswers {
            remaining: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(n)),
            lost: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            transaction: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            target,
        }
    }

    /// How many answers it has dropped so far.
    pub(crate) fn lost(&self) -> usize {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl aws_sdk_dynamodb::config::Intercept for LoseWriteAnswers {
    fn name(&self) -> &'static str {
        "LoseWriteAnswers"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context.request().headers().get("x-amz-target");
        self.transaction.store(
            target.is_some_and(|t| t.ends_with(self.target)),
            std::sync::atomic::Ordering::SeqCst,
        );
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.transaction.load(SeqCst)
            && self
                .remaining
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            *context.response_mut().status_mut() = 500.try_into()?;
            self.lost.fetch_add(1, SeqCst);
        }
        Ok(())
    }
}

/// A `DynamoMessages` on `table` whose client loses answers as `lost` says, with
/// `attempts` SDK attempts per request.
pub(crate) async fn with_lost_answers(
    table: &chatvault_aws::DynamoMessages,
    lost: &LoseWriteAnswers,
    attempts: u32,
) -> chatvault_aws::DynamoMessages {
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .interceptor(lost.clone())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts))
        .build();
    // Seals stay inside the appends: a copy written after an append returns would
    // meet the lost answers too.
    chatvault_aws::DynamoMessages::builder(table.table_name())
        .client(aws_sdk_dynamodb::Client::from_conf(config))
        .background_seals(false)
        .build()
        .await
        .expect("build")
}

/// A content type for tests.
pub(crate) fn ct(text: &str) -> chatvault_core::ContentType {
    chatvault_core::ContentType::parse(text).expect("a valid content type")
}

/// A user id for tests.
pub(crate) fn uid(text: &str) -> chatvault_core::UserId {
    chatvault_core::UserId::parse(text).expect("a valid user id")
}

/// A storage key for tests.
pub(crate) fn skey(text: &str) -> chatvault_core::StorageKey {
    chatvault_core::StorageKey::parse(text).expect("a valid storage key")
}

/// A conversation's record, attachments and every message (following the backend's
/// pages), or `None`.
pub(crate) async fn whole(
    backend: &DynamoMessages,
    id: &chatvault_core::ConversationId,
) -> Option<chatvault_core::backend::StoredConversation> {
    use chatvault_core::MessagesBackend;
    let head = backend.head(id).await.expect("head")?;
    let mut messages = Vec::new();
    let mut range = chatvault_core::MessageRange::all();
    loop {
        let page = backend.messages(id, &range).await.expect("messages");
        messages.extend(page.items);
        match page.next_cursor {
            Some(c) => range = range.continue_from(&c).expect("cursor"),
            None => {
                let mut whole = chatvault_core::backend::StoredConversation::new(head.record);
                whole.messages = messages;
                whole.files = head.files;
                return Some(whole);
            }
        }
    }
}

/// A conversation's attachments (none when it is gone).
pub(crate) async fn files(
    backend: &DynamoMessages,
    id: &chatvault_core::ConversationId,
) -> Vec<chatvault_core::FileAttachment> {
    use chatvault_core::MessagesBackend;
    backend
        .head(id)
        .await
        .expect("head")
        .map(|h| h.files)
        .unwrap_or_default()
}

/// Conversation `id`'s conversation item as stored (consistent `GetItem`).
pub(crate) async fn conversation_item(
    backend: &DynamoMessages,
    id: &chatvault_core::ConversationId,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    backend
        .client()
        .get_item()
        .table_name(backend.table_name())
        .key("pk", AttributeValue::S(id.to_string()))
        .key("sk", AttributeValue::S("#conversation".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get_item")
        .item
        .expect("the conversation item")
}

/// What one conversation's partition holds, read from the raw items.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Messages in the conversation item's tail.
    pub(crate) tail: usize,
    /// The conversation item's `pending`: how many of the tail's first messages are
    /// being sealed.
    pub(crate) pending: usize,
    /// Chunk items (sealed runs of messages) before the tail.
    pub(crate) chunks: usize,
    /// Messages in those chunk items.
    pub(crate) chunked: usize,
    /// Chunk items of tail messages: the copy of a pending seal.
    pub(crate) copies: usize,
    /// Messages in those.
    pub(crate) copied: usize,
    /// One-message items written by 0.1.
    pub(crate) legacy: usize,
    /// Id markers.
    pub(crate) markers: usize,
    /// Every item, the conversation item included.
    pub(crate) items: usize,
}

/// Every message of conversation `id`, in pages of 1,000, following cursors.
pub(crate) async fn read_all(
    backend: &DynamoMessages,
    id: &chatvault_core::ConversationId,
) -> Vec<chatvault_core::Message> {
    use chatvault_core::MessagesBackend;
    let mut out = Vec::new();
    let mut range = chatvault_core::MessageRange::all().limit(1000);
    loop {
        let page = backend.messages(id, &range).await.expect("messages");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => range = range.continue_from(&c).expect("cursor"),
            None => return out,
        }
    }
}

/// A chunk item's JSON array of messages: `messages` (written before 0.3), or
/// `messages_lz4` decompressed; `None` for an item that is not a chunk.
pub(crate) fn chunk_json(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Option<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    match (item.get("messages"), item.get("messages_lz4")) {
        (Some(AttributeValue::S(json)), _) => Some(json.clone()),
        (None, Some(AttributeValue::B(blob))) => {
            let bytes = lz4_flex::decompress_size_prepended(blob.as_ref()).expect("LZ4 block");
            Some(String::from_utf8(bytes).expect("UTF-8 JSON"))
        }
        _ => None,
    }
}

/// The [`Layout`] of conversation `id`, from a consistent `Query` of its partition.
pub(crate) async fn layout(
    backend: &DynamoMessages,
    id: &chatvault_core::ConversationId,
) -> Layout {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut layout = Layout::default();
    // The tail's first `seq` (the conversation item sorts before every chunk).
    let mut tail_first = u64::MAX;
    for item in partition(backend, id).await {
        layout.items += 1;
        let Some(AttributeValue::S(sk)) = item.get("sk") else {
            panic!("an item without a sort key: {item:?}");
        };
        if sk == "#conversation" {
            if let Some(AttributeValue::L(tail)) = item.get("tail") {
                layout.tail = tail.len();
                if let Some(AttributeValue::S(first)) = tail.first() {
                    let first: serde_json::Value =
                        serde_json::from_str(first).expect("a tail entry is JSON");
                    tail_first = first["seq"].as_u64().expect("a tail entry's seq");
                }
            }
            if let Some(AttributeValue::N(pending)) = item.get("pending") {
                layout.pending = pending.parse().expect("pending is a count");
            }
        } else if sk.starts_with("mid#") {
            layout.markers += 1;
        } else if let Some(messages) = chunk_json(&item) {
            let run: Vec<serde_json::Value> =
                serde_json::from_str(&messages).expect("a chunk holds a JSON array");
            let last = run.last().and_then(|m| m["seq"].as_u64()).expect("seq");
            if last < tail_first {
                layout.chunks += 1;
                layout.chunked += run.len();
            } else {
                layout.copies += 1;
                layout.copied += run.len();
            }
        } else {
            layout.legacy += 1;
        }
    }
    layout
}

/// Every item of conversation `id`'s partition, in key order, from consistent `Query`
/// pages.
pub(crate) async fn partition(
    backend: &DynamoMessages,
    id: &chatvault_core::ConversationId,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = backend
            .client()
            .query()
            .table_name(backend.table_name())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("partition query");
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) => start = Some(key),
            None => return items,
        }
    }
}
