//! What the browser tests share: the browser, the example's server, seed data, and a
//! DevTools protocol session that clicks and types as a person would.

// Test support code: its unwraps are test assertions.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The browser binary, or why there is none.
pub fn chromium() -> Result<PathBuf, String> {
    // CHROMIUM is what `eval "$(scripts/browser.sh env)"` sets.
    for var in ["CHATVAULT_CHROMIUM", "CHROMIUM"] {
        if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(format!("{var}={} is not a file", path.display()))
            };
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("no chromium in PATH (install Debian's `chromium`, or set CHATVAULT_CHROMIUM)".into())
}

/// The browser; fails the test, saying why, when there is none.
///
/// Without a browser at build time the build script compiles the tests as ignored (with
/// the reason). A test only gets here without one when it was built to run
/// (`CHATVAULT_REQUIRE_BROWSER=1`, the test command's setting, or a browser that has gone
/// since the build) or is run with `--ignored`: it must fail, never pass without having
/// run.
pub fn browser(test: &str) -> PathBuf {
    chromium().unwrap_or_else(|why| {
        if std::env::var("CHATVAULT_REQUIRE_BROWSER").is_ok_and(|v| v.trim() == "1") {
            panic!(
                "{test}: CHATVAULT_REQUIRE_BROWSER=1 requires the browser tests to run, but {why}"
            );
        }
        panic!("{test} needs headless Chromium, but {why}: run scripts/browser.sh install");
    })
}

/// The web example's own binary, running on a free port.
pub struct WebServer {
    child: Child,
    pub base: String,
}

impl WebServer {
    /// The example with its data (LocalMessages + LocalFiles) under `data`.
    pub fn start(data: &std::path::Path) -> Self {
        Self::start_with(data, &[])
    }

    /// The example with its data under `data` and these environment variables set (the
    /// OpenAI ones of the test's own environment removed).
    pub fn start_with(data: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_web-example"));
        command
            .env("CHATVAULT_ADDR", "127.0.0.1:0")
            .env("CHATVAULT_DATA", data)
            .env_remove("OPENAI_BASE_URL")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_MODEL")
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // Keep reading what it prints, so it never writes into a closed pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            while stdout.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {
                rest.clear();
            }
        });
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        WebServer { child, base }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seeds conversations through the API: alice's trip (2 messages, 1 file), alice's
/// archived chat, bob's secret. Returns the trip's id.
pub async fn seed(base: &str) -> String {
    let client = reqwest::Client::new();
    let create = |user: &'static str, title: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/conversations");
        async move {
            let res = client
                .post(url)
                .header("x-demo-user", user)
                .json(&json!({ "title": title }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let say = |user: &'static str, id: String, role: &'static str, text: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/conversations/{id}/messages");
        async move {
            let res = client
                .post(url)
                .header("x-demo-user", user)
                .json(&json!({ "role": role, "text": text }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }
    };
    let old = create("alice", "Old chat").await;
    say("alice", old.clone(), "user", "an old question").await;
    let res = client
        .post(format!("{base}/api/conversations/{old}/archive"))
        .header("x-demo-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let secret = create("bob", "Bob's secret plans").await;
    say("bob", secret, "user", "nobody else may read this").await;
    let trip = create("alice", "Trip to Oslo").await;
    say("alice", trip.clone(), "user", "Where should we eat?").await;
    say(
        "alice",
        trip.clone(),
        "assistant",
        "Try the fish market by the harbour.",
    )
    .await;
    let part = reqwest::multipart::Part::bytes(b"day 1: museum".to_vec())
        .file_name("itinerary.txt")
        .mime_str("text/plain")
        .unwrap();
    let res = client
        .post(format!("{base}/api/conversations/{trip}/files"))
        .header("x-demo-user", "alice")
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    trip
}

/// A DevTools protocol session with one page.
pub struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.call_raw(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// A command's result, or the protocol's error.
    pub async fn call_raw(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .unwrap()
                .unwrap();
            let Message::Text(text) = next else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                return match value.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(value["result"].clone()),
                };
            }
        }
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits until `condition` (JavaScript) is true; fails with what the page shows.
    pub async fn wait_for(&mut self, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        // While a page loads there may be no document or context yet: not yet true.
        let probe = format!(
            "(() => {{ try {{ return !!({condition}); }} catch (_) {{ return false; }} }})()"
        );
        loop {
            let result = self
                .call_raw(
                    "Runtime.evaluate",
                    json!({ "expression": probe, "returnByValue": true }),
                )
                .await;
            if result.is_ok_and(|r| r["result"]["value"] == json!(true)) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.body.innerText").await;
                panic!(
                    "timed out waiting for {condition}; the page shows:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the element shows (its rendered text).
    pub async fn text(&mut self, selector: &str) -> String {
        let value = self
            .eval(&format!(
                "document.querySelector({}).innerText",
                json!(selector)
            ))
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// A mouse click in the middle of the element `element` (a JavaScript expression).
    pub async fn click_element(&mut self, element: &str) {
        let point = self
            .eval(&format!(
                "(() => {{ const e = {element}; e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        let (x, y) = (point[0].as_f64().unwrap(), point[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    pub async fn click(&mut self, selector: &str) {
        self.click_element(&format!("document.querySelector({})", json!(selector)))
            .await;
    }

    /// Clicks the button whose text contains `text`, inside `container`.
    pub async fn click_button_with_text(&mut self, container: &str, text: &str) {
        self.click_element(&format!(
            "[...document.querySelectorAll({} + ' button')].find(b => b.innerText.includes({}))",
            json!(container),
            json!(text)
        ))
        .await;
    }

    /// Clicks into a text field, clears it, and types `text`.
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector).await;
        self.eval(&format!(
            "document.querySelector({}).select()",
            json!(selector)
        ))
        .await;
        self.call("Input.insertText", json!({ "text": text })).await;
    }
}

/// Starts headless Chromium with DevTools on a free port and opens a page session.
pub async fn open_browser(browser: &PathBuf, profile: &std::path::Path) -> (Child, Cdp) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--remote-debugging-port=0",
            "--window-size=1100,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", browser.display()));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(Ok(url.trim().to_owned()));
                return;
            }
            seen.push(line);
        }
        let _ = tx.send(Err(seen.join("\n")));
    });
    let url = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(url)) => url,
        Ok(Err(output)) => panic!("chromium exited without a DevTools endpoint:\n{output}"),
        Err(_) => panic!("chromium gave no DevTools endpoint within 30 s"),
    };
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let mut cdp = Cdp {
        ws,
        next_id: 0,
        session: None,
    };
    let target = cdp
        .call("Target.createTarget", json!({ "url": "about:blank" }))
        .await;
    let attached = cdp
        .call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        )
        .await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    cdp.call("Page.enable", json!({})).await;
    (child, cdp)
}
