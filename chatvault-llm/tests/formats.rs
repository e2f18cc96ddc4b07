//! Provider formats: golden fixtures of the providers' shapes, read into parts and written
//! back exactly, through storage too; ChatVault messages out to each format and back.

#![allow(clippy::unwrap_used)] // tests may unwrap

use chatvault_core::{
    ChatVault, ContentType, ErrorKind, FileId, FilePart, FileSource, Message, NewMessage, Part,
    ProviderPart, Reasoning, Role, ToolResult,
};
use chatvault_llm::{self as llm, ANTHROPIC, OPENAI, OPENAI_CHAT, anthropic, openai, responses};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/llm/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn array(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().unwrap().clone()
}

fn roles(messages: &[NewMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.role.as_str()).collect()
}

/// Stores `messages` in a fresh conversation and reads them back.
async fn store(messages: Vec<NewMessage>) -> Vec<Message> {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut chat = vault.create_conversation(None).await.unwrap();
    chat.append(messages).await.unwrap();
    let chat = vault.get_conversation(chat.id()).await.unwrap().unwrap();
    chat.messages().await.unwrap()
}

fn ct(s: &str) -> Option<ContentType> {
    Some(ContentType::parse(s).unwrap())
}

// ---------- OpenAI Chat Completions ----------

#[tokio::test]
async fn chat_completions_fixture_round_trips_through_parts_and_storage() {
    let body = fixture("openai_chat.json");
    let wire = array(&body, "messages");
    let parsed = openai::from_messages(&wire).unwrap();
    assert_eq!(
        roles(&parsed),
        [
            "developer",
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
            "assistant"
        ]
    );

    // The parts are the typed ones, not opaque copies.
    let user = &parsed[1].parts;
    assert_eq!(user.len(), 6);
    assert_eq!(
        user[1],
        Part::url("https://upload.example.com/photos/fjord.jpg", ct("image/*"))
    );
    assert!(
        matches!(&user[2], Part::File(f) if f.media_type == ct("image/png")),
        "{:?}",
        user[2]
    );
    assert_eq!(
        user[3],
        Part::File(FilePart {
            source: FileSource::Url {
                url: "data:application/pdf;base64,JVBERi0xLjQKJcOkw7zDtsOfCg==".into()
            },
            media_type: ct("application/pdf"),
            filename: Some("trip.pdf".into()),
        })
    );
    assert!(
        matches!(&user[4], Part::File(f) if f.media_type == ct("audio/wav")
            && matches!(&f.source, FileSource::Url { url } if url.starts_with("data:audio/wav;base64,UklGR")))
    );
    assert!(matches!(&user[5], Part::Provider(p) if p.provider == OPENAI_CHAT && p.kind == "file"));
    assert_eq!(
        parsed[2].parts,
        vec![
            Part::tool_call(
                "call_Oslo1",
                "get_weather",
                json!({"city": "Oslo", "unit": "celsius"})
            ),
            Part::tool_call(
                "call_Bergen2",
                "get_weather",
                json!({"city": "Bergen", "unit": "celsius"})
            ),
        ]
    );
    assert_eq!(
        parsed[4].parts,
        vec![Part::ToolResult(ToolResult {
            call_id: "call_Bergen2".into(),
            content: vec![Part::text("7°C, "), Part::text("rain")],
            is_error: false,
        })]
    );
    assert_eq!(
        parsed[7].parts,
        vec![Part::Provider(ProviderPart {
            provider: OPENAI_CHAT.into(),
            kind: "refusal".into(),
            data: json!("I'm sorry, I can't help with that."),
        })]
    );
    assert_eq!(parsed[9].parts[0], Part::text("Let me check the clock."));

    // Parts -> the same JSON.
    assert_eq!(openai::to_messages(&parsed).unwrap(), wire);
    assert_eq!(openai::to_request("gpt-4o", &parsed).unwrap(), body);

    // Stored and read back -> the same JSON.
    let stored = store(parsed).await;
    assert_eq!(openai::to_messages(&stored).unwrap(), wire);
}

#[test]
fn chat_completions_reads_other_spellings_into_the_same_parts() {
    let wire = vec![
        json!({"role": "user", "content": [{"type": "text", "text": "hi"}]}),
        json!({"role": "assistant", "content": "", "tool_calls": []}),
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": "{ \"b\": 1, \"a\": [1, 2] }"}}]}),
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "d", "type": "function",
            "function": {"name": "f", "arguments": "{not json"}}]}),
    ];
    let parsed = openai::from_messages(&wire).unwrap();
    assert_eq!(parsed[0].parts, vec![Part::text("hi")]);
    assert_eq!(parsed[1].parts, vec![Part::text("")]);
    assert_eq!(
        parsed[2].parts,
        vec![Part::tool_call("c", "f", json!({"a": [1, 2], "b": 1}))]
    );
    // Malformed arguments are kept as the model wrote them, and written back unchanged.
    assert_eq!(
        parsed[3].parts,
        vec![Part::tool_call("d", "f", json!("{not json"))]
    );
    let out = openai::to_messages(&parsed).unwrap();
    assert_eq!(out[0], json!({"role": "user", "content": "hi"}));
    assert_eq!(
        out[2]["tool_calls"][0]["function"]["arguments"],
        r#"{"a":[1,2],"b":1}"#
    );
    assert_eq!(
        out[3]["tool_calls"][0]["function"]["arguments"],
        "{not json"
    );
}

#[test]
fn chat_completions_rejects_malformed_messages_with_typed_errors() {
    for (bad, what) in [
        (json!({"content": "no role"}), "role"),
        (json!({"role": "wizard", "content": "x"}), "wizard"),
        (
            json!({"role": "assistant", "tool_calls": {"id": 1}}),
            "tool_calls",
        ),
        (json!({"role": "tool", "content": "x"}), "tool_call_id"),
        (json!({"role": "user", "content": 5}), "content"),
        (
            json!({"role": "user", "content": [{"type": "image_url"}]}),
            "image_url",
        ),
    ] {
        let err = openai::from_messages(std::slice::from_ref(&bad)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert!(err.to_string().contains(what), "{bad}: {err}");
    }
}

// ---------- OpenAI Responses ----------

#[tokio::test]
async fn responses_fixture_round_trips_through_parts_and_storage() {
    let body = fixture("openai_responses.json");
    let items = array(&body, "input");
    let parsed = responses::from_input_items(&items).unwrap();
    assert_eq!(
        roles(&parsed),
        [
            "developer",
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    let user = &parsed[1].parts;
    assert_eq!(
        user[1],
        Part::url("https://maps.example.com/oslo.png", ct("image/*"))
    );
    assert_eq!(
        user[2],
        Part::File(FilePart {
            source: FileSource::Url {
                url: "data:application/pdf;base64,JVBERi0xLjQK".into()
            },
            media_type: ct("application/pdf"),
            filename: Some("notes.pdf".into()),
        })
    );
    assert_eq!(
        user[3],
        Part::url("https://docs.example.com/itinerary.pdf", None)
    );
    assert!(
        matches!(&user[4], Part::Provider(p) if p.provider == OPENAI && p.kind == "input_image")
    );

    // A reasoning item is kept whole (id, every summary, encrypted content), then the call.
    let turn = &parsed[2].parts;
    assert_eq!(turn.len(), 2);
    assert_eq!(
        turn[0],
        Part::Provider(ProviderPart {
            provider: OPENAI.into(),
            kind: "reasoning".into(),
            data: items[2].clone(),
        })
    );
    assert_eq!(
        turn[1],
        Part::tool_call("call_w1", "get_weather", json!({"city": "Oslo"}))
    );
    assert_eq!(
        parsed[3].parts,
        vec![Part::tool_result(
            "call_w1",
            r#"{"temperature":4,"sky":"clear"}"#,
            false
        )]
    );
    let kinds: Vec<&str> = parsed[4].parts.iter().map(Part::kind).collect();
    assert_eq!(kinds, ["provider", "provider", "text"]);
    let Part::ToolResult(route) = &parsed[7].parts[0] else {
        panic!("{:?}", parsed[7])
    };
    assert_eq!(route.content[0], Part::text("Route map:"));
    assert!(matches!(&route.content[1], Part::File(f) if f.media_type == ct("image/png")));

    assert_eq!(responses::to_input_items(&parsed).unwrap(), items);
    assert_eq!(responses::to_request("o4-mini", &parsed).unwrap(), body);
    let stored = store(parsed).await;
    assert_eq!(responses::to_input_items(&stored).unwrap(), items);
}

#[test]
fn responses_reads_short_messages_and_rejects_bad_items() {
    let items = vec![
        json!({"role": "user", "content": "hi"}),
        json!({"role": "assistant", "content": "hello"}),
        json!({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "again", "annotations": []}]}),
    ];
    let parsed = responses::from_input_items(&items).unwrap();
    assert_eq!(roles(&parsed), ["user", "assistant"]);
    assert_eq!(
        parsed[1].parts,
        vec![Part::text("hello"), Part::text("again")]
    );
    assert_eq!(
        responses::to_input_items(&parsed).unwrap(),
        vec![
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}),
            json!({"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "hello"}, {"type": "output_text", "text": "again"}]}),
        ]
    );
    for bad in [
        json!({"content": "no type, no role"}),
        json!({"type": "message", "role": "wizard", "content": "x"}),
        json!({"type": "function_call", "name": "f", "arguments": "{}"}),
        json!({"type": "function_call_output", "output": "x"}),
    ] {
        let err = responses::from_input_items(std::slice::from_ref(&bad)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
    }
}

// ---------- Anthropic Messages ----------

#[tokio::test]
async fn anthropic_fixture_round_trips_through_parts_and_storage() {
    let body = fixture("anthropic_messages.json");
    let wire = array(&body, "messages");
    let parsed = anthropic::from_request(Some(&body["system"]), &wire).unwrap();
    assert_eq!(
        roles(&parsed),
        [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
            "assistant"
        ]
    );
    assert_eq!(
        parsed[0].parts,
        vec![Part::text("You are a careful research assistant.")]
    );
    let user = &parsed[1].parts;
    assert_eq!(
        user[1],
        Part::File(FilePart {
            source: FileSource::Url {
                url: "data:application/pdf;base64,JVBERi0xLjQKJcOkw7zDtsOfCg==".into()
            },
            media_type: ct("application/pdf"),
            filename: Some("report.pdf".into()),
        })
    );
    assert_eq!(
        user[3],
        Part::url("https://charts.example.com/q3.png", ct("image/*"))
    );
    // A plain-text document becomes a base64 text/plain file; its text survives exactly.
    let Part::File(notes) = &user[4] else {
        panic!("{:?}", user[4])
    };
    assert_eq!(notes.media_type, ct("text/plain"));
    assert_eq!(notes.filename.as_deref(), Some("notes.txt"));

    let turn = &parsed[2].parts;
    assert_eq!(
        turn[0],
        Part::Reasoning(Reasoning {
            text: Some("I should fetch the exchange rate and the chart before comparing.".into()),
            signature: Some(
                "EqQBCkgIARABGAIiQL2k5Vx+fB0Fh9/KqXPj1wYtFmZ0ZWQgc2lnbmF0dXJl/+==".into()
            ),
            redacted: false,
        })
    );
    assert_eq!(
        turn[3],
        Part::tool_call(
            "toolu_01B2",
            "get_chart",
            json!({"quarter": 3, "series": ["revenue", "margin"]})
        )
    );
    let results: Vec<&ToolResult> = parsed[3]
        .parts
        .iter()
        .map(|p| match p {
            Part::ToolResult(r) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].content, vec![Part::text("0.094")]);
    assert_eq!(results[1].content.len(), 2);
    assert!(results[2].is_error);
    assert_eq!(
        parsed[4].parts[0],
        Part::Reasoning(Reasoning {
            text: None,
            signature: Some("EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj".into()),
            redacted: true,
        })
    );
    let kinds: Vec<&str> = parsed[6].parts.iter().map(Part::kind).collect();
    assert_eq!(kinds, ["provider", "provider", "text"]);
    assert!(
        matches!(&parsed[6].parts[1], Part::Provider(p) if p.provider == ANTHROPIC && p.kind == "web_search_tool_result")
    );

    let request = anthropic::to_request(&parsed).unwrap();
    assert_eq!(request.system.as_ref(), Some(&body["system"]));
    assert_eq!(request.messages, wire);
    assert_eq!(request.into_body("claude-sonnet-4-5", 2048), body);

    let stored = store(parsed).await;
    let again = anthropic::to_request(&stored).unwrap();
    assert_eq!(again.messages, wire);
    assert_eq!(again.system.as_ref(), Some(&body["system"]));
}

#[test]
fn anthropic_system_blocks_string_content_and_merging() {
    let system =
        json!([{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}]);
    let wire = vec![json!({"role": "user", "content": "plain string"})];
    let parsed = anthropic::from_request(Some(&system), &wire).unwrap();
    assert_eq!(
        parsed[0].parts,
        vec![Part::text("Rule one."), Part::text("Rule two.")]
    );
    assert_eq!(parsed[1].parts, vec![Part::text("plain string")]);
    let request = anthropic::to_request(&parsed).unwrap();
    assert_eq!(request.system, Some(system));
    // Content is always written as blocks.
    assert_eq!(
        request.messages,
        vec![json!({"role": "user", "content": [{"type": "text", "text": "plain string"}]})]
    );

    // Consecutive messages of one wire role merge; a tool message is a user turn, results
    // first; empty text and unsigned reasoning are not sent.
    let history = vec![
        NewMessage::with_parts(
            Role::Assistant,
            vec![
                Part::Reasoning(Reasoning {
                    text: Some("display only".into()),
                    ..Default::default()
                }),
                Part::text(""),
                Part::tool_call("t1", "f", json!(null)),
                Part::tool_call("t2", "f", json!([1, 2])),
            ],
        ),
        NewMessage::with_parts(
            Role::Tool,
            vec![
                Part::tool_result("t1", "one", false),
                Part::tool_result("t2", "two", false),
            ],
        ),
        NewMessage::new(Role::User, "and now?"),
    ];
    let request = anthropic::to_request(&history).unwrap();
    assert_eq!(request.system, None);
    assert_eq!(
        request.messages,
        vec![
            json!({"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "f", "input": {"arguments": [1, 2]}},
            ]}),
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
                {"type": "text", "text": "and now?"},
            ]}),
        ]
    );
}

#[test]
fn anthropic_keeps_blocks_a_file_part_cannot_hold() {
    let blocks = json!([
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
         "citations": {"enabled": true}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
         "title": "two\nlines"},
        {"type": "image", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}},
    ]);
    let wire = vec![json!({"role": "user", "content": blocks})];
    let parsed = anthropic::from_request(None, &wire).unwrap();
    assert!(
        parsed[0]
            .parts
            .iter()
            .all(|p| matches!(p, Part::Provider(pp) if pp.provider == ANTHROPIC))
    );
    assert_eq!(anthropic::to_request(&parsed).unwrap().messages, wire);
    for bad in [
        json!({"role": "user", "content": [{"type": "thinking", "thinking": "no signature"}]}),
        json!({"role": "user", "content": [{"type": "tool_use", "name": "f"}]}),
        json!({"role": "robot", "content": "x"}),
        json!({"role": "user", "content": [{"type": "image"}]}),
    ] {
        let err = anthropic::from_request(None, std::slice::from_ref(&bad)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
    }
    assert!(anthropic::from_request(Some(&json!(3)), &[]).is_err());
}

// ---------- ChatVault messages -> provider -> back ----------

/// A history in the form every reader produces (what a ChatVault app stores).
fn canonical_history() -> Vec<NewMessage> {
    vec![
        NewMessage::new(Role::System, "You help with the weather."),
        NewMessage::with_parts(
            Role::User,
            vec![
                Part::text("Forecast for this place? ✓"),
                Part::url("data:image/png;base64,iVBORw0KGgo=", ct("image/png")),
            ],
        ),
        NewMessage::with_parts(
            Role::Assistant,
            vec![
                Part::text("Checking."),
                Part::tool_call(
                    "call_1",
                    "forecast",
                    json!({"lat": 59.91, "lon": 10.75, "days": [1, 2], "big": 9007199254740993u64}),
                ),
            ],
        ),
        NewMessage::with_parts(
            Role::Tool,
            vec![Part::tool_result("call_1", "Sunny, 21°C", false)],
        ),
        NewMessage::new(Role::Assistant, "Sunny and 21°C."),
    ]
}

fn role_and_parts<M: llm::ChatMessage>(messages: &[M]) -> Vec<(Role, Vec<Part>)> {
    messages
        .iter()
        .map(|m| (m.role().clone(), m.parts().to_vec()))
        .collect()
}

#[test]
fn chatvault_history_survives_every_format() {
    let history = canonical_history();
    let expected = role_and_parts(&history);

    let chat = openai::to_messages(&history).unwrap();
    assert_eq!(
        role_and_parts(&openai::from_messages(&chat).unwrap()),
        expected
    );

    let items = responses::to_input_items(&history).unwrap();
    assert_eq!(
        role_and_parts(&responses::from_input_items(&items).unwrap()),
        expected
    );

    let request = anthropic::to_request(&history).unwrap();
    assert_eq!(
        role_and_parts(
            &anthropic::from_request(request.system.as_ref(), &request.messages).unwrap()
        ),
        expected
    );
}

#[test]
fn signed_reasoning_and_error_results_survive_anthropic() {
    let history = vec![
        NewMessage::new(Role::User, "Go"),
        NewMessage::with_parts(
            Role::Assistant,
            vec![
                Part::Reasoning(Reasoning {
                    text: Some("plan".into()),
                    signature: Some("c2lnbmF0dXJl\u{0}/+=".into()),
                    redacted: false,
                }),
                Part::Reasoning(Reasoning {
                    text: None,
                    signature: Some("cmVkYWN0ZWQ=".into()),
                    redacted: true,
                }),
                Part::tool_call("t", "run", json!({"x": "ü"})),
            ],
        ),
        NewMessage::with_parts(
            Role::Tool,
            vec![Part::ToolResult(ToolResult {
                call_id: "t".into(),
                content: vec![
                    Part::text("failed:"),
                    Part::url("https://example.com/trace.pdf", ct("application/pdf")),
                ],
                is_error: true,
            })],
        ),
    ];
    let request = anthropic::to_request(&history).unwrap();
    let back = anthropic::from_request(request.system.as_ref(), &request.messages).unwrap();
    assert_eq!(role_and_parts(&back), role_and_parts(&history));
}

#[test]
fn writers_leave_out_what_their_api_does_not_take() {
    let body = fixture("anthropic_messages.json");
    let parsed = anthropic::from_request(Some(&body["system"]), &array(&body, "messages")).unwrap();

    // To Chat Completions: thinking and Anthropic's server tools are left out, tool results
    // become tool messages (an error result as its text), files in results become notes.
    let mut chat_history = parsed.clone();
    // Chat Completions takes documents only as base64: the URL image is fine, so keep all.
    chat_history[1]
        .parts
        .retain(|p| !matches!(p, Part::File(f) if f.filename.as_deref() == Some("notes.txt")));
    let chat = openai::to_messages(&chat_history).unwrap();
    let roles: Vec<&str> = chat.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "tool",
            "tool",
            "assistant",
            "user",
            "assistant"
        ]
    );
    assert_eq!(
        chat[2]["content"],
        "Let me check the exchange rate and the charts first."
    );
    assert_eq!(chat[2]["tool_calls"].as_array().unwrap().len(), 3);
    assert_eq!(
        chat[2]["tool_calls"][1]["function"]["arguments"],
        r#"{"quarter":3,"series":["revenue","margin"]}"#
    );
    assert_eq!(
        chat[4]["content"],
        json!([{"type": "text", "text": "Chart for Q3:"},
               {"type": "text", "text": "[file (image/png) not shown: this API takes only text here]"}])
    );
    assert_eq!(chat[5]["content"], "Chart service timed out after 30 s");
    assert_eq!(
        chat[8]["content"],
        "Yes: Nordic sales rose again this quarter."
    );

    // To Responses: the same, as items.
    let items = responses::to_input_items(&chat_history).unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "message",
            "function_call",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output",
            "function_call_output",
            "message",
            "message",
            "message"
        ]
    );

    // OpenAI reasoning items are not sent to Anthropic.
    let openai_body = fixture("openai_responses.json");
    let from_openai = responses::from_input_items(&array(&openai_body, "input")).unwrap();
    let request = anthropic::to_request(&from_openai).unwrap();
    let text = serde_json::to_string(&request.messages).unwrap();
    assert!(!text.contains("encrypted_content"), "{text}");
    assert!(!text.contains("web_search_call"), "{text}");
    assert_eq!(request.system, Some(json!("You are a travel assistant.")));
}

#[test]
fn unresolved_attachments_and_impossible_shapes_are_typed_errors() {
    let file_id = FileId::parse("f1").unwrap();
    let history = vec![NewMessage::with_parts(
        Role::User,
        vec![Part::attachment(file_id, ct("image/png"))],
    )];
    for err in [
        openai::to_messages(&history).unwrap_err(),
        responses::to_input_items(&history).unwrap_err(),
        anthropic::to_request(&history).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("resolve_files"), "{err}");
    }
    // A document by URL has no Chat Completions form.
    let doc = vec![NewMessage::with_parts(
        Role::User,
        vec![Part::url(
            "https://example.com/a.pdf",
            ct("application/pdf"),
        )],
    )];
    let err = openai::to_messages(&doc).unwrap_err();
    assert!(err.to_string().contains("FileMode::Base64"), "{err}");
    // Unknown roles.
    let odd = vec![NewMessage::new("critic", "hm")];
    assert!(openai::to_messages(&odd).is_err());
    assert!(responses::to_input_items(&odd).is_err());
    assert!(anthropic::to_request(&odd).is_err());
    // A tool call outside an assistant message.
    let misplaced = vec![NewMessage::with_parts(
        Role::User,
        vec![Part::tool_call("c", "f", json!({}))],
    )];
    assert!(openai::to_messages(&misplaced).is_err());
    assert!(responses::to_input_items(&misplaced).is_err());
    assert!(anthropic::to_request(&misplaced).is_err());
}

#[test]
fn assistant_files_become_notes_and_misplaced_results_are_errors() {
    let history = vec![NewMessage::with_parts(
        Role::Assistant,
        vec![
            Part::text("Here is the chart."),
            Part::url("https://img.example.com/chart.png", ct("image/png")),
        ],
    )];
    let note = "[file at https://img.example.com/chart.png]";
    let chat = openai::to_messages(&history).unwrap();
    assert_eq!(
        chat[0]["content"],
        json!([{"type": "text", "text": "Here is the chart."}, {"type": "text", "text": note}])
    );
    let items = responses::to_input_items(&history).unwrap();
    assert_eq!(
        items[0]["content"][1],
        json!({"type": "output_text", "text": note})
    );
    let request = anthropic::to_request(&history).unwrap();
    assert_eq!(
        request.messages[0]["content"][1],
        json!({"type": "text", "text": note})
    );

    // Signed reasoning in a user message is not sent (Anthropic takes it from the
    // assistant only).
    let user_reasoning = vec![NewMessage::with_parts(
        Role::User,
        vec![
            Part::text("hi"),
            Part::Reasoning(Reasoning {
                text: Some("x".into()),
                signature: Some("sig".into()),
                redacted: false,
            }),
        ],
    )];
    assert_eq!(
        anthropic::to_request(&user_reasoning).unwrap().messages,
        vec![json!({"role": "user", "content": [{"type": "text", "text": "hi"}]})]
    );

    let misplaced = vec![NewMessage::with_parts(
        Role::Assistant,
        vec![Part::tool_result("c", "r", false)],
    )];
    for err in [
        openai::to_messages(&misplaced).unwrap_err(),
        responses::to_input_items(&misplaced).unwrap_err(),
        anthropic::to_request(&misplaced).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("assistant message"), "{err}");
    }
}

#[test]
fn usage_reads_from_each_response_shape() {
    use chatvault_core::Usage;
    let chat = json!({"id": "chatcmpl-1", "model": "gpt-4o", "choices": [],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                  "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}}});
    assert_eq!(
        openai::usage_from_response(&chat),
        Some(Usage {
            input_tokens: 1200,
            output_tokens: 300,
            cached_input_tokens: 1024,
            reasoning_tokens: 0,
            model: Some("gpt-4o".into()),
        })
    );
    let resp = json!({"model": "o4-mini", "usage": {"input_tokens": 10, "output_tokens": 500,
        "output_tokens_details": {"reasoning_tokens": 448}}});
    let u = responses::usage_from_response(&resp).unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.reasoning_tokens),
        (10, 500, 448)
    );
    let claude =
        json!({"model": "claude-sonnet-4-5", "usage": {"input_tokens": 3, "output_tokens": 9}});
    let u = anthropic::usage_from_response(&claude).unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (3, 9, 0)
    );
    // No usage: None, not zeros.
    assert_eq!(openai::usage_from_response(&json!({"model": "x"})), None);
    assert_eq!(
        anthropic::usage_from_response(&json!({"usage": null})),
        None
    );
}
