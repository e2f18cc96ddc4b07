//! Runs the agent example and checks what it prints: the streamed turns, the crashed
//! reply read back as interrupted, and two request bodies that OpenAI and Anthropic accept
//! (every tool call answered right after it).

use std::process::Command;

use serde_json::Value;

fn run(data: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_agent-example"))
        .env("CHATVAULT_DATA", data)
        .output()
        .expect("run the agent example");
    assert!(
        out.status.success(),
        "agent-example failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The JSON printed after the `=== {title} ===` line.
fn section(output: &str, title: &str) -> Value {
    let marker = format!("=== {title} ===\n");
    let start = output.find(&marker).expect("section present") + marker.len();
    let rest = &output[start..];
    let end = rest.find("\n=== ").expect("section ends");
    serde_json::from_str(&rest[..end]).expect("the section is JSON")
}

fn roles(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().expect("role").to_owned())
        .collect()
}

#[test]
fn the_agent_streams_crashes_resumes_and_replays_for_both_providers() {
    let dir = std::env::temp_dir().join(format!("agent-example-test-{}", std::process::id()));
    let output = run(&dir);

    assert!(
        output.contains("assistant (streaming): Let me check the weather in Oslo."),
        "{output}"
    );
    assert!(
        output.contains("tool call_2 -> {\"city\":\"Oslo\",\"sky\":\"clear\",\"temperature_c\":4}"),
        "{output}"
    );
    assert!(
        output.contains("It is 4°C and clear in Oslo right now. Bring a jacket!"),
        "{output}"
    );
    assert!(output.contains("*** the process crashes"), "{output}");
    // Read back after the crash: the reply is interrupted, never complete.
    assert!(
        output.contains("7 assistant interrupted text,tool_call"),
        "{output}"
    );
    assert!(
        output.contains("2 user      complete    text,file"),
        "{output}"
    );

    let openai = section(&output, "OpenAI Chat Completions request");
    assert_eq!(openai["model"], "gpt-4o");
    let messages = &openai["messages"];
    assert_eq!(
        roles(messages),
        [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
            "assistant",
            "tool"
        ]
    );
    // The attachment went out as a base64 image.
    let image = &messages[1]["content"][1];
    assert_eq!(image["type"], "image_url");
    assert!(
        image["image_url"]["url"]
            .as_str()
            .expect("url")
            .starts_with("data:image/png;base64,iVBORw0KGgo")
    );
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_2");
    assert_eq!(messages[3]["tool_call_id"], "call_2");
    // The crashed reply: kept with its checkpoint and a marker; its call answered.
    assert_eq!(
        messages[6]["content"][1]["text"],
        "[This reply was interrupted before it finished.]"
    );
    assert_eq!(messages[6]["tool_calls"][0]["id"], "call_6");
    assert_eq!(messages[7]["tool_call_id"], "call_6");
    assert_eq!(
        messages[7]["content"],
        "The tool call was interrupted: it has no result."
    );

    let anthropic = section(&output, "Anthropic Messages request");
    assert_eq!(anthropic["model"], "claude-sonnet-4-5");
    assert_eq!(
        anthropic["system"],
        "You are a weather assistant. Use get_weather for current conditions."
    );
    let messages = &anthropic["messages"];
    assert_eq!(
        roles(messages),
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "user"
        ]
    );
    assert_eq!(
        messages[0]["content"][1]["source"]["media_type"],
        "image/png"
    );
    assert_eq!(messages[1]["content"][1]["type"], "tool_use");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "call_2");
    assert_eq!(messages[4]["content"][0]["text"], "And in Bergen?");
    let last = &messages[6]["content"][0];
    assert_eq!(last["tool_use_id"], "call_6");
    assert_eq!(last["is_error"], true);
    let _ = std::fs::remove_dir_all(&dir);
}
