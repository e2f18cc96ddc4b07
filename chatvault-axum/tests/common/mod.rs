//! A real HTTP server on 127.0.0.1 over the router, and a backend that fails on demand.
// Test support code: its unwraps are test assertions.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderName;
use chatvault_axum::{ChatVaultApi, HeaderIdentity};
use chatvault_core::backend::{FilesCapabilities, MessagesCapabilities, async_trait};
use chatvault_core::conformance::{Call, FilesHook, Forward, MessagesHook};
use chatvault_core::{ChatVault, Error, FilesBackend, MessagesBackend, Result, StorageKey};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use serde_json::Value;

/// Where the tests mount the router: any prefix must work.
pub const PREFIX: &str = "/api/v1";

/// Makes the error a faulty backend answers with.
pub type Fault = fn() -> Error;

/// Over MemoryMessages: fails the next call (or the next call of one method) with an
/// injected error, and can hide the search capability.
#[derive(Debug)]
pub struct Faulty {
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

impl MessagesHook<MemoryMessages> for Faulty {
    fn capabilities(&self, inner: &MemoryMessages) -> MessagesCapabilities {
        inner.capabilities().with_search(self.search)
    }
    fn before(&self, call: &Call<'_>) -> Result<()> {
        // The tests name the owner-checked append by the vault's name for it.
        match call.method {
            "append_messages_as" => self.check("append_messages"),
            method => self.check(method),
        }
    }
}

/// MemoryFiles that also has signed URLs: `https://files.invalid/...` like S3, or
/// `file:///...` like LocalFiles (the scheme).
#[derive(Debug)]
pub struct SignedFiles(pub &'static str);

#[async_trait]
impl FilesHook<Arc<MemoryFiles>> for SignedFiles {
    fn capabilities(&self, inner: &Arc<MemoryFiles>) -> FilesCapabilities {
        inner.capabilities().with_signed_urls(true)
    }
    async fn signed_url(
        &self,
        inner: &Arc<MemoryFiles>,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        if inner.head(key).await?.is_none() {
            return Err(Error::NotFound {
                kind: "file",
                id: key.to_string(),
            });
        }
        let base = match self.0 {
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
    pub messages: Arc<Forward<MemoryMessages, Faulty>>,
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
    let messages = Arc::new(Forward::new(
        MemoryMessages::new(),
        Faulty::new(options.search),
    ));
    let files = Arc::new(MemoryFiles::new());
    let files_backend: Arc<dyn FilesBackend> = match options.signed_urls {
        Some(scheme) => Arc::new(Forward::new(files.clone(), SignedFiles(scheme))),
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
