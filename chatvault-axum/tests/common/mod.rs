//! A real HTTP server on 127.0.0.1 over the router, and a backend that fails on demand.
// Test support code: its unwraps are test assertions.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderName;
use chatvault_axum::{ChatVaultApi, HeaderIdentity};
use chatvault_core::backend::{
    ConversationHead, FilesCapabilities, MessagesCapabilities, ObjectMeta, async_trait,
};
use chatvault_core::{
    Appended, ByteStream, ChatVault, ContentType, ConversationId, ConversationPatch,
    ConversationRecord, ConversationSummary, Error, FileAttachment, FileId, FilesBackend,
    ListOptions, Message, MessageId, MessageRange, MessageUpdate, MessageUpdated, MessagesBackend,
    NewMessage, Page, Result, SearchHit, SearchOptions, StorageKey, UserId,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use serde_json::Value;

/// Where the tests mount the router: any prefix must work.
pub const PREFIX: &str = "/api/v1";

/// Makes the error a faulty backend answers with.
pub type Fault = fn() -> Error;

/// MemoryMessages that fails its next call (or its next call of one method) with an
/// injected error, and can hide its search capability.
#[derive(Debug)]
pub struct Faulty {
    inner: MemoryMessages,
    /// The fault, and the method it waits for (`None`: any).
    fault: Mutex<Option<(Option<&'static str>, Fault)>>,
    search: bool,
    faults_raised: Mutex<u32>,
    /// The trait methods called so far, in order.
    calls: Mutex<Vec<&'static str>>,
}

impl Faulty {
    pub fn new(search: bool) -> Self {
        Faulty {
            inner: MemoryMessages::new(),
            fault: Mutex::new(None),
            search,
            faults_raised: Mutex::new(0),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The next backend call fails with `fault()`.
    pub fn fail_next(&self, fault: Fault) {
        *self.fault.lock().unwrap() = Some((None, fault));
    }

    /// The next call of the trait method `method` fails with `fault()`.
    pub fn fail_next_call_of(&self, method: &'static str, fault: Fault) {
        *self.fault.lock().unwrap() = Some((Some(method), fault));
    }

    /// How many injected faults were raised so far.
    pub fn faults_raised(&self) -> u32 {
        *self.faults_raised.lock().unwrap()
    }

    /// The trait methods called since the last call of this, in order.
    #[allow(dead_code)] // not every test binary counts calls
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    fn check(&self, method: &'static str) -> Result<()> {
        self.calls.lock().unwrap().push(method);
        let mut armed = self.fault.lock().unwrap();
        match *armed {
            Some((target, fault)) if target.is_none_or(|t| t == method) => {
                *armed = None;
                *self.faults_raised.lock().unwrap() += 1;
                Err(fault())
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl MessagesBackend for Faulty {
    fn capabilities(&self) -> MessagesCapabilities {
        self.inner.capabilities().with_search(self.search)
    }
    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        self.check("create")?;
        self.inner.create(record).await
    }
    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        self.check("head")?;
        self.inner.head(id).await
    }
    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        m: Vec<NewMessage>,
    ) -> Result<Appended> {
        self.check("append_messages")?;
        self.inner.append_messages_as(owner, id, m).await
    }
    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        self.check("update_message")?;
        self.inner
            .update_message(id, message_id, expected_revision, update)
            .await
    }
    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        self.check("message")?;
        self.inner.message(id, message_id).await
    }
    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        self.check("messages")?;
        self.inner.messages(id, range).await
    }
    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        self.check("list_conversations")?;
        self.inner.list_conversations(user_id, options).await
    }
    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        self.check("update")?;
        self.inner.update(id, patch).await
    }
    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        self.check("add_file")?;
        self.inner.add_file(id, file).await
    }
    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        self.check("remove_file")?;
        self.inner.remove_file(id, file_id).await
    }
    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        self.check("begin_delete")?;
        self.inner.begin_delete(id).await
    }
    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        self.check("delete")?;
        self.inner.delete(id).await
    }
    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        self.check("search")?;
        self.inner.search(user_id, query, options).await
    }
}

/// MemoryFiles that also has signed URLs: `https://files.invalid/...` like S3, or
/// `file:///...` like LocalFiles.
#[derive(Debug)]
pub struct SignedFiles(pub Arc<MemoryFiles>, pub &'static str);

#[async_trait]
impl FilesBackend for SignedFiles {
    fn capabilities(&self) -> FilesCapabilities {
        self.0.capabilities().with_signed_urls(true)
    }
    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        self.0.upload_stream(key, data, content_type).await
    }
    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        self.0.download_stream(key).await
    }
    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        self.0.head(key).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.0.delete(key).await
    }
    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        if self.0.head(key).await?.is_none() {
            return Err(Error::NotFound {
                kind: "file",
                id: key.to_string(),
            });
        }
        let base = match self.1 {
            "file" => "file:///var/lib/store",
            _ => "https://files.invalid",
        };
        Ok(format!(
            "{base}/{key}?expires_in={}&name={}",
            expires_in.as_secs(),
            download_filename.unwrap_or("")
        ))
    }
}

/// A running server.
pub struct Server {
    pub base: String,
    pub origin: String,
    pub client: reqwest::Client,
    pub vault: ChatVault,
    pub messages: Arc<Faulty>,
    pub files: Arc<MemoryFiles>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Settings of a test server.
pub struct Options {
    pub max_upload_bytes: u64,
    pub search: bool,
    /// The files backend has signed URLs of this scheme (`https` or `file`).
    pub signed_urls: Option<&'static str>,
    /// `redirect_downloads(true)`.
    pub redirect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_upload_bytes: 10 * 1024 * 1024,
            search: true,
            signed_urls: None,
            redirect: false,
        }
    }
}

pub async fn start() -> Server {
    start_with(Options::default()).await
}

pub async fn start_with(options: Options) -> Server {
    let messages = Arc::new(Faulty::new(options.search));
    let files = Arc::new(MemoryFiles::new());
    let files_backend: Arc<dyn FilesBackend> = match options.signed_urls {
        Some(scheme) => Arc::new(SignedFiles(files.clone(), scheme)),
        None => files.clone(),
    };
    let vault = ChatVault::from_arcs(messages.clone(), files_backend);
    let api = ChatVaultApi::new(vault.clone())
        .redirect_downloads(options.redirect)
        .identity(HeaderIdentity::new(HeaderName::from_static("x-user")))
        .max_upload_bytes(options.max_upload_bytes)
        .poll_interval(Duration::from_millis(20))
        .into_router()
        .expect("router");
    let app = axum::Router::new().nest(PREFIX, api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    Server {
        base: format!("http://{addr}{PREFIX}"),
        origin: format!("http://{addr}"),
        client: reqwest::Client::new(),
        vault,
        messages,
        files,
        task,
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, user: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).header("x-user", user)
    }

    pub fn post(&self, user: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).header("x-user", user)
    }

    pub fn patch(&self, user: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.patch(self.url(path)).header("x-user", user)
    }

    pub fn delete(&self, user: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(self.url(path)).header("x-user", user)
    }

    /// Creates a conversation for `user` and returns its JSON.
    pub async fn create(&self, user: &str, title: &str) -> Value {
        let res = self
            .post(user, "/conversations")
            .json(&serde_json::json!({ "title": title }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    }

    /// Adds a text message and returns it.
    pub async fn say(&self, user: &str, id: &str, role: &str, text: &str) -> Value {
        let res = self
            .post(user, &format!("/conversations/{id}/messages"))
            .json(&serde_json::json!({ "role": role, "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        res.json().await.unwrap()
    }

    /// Uploads a file and returns the response.
    pub async fn upload(
        &self,
        user: &str,
        id: &str,
        filename: &str,
        content_type: &str,
        data: Vec<u8>,
    ) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(data)
            .file_name(filename.to_owned())
            .mime_str(content_type)
            .unwrap();
        let form = reqwest::multipart::Form::new().part("file", part);
        self.post(user, &format!("/conversations/{id}/files"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts `res` is a problem document with this status; returns it.
pub async fn problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status, "status of {}", res.url());
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "content type of {}",
        res.url()
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("problem:"));
    assert!(!body["title"].as_str().unwrap().is_empty());
    assert!(!body["detail"].as_str().unwrap().is_empty());
    body
}
