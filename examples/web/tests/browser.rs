//! The web example in a real browser: headless Chromium, driven over the DevTools protocol
//! (mouse clicks and typed text, as a person would), checking what the page shows.
//!
//! Needs Debian's `chromium` on PATH (or `CHATVAULT_CHROMIUM` / `CHROMIUM` naming a
//! Chromium binary; `scripts/browser.sh install` installs it). Built without one (see
//! `build.rs`), the tests are listed as ignored with the reason; with
//! `CHATVAULT_REQUIRE_BROWSER=1` they are built to run and a missing browser fails them,
//! saying why.

// Test support code outside #[test] fns: its unwraps are test assertions.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The browser binary, or why there is none.
fn chromium() -> Result<PathBuf, String> {
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
fn browser(test: &str) -> PathBuf {
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
struct WebServer {
    child: Child,
    base: String,
}

impl WebServer {
    /// The example with its data (LocalMessages + LocalFiles) under `data`.
    fn start(data: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_web-example"))
            .env("CHATVAULT_ADDR", "127.0.0.1:0")
            .env("CHATVAULT_DATA", data)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
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
async fn seed(base: &str) -> String {
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

/// The first thing a browser shows: the DOM after the app loaded and rendered, as
/// `chromium --headless --dump-dom` prints it, from a server restarted on the data the
/// first one stored.
#[cfg_attr(
    not(chatvault_browser),
    ignore = "needs headless Chromium: none was found when the tests were built (no CHATVAULT_CHROMIUM or CHROMIUM naming one, no chromium on PATH); run ./scripts/test.sh, or scripts/browser.sh install && eval \"$(scripts/browser.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_renders_a_users_conversation() {
    let browser = browser("the_app_renders_a_users_conversation");
    let data = tempfile::tempdir().unwrap();
    let first = WebServer::start(data.path());
    let trip = seed(&first.base).await;
    // Stored on disk: a restarted server shows the same.
    drop(first);
    let server = WebServer::start(data.path());
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("{}/#user=alice&c={trip}", server.base))
        .output()
        .await
        .unwrap_or_else(|e| panic!("could not start {}: {e}", browser.display()));
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && dom.contains("<body"),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dom.contains(r#"<body data-ready="true">"#),
        "the app finished loading: {dom}"
    );
    assert!(dom.contains("signed in as alice"));
    assert!(dom.contains(r#"<h2 id="title">Trip to Oslo</h2>"#), "{dom}");
    assert!(dom.contains("Where should we eat?"));
    assert!(dom.contains("Try the fish market by the harbour."));
    assert!(dom.contains(">itinerary.txt</a>"));
    assert!(
        !dom.contains("Old chat"),
        "archived conversations are not listed by default"
    );
    assert!(
        !dom.contains("Bob's secret plans"),
        "another user's conversation never shows"
    );
    assert!(!dom.contains("nobody else may read this"));
}

/// A DevTools protocol session with one page.
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.call_raw(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// A command's result, or the protocol's error.
    async fn call_raw(&mut self, method: &str, params: Value) -> Result<Value, Value> {
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
    async fn eval(&mut self, expression: &str) -> Value {
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
    async fn wait_for(&mut self, condition: &str) {
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
    async fn text(&mut self, selector: &str) -> String {
        let value = self
            .eval(&format!(
                "document.querySelector({}).innerText",
                json!(selector)
            ))
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// A mouse click in the middle of the element `element` (a JavaScript expression).
    async fn click_element(&mut self, element: &str) {
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

    async fn click(&mut self, selector: &str) {
        self.click_element(&format!("document.querySelector({})", json!(selector)))
            .await;
    }

    /// Clicks the button whose text contains `text`, inside `container`.
    async fn click_button_with_text(&mut self, container: &str, text: &str) {
        self.click_element(&format!(
            "[...document.querySelectorAll({} + ' button')].find(b => b.innerText.includes({}))",
            json!(container),
            json!(text)
        ))
        .await;
    }

    /// Clicks into a text field, clears it, and types `text`.
    async fn type_into(&mut self, selector: &str, text: &str) {
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
async fn open_browser(browser: &PathBuf, profile: &std::path::Path) -> (Child, Cdp) {
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

/// A person signs in, opens a conversation, writes, uploads and downloads a file,
/// renames and archives it; the page shows each change.
#[cfg_attr(
    not(chatvault_browser),
    ignore = "needs headless Chromium: none was found when the tests were built (no CHATVAULT_CHROMIUM or CHROMIUM naming one, no chromium on PATH); run ./scripts/test.sh, or scripts/browser.sh install && eval \"$(scripts/browser.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_app() {
    let browser = browser("a_person_uses_the_app");
    let data = tempfile::tempdir().unwrap();
    let server = WebServer::start(data.path());
    let trip = seed(&server.base).await;
    let profile = tempfile::tempdir().unwrap();
    let (mut chrome, mut page) = open_browser(&browser, profile.path()).await;
    let result = tokio::spawn(async move {
        drive(&mut page, &server.base, &trip).await;
        drop(server);
    })
    .await;
    let _ = chrome.kill();
    let _ = chrome.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn drive(page: &mut Cdp, base: &str, trip: &str) {
    page.call("Page.navigate", json!({ "url": format!("{base}/") }))
        .await;

    // Sign in (demo): type a name, press the button.
    page.wait_for("!document.getElementById('login').hidden")
        .await;
    page.type_into("#login-name", "alice").await;
    page.click("#login-form button").await;
    page.wait_for("document.getElementById('conversations').innerText.includes('Trip to Oslo')")
        .await;
    assert_eq!(page.text("#whoami").await, "signed in as alice");
    let list = page.text("#conversations").await;
    assert!(!list.contains("Old chat"), "{list}");
    assert!(!list.contains("Bob"), "{list}");

    // Open the trip: its messages and its file.
    page.click_button_with_text("#conversations", "Trip to Oslo")
        .await;
    page.wait_for("document.getElementById('messages').children.length === 2")
        .await;
    assert_eq!(page.text("#title").await, "Trip to Oslo");
    let messages = page.text("#messages").await;
    assert!(messages.contains("Where should we eat?"), "{messages}");
    assert!(
        messages.contains("Try the fish market by the harbour."),
        "{messages}"
    );
    assert!(page.text("#files").await.contains("itinerary.txt"));

    // Write a message.
    page.type_into("#message-text", "Is it open on Sundays?")
        .await;
    page.click("#message-form button").await;
    page.wait_for(
        "document.getElementById('messages').innerText.includes('Is it open on Sundays?')",
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('message-text').value")
            .await,
        ""
    );

    // Upload a file with the file picker.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("menu of the day.txt");
    std::fs::write(&path, "herring, potatoes, dill").unwrap();
    let document = page.call("DOM.getDocument", json!({ "depth": 0 })).await;
    let input = page
        .call(
            "DOM.querySelector",
            json!({ "nodeId": document["root"]["nodeId"], "selector": "#upload-input" }),
        )
        .await;
    page.call(
        "DOM.setFileInputFiles",
        json!({ "nodeId": input["nodeId"], "files": [path.to_str().unwrap()] }),
    )
    .await;
    page.click("#upload-form button").await;
    page.wait_for("document.getElementById('files').innerText.includes('menu of the day.txt')")
        .await;
    let files = page.text("#files").await;
    assert!(files.contains("23 B text/plain"), "{files}");

    // Download it through the link the page shows.
    let downloaded = page
        .eval(
            "(async () => { const a = [...document.querySelectorAll('#files a.download')]\
             .find(a => a.innerText === 'menu of the day.txt'); \
             const r = await fetch(a.href); return [r.status, r.headers.get('content-disposition'), await r.text()]; })()",
        )
        .await;
    assert_eq!(downloaded[0], 200);
    assert!(
        downloaded[1]
            .as_str()
            .unwrap()
            .contains("menu%20of%20the%20day.txt")
    );
    assert_eq!(downloaded[2], "herring, potatoes, dill");
    // And through a share link (the signed download route, no cookie needed).
    page.click_button_with_text("#files li:last-child", "Share link")
        .await;
    page.wait_for("document.getElementById('status').innerText.includes('/api/downloads/')")
        .await;
    let status = page.text("#status").await;
    let link = status.split_whitespace().last().unwrap().to_owned();
    let body = reqwest::get(&link).await.unwrap().text().await.unwrap();
    assert_eq!(body, "herring, potatoes, dill");

    // Rename.
    page.type_into("#rename-input", "Oslo in June").await;
    page.click("#rename").await;
    page.wait_for("document.getElementById('title').innerText === 'Oslo in June'")
        .await;
    page.wait_for("document.getElementById('conversations').innerText.includes('Oslo in June')")
        .await;

    // Archive: the badge shows, and it leaves the list until "archived" is ticked.
    page.click("#archive").await;
    page.wait_for("!document.getElementById('archived-badge').hidden")
        .await;
    page.wait_for("!document.getElementById('conversations').innerText.includes('Oslo in June')")
        .await;
    assert_eq!(page.text("#archive").await, "Unarchive");
    page.click("#show-archived").await;
    page.wait_for(
        "document.getElementById('conversations').innerText.includes('Oslo in June (archived)')",
    )
    .await;
    assert!(
        page.text("#conversations")
            .await
            .contains("Old chat (archived)")
    );
    assert!(!page.text("#conversations").await.contains("Bob"));

    // What the person sees at the end, kept for a look.
    let shot = page
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-example-final.png");
    std::fs::write(&out, &png).unwrap();
    println!("screenshot: {}", out.display());

    // The server has what the page showed.
    let client = reqwest::Client::new();
    let detail: Value = client
        .get(format!("{base}/api/conversations/{trip}"))
        .header("x-demo-user", "alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["conversation"]["title"], "Oslo in June");
    assert_eq!(detail["conversation"]["archived"], true);
    assert_eq!(detail["conversation"]["message_count"], 3);
    assert_eq!(detail["files"].as_array().unwrap().len(), 2);
}

/// A person edits a question, writes a new version of a reply, steps through the
/// versions with "<" and ">", and reloads: the page shows the branch they left active.
#[cfg_attr(
    not(chatvault_browser),
    ignore = "needs headless Chromium: none was found when the tests were built (no CHATVAULT_CHROMIUM or CHROMIUM naming one, no chromium on PATH); run ./scripts/test.sh, or scripts/browser.sh install && eval \"$(scripts/browser.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_edits_and_switches_versions() {
    let browser = browser("a_person_edits_and_switches_versions");
    let data = tempfile::tempdir().unwrap();
    let server = WebServer::start(data.path());
    let trip = seed(&server.base).await;
    let profile = tempfile::tempdir().unwrap();
    let (mut chrome, mut page) = open_browser(&browser, profile.path()).await;
    let result = tokio::spawn(async move {
        drive_versions(&mut page, &server.base, &trip).await;
        drop(server);
    })
    .await;
    let _ = chrome.kill();
    let _ = chrome.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

const QUESTION: &str = "Where should we eat?";
const ANSWER: &str = "Try the fish market by the harbour.";
const NEW_ANSWER: &str = "The food hall at Vulkan, or the fish market.";
const NEW_QUESTION: &str = "Where should we have coffee?";

/// The message at `n` (from 1) on the page: its text and its "i/n" label ("" without).
async fn shown(page: &mut Cdp, n: usize) -> (String, String) {
    let item = format!("#messages > li:nth-child({n})");
    let text = page.text(&format!("{item} .content")).await;
    let label = page
        .eval(&format!(
            "document.querySelector({})?.innerText ?? ''",
            json!(format!("{item} .version"))
        ))
        .await;
    (text, label.as_str().unwrap_or_default().to_owned())
}

/// What the page shows: each message's text and version label.
async fn shown_all(page: &mut Cdp) -> Vec<(String, String)> {
    let count = page
        .eval("document.getElementById('messages').children.length")
        .await;
    let mut out = Vec::new();
    for n in 1..=count.as_u64().unwrap() as usize {
        out.push(shown(page, n).await);
    }
    out
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Waits until message `n` shows `text`.
async fn wait_for_text(page: &mut Cdp, n: usize, text: &str) {
    page.wait_for(&format!(
        "document.querySelector('#messages > li:nth-child({n}) .content')?.innerText === {}",
        json!(text)
    ))
    .await;
}

/// Clicks the button `class` ("edit", "regenerate", "prev", "next", "save") of message `n`.
async fn click_in_message(page: &mut Cdp, n: usize, class: &str) {
    page.click(&format!("#messages > li:nth-child({n}) button.{class}"))
        .await;
}

async fn drive_versions(page: &mut Cdp, base: &str, trip: &str) {
    page.call(
        "Page.navigate",
        json!({ "url": format!("{base}/#user=alice&c={trip}") }),
    )
    .await;
    page.wait_for("document.getElementById('messages').children.length === 2")
        .await;
    assert_eq!(
        shown_all(page).await,
        pairs(&[(QUESTION, ""), (ANSWER, "")])
    );

    // Regenerate the reply: the person writes the new version in place and saves it.
    click_in_message(page, 2, "regenerate").await;
    page.wait_for("document.querySelector('#messages > li:nth-child(2) textarea') !== null")
        .await;
    assert_eq!(
        page.eval("document.querySelector('#messages > li:nth-child(2) textarea').value")
            .await,
        ANSWER
    );
    page.type_into("#messages > li:nth-child(2) textarea", NEW_ANSWER)
        .await;
    click_in_message(page, 2, "save").await;
    wait_for_text(page, 2, NEW_ANSWER).await;
    assert_eq!(
        shown_all(page).await,
        pairs(&[(QUESTION, ""), (NEW_ANSWER, "2/2")])
    );
    assert_eq!(
        page.eval("document.querySelector('#messages > li:nth-child(2) button.next').disabled")
            .await,
        true
    );

    // "<" shows the first reply, ">" the new one again.
    click_in_message(page, 2, "prev").await;
    wait_for_text(page, 2, ANSWER).await;
    assert_eq!(shown(page, 2).await, (ANSWER.into(), "1/2".into()));
    click_in_message(page, 2, "next").await;
    wait_for_text(page, 2, NEW_ANSWER).await;
    assert_eq!(shown(page, 2).await, (NEW_ANSWER.into(), "2/2".into()));

    // Edit the question: a new branch holding only the edited question.
    click_in_message(page, 1, "edit").await;
    page.wait_for("document.querySelector('#messages > li:nth-child(1) textarea') !== null")
        .await;
    page.type_into("#messages > li:nth-child(1) textarea", NEW_QUESTION)
        .await;
    click_in_message(page, 1, "save").await;
    wait_for_text(page, 1, NEW_QUESTION).await;
    page.wait_for("document.getElementById('messages').children.length === 1")
        .await;
    assert_eq!(shown_all(page).await, pairs(&[(NEW_QUESTION, "2/2")]));
    // A message written now continues the edited branch.
    page.type_into("#message-text", "Somewhere with a view.")
        .await;
    page.click("#message-form button").await;
    page.wait_for("document.getElementById('messages').children.length === 2")
        .await;
    assert_eq!(
        shown_all(page).await,
        pairs(&[(NEW_QUESTION, "2/2"), ("Somewhere with a view.", "")])
    );

    // "<" on the question: the first question's branch, with the reply last shown there.
    click_in_message(page, 1, "prev").await;
    wait_for_text(page, 1, QUESTION).await;
    assert_eq!(
        shown_all(page).await,
        pairs(&[(QUESTION, "1/2"), (NEW_ANSWER, "2/2")])
    );
    click_in_message(page, 2, "prev").await;
    wait_for_text(page, 2, ANSWER).await;
    assert_eq!(
        shown_all(page).await,
        pairs(&[(QUESTION, "1/2"), (ANSWER, "1/2")])
    );

    // Reload: the page comes back on the branch left active.
    page.eval("window.beforeReload = true").await;
    page.call("Page.reload", json!({})).await;
    page.wait_for(
        "!window.beforeReload && document.body.dataset.ready === 'true' \
         && document.getElementById('messages').children.length === 2",
    )
    .await;
    assert_eq!(
        shown_all(page).await,
        pairs(&[(QUESTION, "1/2"), (ANSWER, "1/2")])
    );
    // ">" on the question after the reload: the edited branch, as it was left.
    click_in_message(page, 1, "next").await;
    wait_for_text(page, 1, NEW_QUESTION).await;
    assert_eq!(
        shown_all(page).await,
        pairs(&[(NEW_QUESTION, "2/2"), ("Somewhere with a view.", "")])
    );

    // What the person sees, kept for a look.
    let shot = page
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-example-versions.png");
    std::fs::write(&out, &png).unwrap();
    println!("screenshot: {}", out.display());

    // The server has the branch the page shows, and every version.
    let client = reqwest::Client::new();
    let detail: Value = client
        .get(format!("{base}/api/conversations/{trip}"))
        .header("x-demo-user", "alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conversation = &detail["conversation"];
    assert_eq!(conversation["message_count"], 5);
    assert_eq!(conversation["path_length"], 2);
    assert_eq!(conversation["active_leaf"], 5);
}
