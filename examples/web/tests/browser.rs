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

mod common;

use std::path::PathBuf;

use base64::Engine;
use common::{Cdp, WebServer, browser, open_browser, seed};
use serde_json::{Value, json};

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
    // The assistant answers, live.
    page.wait_for("document.getElementById('messages').children.length === 4")
        .await;
    page.wait_for(
        "document.querySelector('#messages > li:last-child .content').innerText.includes('real model.') \
         && !document.querySelector('#messages > li.streaming')",
    )
    .await;
    let answer = page.text("#messages > li:last-child .content").await;
    assert!(
        answer.contains("\u{201c}Is it open on Sundays?\u{201d}"),
        "{answer}"
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
    assert_eq!(detail["conversation"]["message_count"], 4);
    assert_eq!(detail["files"].as_array().unwrap().len(), 2);
}

/// A person regenerates a reply (the assistant writes the new version), edits a question
/// (the assistant answers it), steps through the versions with "<" and ">", and reloads:
/// the page shows the branch they left active.
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

/// Waits until the page shows `count` messages and none is streaming.
async fn wait_for_answers(page: &mut Cdp, count: usize) {
    page.wait_for(&format!(
        "document.getElementById('messages').children.length === {count} \
         && !document.querySelector('#messages > li.streaming')"
    ))
    .await;
}

/// The texts of the active branch, as the server has them.
async fn stored_path(base: &str, trip: &str) -> Vec<String> {
    let page: Value = reqwest::Client::new()
        .get(format!("{base}/api/conversations/{trip}/messages?last=50"))
        .header("x-demo-user", "alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect()
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

    // Regenerate the reply: the assistant writes a new version, live, in its place.
    click_in_message(page, 2, "regenerate").await;
    page.wait_for(
        "document.querySelector('#messages > li:nth-child(2) .version')?.innerText === '2/2'",
    )
    .await;
    wait_for_answers(page, 2).await;
    let regenerated = stored_path(base, trip).await[1].clone();
    assert!(regenerated.starts_with("Take 2:"), "{regenerated}");
    assert!(regenerated.contains(QUESTION), "{regenerated}");
    assert_eq!(
        shown_all(page).await,
        pairs(&[(QUESTION, ""), (&regenerated, "2/2")])
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
    wait_for_text(page, 2, &regenerated).await;
    assert_eq!(shown(page, 2).await, (regenerated.clone(), "2/2".into()));

    // Edit the question: a new branch holding the edited question, which the assistant
    // answers.
    click_in_message(page, 1, "edit").await;
    page.wait_for("document.querySelector('#messages > li:nth-child(1) textarea') !== null")
        .await;
    page.type_into("#messages > li:nth-child(1) textarea", NEW_QUESTION)
        .await;
    click_in_message(page, 1, "save").await;
    wait_for_text(page, 1, NEW_QUESTION).await;
    wait_for_answers(page, 2).await;
    let answered = stored_path(base, trip).await;
    assert_eq!(answered[0], NEW_QUESTION);
    assert!(answered[1].contains(NEW_QUESTION), "{answered:?}");
    assert_eq!(
        shown_all(page).await,
        pairs(&[(NEW_QUESTION, "2/2"), (&answered[1], "")])
    );
    // A message written now continues the edited branch.
    page.type_into("#message-text", "Somewhere with a view.")
        .await;
    page.click("#message-form button").await;
    wait_for_answers(page, 4).await;
    let edited_branch = stored_path(base, trip).await;
    assert_eq!(edited_branch[2], "Somewhere with a view.");
    let edited_shown = pairs(&[
        (NEW_QUESTION, "2/2"),
        (&edited_branch[1], ""),
        (&edited_branch[2], ""),
        (&edited_branch[3], ""),
    ]);
    assert_eq!(shown_all(page).await, edited_shown);

    // "<" on the question: the first question's branch, with the reply last shown there.
    click_in_message(page, 1, "prev").await;
    wait_for_text(page, 1, QUESTION).await;
    assert_eq!(
        shown_all(page).await,
        pairs(&[(QUESTION, "1/2"), (&regenerated, "2/2")])
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
    page.wait_for("document.getElementById('messages').children.length === 4")
        .await;
    assert_eq!(shown_all(page).await, edited_shown);

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

    // The server has the branch the page shows, and every version: the two first
    // messages, the regenerated reply, the edited question and its answer, the next
    // question and its answer.
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
    assert_eq!(conversation["message_count"], 7);
    assert_eq!(conversation["path_length"], 4);
    assert_eq!(conversation["active_leaf"], 7);
}
