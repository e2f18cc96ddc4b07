//! The web example as a chat, in a real browser (headless Chromium, real clicks): a reply
//! streams live, continues after a reload in its middle, Stop keeps what was written, and
//! the page fits a 390 px wide phone screen. The browser policy is `browser.rs`'s.

// Test support code outside #[test] fns: its unwraps are test assertions.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use common::{Cdp, WebServer, browser, open_browser, seed};
use serde_json::{Value, json};

/// Runs `drive` on a page of a fresh browser against `server`; the browser is killed
/// whatever happens.
async fn in_browser<F, Fut>(test: &str, server: WebServer, drive: F)
where
    F: FnOnce(Cdp, WebServer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let browser = browser(test);
    let profile = tempfile::tempdir().unwrap();
    let (mut chrome, page) = open_browser(&browser, profile.path()).await;
    let result = tokio::spawn(async move { drive(page, server).await }).await;
    let _ = chrome.kill();
    let _ = chrome.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A message of alice's conversation, as the server has it (`n` from 1 on the active
/// branch).
async fn stored(base: &str, conversation: &str, n: usize) -> Value {
    let page: Value = reqwest::Client::new()
        .get(format!(
            "{base}/api/conversations/{conversation}/messages?last=50"
        ))
        .header("x-demo-user", "alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"][n - 1].clone()
}

/// The text message `n` shows.
async fn shown(page: &mut Cdp, n: usize) -> String {
    page.text(&format!("#messages > li:nth-child({n}) .content"))
        .await
}

/// Writes `text` in the message box and presses Send.
async fn send(page: &mut Cdp, text: &str) {
    page.type_into("#message-text", text).await;
    page.click("#message-form button").await;
}

/// Saves a PNG of the page under the target directory and, when `keep` and
/// `CHATVAULT_UPDATE_SCREENSHOT=1`, as `examples/web/<name>` (the README's picture).
async fn screenshot(page: &mut Cdp, name: &str, keep: bool) {
    let shot = page
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&out, &png).unwrap();
    println!("screenshot: {}", out.display());
    if keep && std::env::var("CHATVAULT_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        let kept = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
        std::fs::write(&kept, &png).unwrap();
        println!("screenshot kept: {}", kept.display());
    }
}

/// A person asks a question; the answer streams in word by word; they reload the page in
/// the middle of it: the answer is still there and carries on to its end, each word once.
#[cfg_attr(
    not(chatvault_browser),
    ignore = "needs headless Chromium: none was found when the tests were built (no CHATVAULT_CHROMIUM or CHROMIUM naming one, no chromium on PATH); run ./scripts/test.sh, or scripts/browser.sh install && eval \"$(scripts/browser.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_carries_on_after_a_reload_in_its_middle() {
    let data = tempfile::tempdir().unwrap();
    // A word every 120 ms: about 9 s for the whole answer.
    let server = WebServer::start_with(data.path(), &[("CHATVAULT_DEMO_TOKEN_MS", "120")]);
    let trip = seed(&server.base).await;
    in_browser(
        "a_reply_carries_on_after_a_reload_in_its_middle",
        server,
        move |mut page, server| async move {
            let base = server.base.clone();
            page.call(
                "Page.navigate",
                json!({ "url": format!("{base}/#user=alice&c={trip}") }),
            )
            .await;
            page.wait_for("document.getElementById('messages').children.length === 2")
                .await;
            send(&mut page, "How long is the walk from the station?").await;
            // The answer appears while it is written.
            page.wait_for(
                "document.querySelector('#messages > li:nth-child(4).streaming .content')\
                 ?.innerText.length > 160",
            )
            .await;
            assert_eq!(
                page.text("#messages > li:nth-child(4) .status").await,
                "writing…"
            );
            screenshot(&mut page, "screenshot.png", true).await;
            let before = shown(&mut page, 4).await;
            let at_reload = stored(&base, &trip, 4).await;
            assert_eq!(at_reload["status"], "streaming", "reloaded mid-reply");

            page.eval("window.beforeReload = true").await;
            page.call("Page.reload", json!({})).await;
            page.wait_for(
                "!window.beforeReload && document.body.dataset.ready === 'true' \
                 && document.getElementById('messages').children.length === 4",
            )
            .await;
            // Still being written after the reload, and growing on the page.
            let after_reload = shown(&mut page, 4).await;
            assert!(after_reload.starts_with(&before), "{after_reload:?}");
            page.wait_for(&format!(
                "document.querySelector('#messages > li:nth-child(4).streaming .content')\
                 ?.innerText.length > {}",
                after_reload.chars().count() + 20
            ))
            .await;
            // To its end.
            page.wait_for(
                "!document.querySelector('#messages > li.streaming') \
                 && document.querySelector('#messages > li:nth-child(4) .content')\
                 .innerText.endsWith('real model.')",
            )
            .await;
            let end = stored(&base, &trip, 4).await;
            assert_eq!(end["status"], "complete");
            let text = shown(&mut page, 4).await;
            assert_eq!(text, end["content"].as_str().unwrap(), "each word once");
            assert!(text.starts_with(&before));
            assert!(text.contains("\u{201c}How long is the walk from the station?\u{201d}"));
            // The finished answer has its time and a Regenerate button.
            let time = page
                .eval("document.querySelector('#messages > li:nth-child(4) time').dateTime")
                .await;
            assert_eq!(time, end["created_at"]);
            page.wait_for(
                "document.querySelector('#messages > li:nth-child(4) button.regenerate') !== null",
            )
            .await;
            drop(server);
        },
    )
    .await;
}

/// A person presses Stop in the middle of an answer: what was written stays, on the page
/// and in the store, and nothing is added after.
#[cfg_attr(
    not(chatvault_browser),
    ignore = "needs headless Chromium: none was found when the tests were built (no CHATVAULT_CHROMIUM or CHROMIUM naming one, no chromium on PATH); run ./scripts/test.sh, or scripts/browser.sh install && eval \"$(scripts/browser.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_keeps_the_partial_reply() {
    let data = tempfile::tempdir().unwrap();
    let server = WebServer::start_with(data.path(), &[("CHATVAULT_DEMO_TOKEN_MS", "100")]);
    let trip = seed(&server.base).await;
    in_browser(
        "stop_keeps_the_partial_reply",
        server,
        move |mut page, server| async move {
            let base = server.base.clone();
            page.call(
                "Page.navigate",
                json!({ "url": format!("{base}/#user=alice&c={trip}") }),
            )
            .await;
            page.wait_for("document.getElementById('messages').children.length === 2")
                .await;
            send(&mut page, "Tell me about the harbour.").await;
            page.wait_for(
                "document.querySelector('#messages > li:nth-child(4).streaming .content')\
                 ?.innerText.length > 40",
            )
            .await;
            page.click("#messages > li:nth-child(4) button.stop").await;
            page.wait_for(
                "document.querySelector('#messages > li:nth-child(4) .status')?.innerText === 'stopped'",
            )
            .await;
            let kept = shown(&mut page, 4).await;
            assert!(kept.len() > 40, "{kept:?}");
            assert!(!kept.contains("real model."), "stopped before the end: {kept:?}");
            // Nothing more arrives, on the page or in the store.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(shown(&mut page, 4).await, kept);
            let message = stored(&base, &trip, 4).await;
            assert_eq!(message["status"], "stopped");
            assert_eq!(message["content"].as_str().unwrap(), kept);
            // After a reload it reads the same, and can be regenerated.
            page.call("Page.reload", json!({})).await;
            page.wait_for(
                "document.body.dataset.ready === 'true' \
                 && document.querySelector('#messages > li:nth-child(4) .status')?.innerText === 'stopped'",
            )
            .await;
            assert_eq!(shown(&mut page, 4).await, kept);
            page.wait_for("document.querySelector('#messages > li:nth-child(4) button.regenerate') !== null")
                .await;
            drop(server);
        },
    )
    .await;
}

/// Every button of the page inside the viewport's width: `[]` when all are, else the
/// texts of those that are not.
const OFF_SCREEN: &str = "[...document.querySelectorAll('button, input, textarea, a')]\
    .filter(e => e.offsetParent !== null)\
    .filter(e => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > innerWidth + 0.5; })\
    .map(e => e.innerText || e.id || e.className)";

/// Whether the page scrolls sideways: its scroll width against the viewport's.
const WIDTHS: &str = "[document.scrollingElement.scrollWidth, innerWidth]";

/// On a 390 px wide phone: the sign-in screen shows nothing of the app, the chat fits
/// (no sideways scrolling, every control reachable), sign out, delete a conversation,
/// and an error message that names no id.
#[cfg_attr(
    not(chatvault_browser),
    ignore = "needs headless Chromium: none was found when the tests were built (no CHATVAULT_CHROMIUM or CHROMIUM naming one, no chromium on PATH); run ./scripts/test.sh, or scripts/browser.sh install && eval \"$(scripts/browser.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_fits_a_phone_and_signs_out_and_deletes() {
    let data = tempfile::tempdir().unwrap();
    let server = WebServer::start_with(data.path(), &[("CHATVAULT_DEMO_TOKEN_MS", "100")]);
    let trip = seed(&server.base).await;
    // A message with a long unbroken word and a file with a long name: the usual causes
    // of sideways scrolling.
    let client = reqwest::Client::new();
    let long_url = format!("https://example.com/{}", "a".repeat(300));
    let res = client
        .post(format!("{}/api/conversations/{trip}/messages", server.base))
        .header("x-demo-user", "alice")
        .json(&json!({ "role": "user", "text": format!("See {long_url}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let name = format!("{}.txt", "itinerary-".repeat(12));
    let part = reqwest::multipart::Part::bytes(b"plans".to_vec())
        .file_name(name)
        .mime_str("text/plain")
        .unwrap();
    let res = client
        .post(format!("{}/api/conversations/{trip}/files", server.base))
        .header("x-demo-user", "alice")
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    in_browser(
        "the_chat_fits_a_phone_and_signs_out_and_deletes",
        server,
        move |mut page, server| async move {
            let base = server.base.clone();
            page.call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
            )
            .await;
            page.call("Page.navigate", json!({ "url": format!("{base}/") }))
                .await;

            // Signed out: the sign-in form, and nothing of the app.
            page.wait_for("document.body.dataset.ready === 'true'").await;
            let hidden = page
                .eval(
                    "[getComputedStyle(document.getElementById('app')).display, \
                      getComputedStyle(document.getElementById('login')).display, \
                      getComputedStyle(document.getElementById('sign-out')).display]",
                )
                .await;
            assert_eq!(hidden[0], "none", "the app is hidden: {hidden}");
            assert_ne!(hidden[1], "none", "the sign-in form shows: {hidden}");
            assert_eq!(hidden[2], "none");
            assert_eq!(page.eval("innerWidth").await, 390);
            let widths = page.eval(WIDTHS).await;
            assert_eq!(widths[0], widths[1], "sign-in screen: {widths}");

            page.type_into("#login-name", "alice").await;
            page.click("#login-form button").await;
            page.wait_for("document.getElementById('conversations').innerText.includes('Trip to Oslo')")
                .await;
            page.click_button_with_text("#conversations", "Trip to Oslo")
                .await;
            page.wait_for("document.getElementById('messages').children.length === 3")
                .await;
            // Each message has its time.
            let times = page
                .eval("[...document.querySelectorAll('#messages time')].map(t => t.innerText).filter(t => /\\d/.test(t)).length")
                .await;
            assert_eq!(times, 3);
            send(&mut page, "Is the ferry running today?").await;
            page.wait_for(
                "document.querySelector('#messages > li:nth-child(5).streaming .content')\
                 ?.innerText.length > 20",
            )
            .await;
            let widths = page.eval(WIDTHS).await;
            assert_eq!(widths[0], widths[1], "the chat: {widths}");
            assert_eq!(page.eval(OFF_SCREEN).await, json!([]));
            screenshot(&mut page, "screenshot-phone.png", false).await;
            // Stop, reachable with a real click on the phone.
            page.click("#messages > li:nth-child(5) button.stop").await;
            page.wait_for(
                "document.querySelector('#messages > li:nth-child(5) .status')?.innerText === 'stopped'",
            )
            .await;
            let widths = page.eval(WIDTHS).await;
            assert_eq!(widths[0], widths[1], "after the reply: {widths}");
            assert_eq!(page.eval(OFF_SCREEN).await, json!([]));

            // A conversation that is not there: a sentence, no id.
            let missing = "0190f5a8-1c2d-7e3f-8a9b-0c1d2e3f4a5b";
            page.call(
                "Page.navigate",
                json!({ "url": format!("{base}/?again#c={missing}") }),
            )
            .await;
            page.wait_for("document.getElementById('status').innerText.length > 0")
                .await;
            let status = page.text("#status").await;
            assert_eq!(
                status,
                "That conversation was not found: it may have been deleted."
            );
            assert!(!status.contains(missing));

            // Delete the trip: asked first, then gone.
            page.click_button_with_text("#conversations", "Trip to Oslo")
                .await;
            page.wait_for("!document.getElementById('conversation').hidden")
                .await;
            page.click("#delete").await;
            page.wait_for("!document.getElementById('delete-confirm').hidden")
                .await;
            page.click("#delete-yes").await;
            page.wait_for("document.getElementById('status').innerText === 'Conversation deleted.'")
                .await;
            assert!(!page.text("#conversations").await.contains("Trip to Oslo"));
            assert_eq!(
                page.eval("document.getElementById('conversation').hidden")
                    .await,
                true
            );
            let gone = reqwest::Client::new()
                .get(format!("{base}/api/conversations/{trip}"))
                .header("x-demo-user", "alice")
                .send()
                .await
                .unwrap();
            assert_eq!(gone.status(), 404);

            // Sign out: back to the sign-in form, nothing of alice's left on the page.
            page.click("#sign-out").await;
            page.wait_for("!document.getElementById('login').hidden").await;
            assert_eq!(
                page.eval("getComputedStyle(document.getElementById('app')).display")
                    .await,
                "none"
            );
            assert_eq!(page.text("#whoami").await, "");
            assert_eq!(
                page.eval("document.getElementById('conversations').children.length")
                    .await,
                0
            );
            // The browser's cookie is gone: the server no longer knows it.
            let me = page
                .eval("fetch('/demo/me', { credentials: 'same-origin' }).then(r => r.status)")
                .await;
            assert_eq!(me, 401);
            page.call("Page.reload", json!({})).await;
            page.wait_for("document.body.dataset.ready === 'true' && !document.getElementById('login').hidden")
                .await;
            drop(server);
        },
    )
    .await;
}
