//! Unit tests of the model (and of the shared rules that need its private parts).

use super::*;
use crate::backend::check_replay;
use chrono::DateTime;

use crate::error::Error;
use crate::ids::{ContentType, ConversationId, FileId, UserId};

fn msgs(n: u64) -> Vec<Message> {
    (1..=n)
        .map(|i| {
            NewMessage::new(Role::User, format!("m{i}"))
                .into_message(i, i.checked_sub(1).filter(|&p| p > 0))
        })
        .collect()
}

fn seqs(p: &Page<Message>) -> Vec<u64> {
    p.items.iter().map(|m| m.seq).collect()
}

#[test]
fn auto_title_counts_grapheme_clusters() {
    assert_eq!(auto_title(""), None);
    let exactly_50 = "a".repeat(50);
    assert_eq!(auto_title(&exactly_50), Some(exactly_50));
    assert_eq!(
        auto_title(&"a".repeat(51)),
        Some(format!("{}...", "a".repeat(50)))
    );
    let emoji = "👋🏽".repeat(40); // 40 clusters of two scalars each
    assert_eq!(auto_title(&emoji), Some(emoji.clone()));
    let more = "👋🏽".repeat(60);
    let t = auto_title(&more).unwrap();
    assert_eq!(t, format!("{}...", "👋🏽".repeat(50)));
    // An accent is never cut from its letter.
    let accents = "e\u{301}".repeat(60);
    assert_eq!(
        auto_title(&accents),
        Some(format!("{}...", "e\u{301}".repeat(50)))
    );
}

#[test]
fn auto_titles_are_one_visible_line() {
    assert_eq!(
        auto_title("hi\0there\nfriend").as_deref(),
        Some("hi there friend")
    );
    assert_eq!(
        auto_title("one\u{2028}two\u{2029}three\r\n\tfour").as_deref(),
        Some("one two three four")
    );
    assert_eq!(
        auto_title("  lots   of\n\n space  ").as_deref(),
        Some("lots of space")
    );
    for blank in [
        "",
        "   ",
        "\u{200B}\u{200B}",
        "\u{FEFF}\n\u{2028}",
        "\u{301}",
        "\u{E0041}",
    ] {
        assert_eq!(auto_title(blank), None, "{blank:?}");
    }
    assert_eq!(
        auto_title("zero\u{200B}width").as_deref(),
        Some("zerowidth")
    );
    // A zero-width joiner inside an emoji sequence is kept.
    assert_eq!(auto_title("👨‍👩‍👧").as_deref(), Some("👨‍👩‍👧"));
}

#[test]
fn append_assigns_seq_and_titles_from_first_user_message() {
    let mut rec = ConversationRecord::new(Some(UserId::parse("u").unwrap()));
    let at = rec.last_active + chrono::Duration::seconds(5);
    let out = rec
        .apply_append(
            vec![
                NewMessage::new(Role::System, "be nice"),
                NewMessage::new(Role::User, "first question"),
                NewMessage::new(Role::User, "second"),
            ],
            at,
        )
        .unwrap();
    assert_eq!(out.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(rec.title.as_deref(), Some("first question"));
    assert_eq!(rec.message_count, 3);
    assert_eq!(rec.last_active, at);
    assert_eq!(rec.version, 2);
    // An explicit title is never replaced, and last_active never goes back.
    rec.title = Some("mine".into());
    let earlier = at - chrono::Duration::seconds(60);
    let out = rec
        .apply_append(vec![NewMessage::new(Role::User, "x")], earlier)
        .unwrap();
    assert_eq!(out[0].seq, 4);
    assert_eq!(rec.title.as_deref(), Some("mine"));
    assert_eq!(rec.last_active, at);
}

#[test]
fn blank_first_messages_do_not_block_the_title() {
    let mut rec = ConversationRecord::new(None);
    rec.apply_append(vec![NewMessage::new(Role::User, "a\0b")], now())
        .unwrap();
    rec.validate().expect("an auto-title always validates");
    let mut blank = ConversationRecord::new(None);
    blank
        .apply_append(vec![NewMessage::new(Role::User, "  \n \u{200B}")], now())
        .unwrap();
    assert_eq!(blank.title, None, "a blank message gives no title");
    blank
        .apply_append(vec![NewMessage::new(Role::User, "real question")], now())
        .unwrap();
    assert_eq!(blank.title.as_deref(), Some("real question"));
}

#[test]
fn usage_totals_follow_appends_and_updates() {
    use crate::model::{MessageUpdate, Usage};
    let mut rec = ConversationRecord::new(None);
    let mut out = rec
        .apply_append(
            vec![
                NewMessage::new(Role::Assistant, "a").with_usage(Usage::new("m", 10, 5)),
                NewMessage::new(Role::Assistant, "b").with_usage(Usage::new("m", 1, 2)),
            ],
            now(),
        )
        .unwrap();
    assert_eq!((rec.usage.input_tokens, rec.usage.output_tokens), (11, 7));
    assert_eq!(rec.usage.model, None);
    let update = MessageUpdate {
        usage: Some(Usage::new("m", 20, 30)),
        ..Default::default()
    };
    rec.apply_message_update(&mut out[0], &update, now());
    assert_eq!((rec.usage.input_tokens, rec.usage.output_tokens), (21, 32));
    assert_eq!(out[0].revision, 2);
}

#[test]
fn cursors_keep_sub_microsecond_order() {
    let t = |nanos| DateTime::from_timestamp(1_700_000_000, nanos).unwrap();
    let summary = |id: &str, nanos| ConversationSummary {
        id: ConversationId::parse(id).unwrap(),
        user_id: None,
        title: None,
        created_at: t(nanos),
        last_active: t(nanos),
        archived: false,
        message_count: 0,
        file_count: 0,
        usage: Usage::default(),
    };
    // Same microsecond, different nanoseconds: listed a, then b.
    let all = vec![summary("b", 100), summary("a", 500)];
    let p1 = crate::backend::paginate(all.clone(), &ListOptions::new().limit(1).unwrap()).unwrap();
    assert_eq!(p1.items[0].id, "a");
    let next = ListOptions::new()
        .limit(1)
        .and_then(|o| o.cursor(&p1.next_cursor.unwrap()))
        .unwrap();
    let p2 = crate::backend::paginate(all, &next).unwrap();
    assert_eq!(
        p2.items.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
}

#[test]
fn append_normalises_roles_built_by_hand() {
    let mut rec = ConversationRecord::new(None);
    let mut m = NewMessage::new(Role::Assistant, "hello");
    m.role = Role::Other("User".into());
    let out = rec
        .apply_append(vec![m, NewMessage::new("Critic", "meh")], now())
        .unwrap();
    assert_eq!(out[0].role, Role::User);
    assert_eq!(
        rec.title.as_deref(),
        Some("hello"),
        "a user message, so a title"
    );
    assert_eq!(
        out[1].role,
        Role::Other("Critic".into()),
        "unknown roles kept as given"
    );
    let json = serde_json::to_string(&out[0]).unwrap();
    assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), out[0]);
}

#[test]
fn ranges_select_by_seq() {
    let m = msgs(10);
    assert_eq!(
        seqs(&MessageRange::all().select(&m)),
        (1..=10).collect::<Vec<_>>()
    );
    let p = MessageRange::after(3).limit(4).select(&m);
    assert_eq!(seqs(&p), vec![4, 5, 6, 7]);
    assert_eq!(p.next_cursor.as_deref(), Some("7"));
    let p2 = MessageRange::after(3)
        .limit(4)
        .continue_from("7")
        .unwrap()
        .select(&m);
    assert_eq!(seqs(&p2), vec![8, 9, 10]);
    assert_eq!(p2.next_cursor, None);
    let tail = MessageRange::last(3).select(&m);
    assert_eq!(seqs(&tail), vec![8, 9, 10]);
    assert_eq!(tail.next_cursor.as_deref(), Some("8"));
    let older = MessageRange::last(3).continue_from("8").unwrap().select(&m);
    assert_eq!(seqs(&older), vec![5, 6, 7]);
    assert_eq!(seqs(&MessageRange::last(50).select(&m)).len(), 10);
    assert!(MessageRange::last(0).select(&m).items.is_empty());
    assert!(MessageRange::after(10).select(&m).items.is_empty());
    assert!(MessageRange::after(u64::MAX).select(&m).items.is_empty());
    assert!(MessageRange::before(1).select(&m).items.is_empty());
    assert_eq!(seqs(&MessageRange::before(3).select(&m)), vec![1, 2]);
    assert!(MessageRange::all().select(&[]).items.is_empty());
    assert!(MessageRange::last(5).select(&[]).items.is_empty());
}

#[test]
fn cursor_round_trips_and_rejects_garbage() {
    let c = ListCursor {
        last_active: now(),
        id: ConversationId::new(),
    };
    assert_eq!(ListCursor::decode(&c.encode()).unwrap(), c);
    for bad in [
        "",
        "v1.",
        "v1.x.y",
        "v2.1.abc",
        "v1.1.a/b",
        "v1.99999999999999999999.a",
    ] {
        assert!(
            matches!(ListCursor::decode(bad), Err(Error::InvalidInput { .. })),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn role_serde_keeps_unknown_roles() {
    let r: Role = serde_json::from_str("\"Critic\"").unwrap();
    assert_eq!(r, Role::Other("Critic".into()));
    assert_eq!(serde_json::to_string(&r).unwrap(), "\"Critic\"");
    let u: Role = serde_json::from_str("\"USER\"").unwrap();
    assert_eq!(u, Role::User);
}

#[test]
fn metadata_numbers_round_trip_exactly_through_json() {
    let json = r#"{"f":0.1,"tiny":1e-300,"big":18446744073709551615,"neg":-9223372036854775808,"p53":9007199254740993,"pi":3.141592653589793}"#;
    let m: Metadata = serde_json::from_str(json).unwrap();
    let back: Metadata = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(m, back);
    assert_eq!(back["big"].as_u64(), Some(u64::MAX));
    assert_eq!(back["p53"].as_u64(), Some(9_007_199_254_740_993));
    assert_eq!(back["f"].as_f64(), Some(0.1));
}

// Messages and parts.

#[test]
fn every_part_kind_round_trips() {
    let parts = vec![
        Part::text("héllo ✓"),
        Part::attachment(
            FileId::parse("f1").unwrap(),
            Some(ContentType::parse("image/png").unwrap()),
        ),
        Part::url("https://example.com/a.png", None),
        Part::tool_call(
            "c1",
            "f",
            serde_json::json!({"n": 9007199254740993u64, "x": 0.1}),
        ),
        Part::ToolResult(ToolResult {
            call_id: "c1".into(),
            content: vec![Part::text("ok")],
            is_error: true,
        }),
        Part::Reasoning(Reasoning {
            text: Some("hmm".into()),
            signature: Some("Eq+/=\u{0}sig".into()),
            redacted: false,
        }),
        Part::Provider(ProviderPart {
            provider: "openai".into(),
            kind: "web_search_call".into(),
            data: serde_json::json!({"id": "ws_1"}),
        }),
    ];
    let json = serde_json::to_string(&parts).unwrap();
    let back: Vec<Part> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, parts);
}

#[test]
fn unknown_parts_are_kept_exactly() {
    let json = r#"{"type":"hologram","frames":[1,2,3],"x":{"y":null}}"#;
    let part: Part = serde_json::from_str(json).unwrap();
    assert!(matches!(part, Part::Unknown(_)));
    assert_eq!(part.kind(), "hologram");
    assert_eq!(
        serde_json::to_value(&part).unwrap(),
        serde_json::from_str::<serde_json::Value>(json).unwrap()
    );
    assert!(serde_json::from_str::<Part>(r#"{"text":"no type"}"#).is_err());
    assert!(serde_json::from_str::<Part>(r#"{"type":"text"}"#).is_err());
}

#[test]
fn v0_1_messages_read_as_one_text_part() {
    let json = r#"{"id":"m1","seq":3,"role":"user","content":"old text","created_at":"2025-01-02T03:04:05.123456Z","metadata":{"a":1}}"#;
    let m: Message = serde_json::from_str(json).unwrap();
    assert_eq!(m.parts, vec![Part::text("old text")]);
    assert_eq!(m.status, MessageStatus::Complete);
    assert_eq!(m.revision, 1);
    assert_eq!(m.content(), "old text");
}

#[test]
fn status_reads_interrupted_after_the_lease() {
    let t = now();
    let mut m = NewMessage::with_parts("assistant", vec![])
        .with_status(
            MessageStatus::Streaming,
            Some(t + chrono::Duration::seconds(30)),
        )
        .into_message(1, None);
    assert_eq!(m.status_at(t), MessageStatus::Streaming);
    assert_eq!(
        m.status_at(t + chrono::Duration::seconds(31)),
        MessageStatus::Interrupted
    );
    m.apply_update(
        &MessageUpdate {
            status: Some(MessageStatus::Complete),
            ..Default::default()
        },
        t,
    );
    assert_eq!(
        m.status_at(t + chrono::Duration::days(1)),
        MessageStatus::Complete
    );
    assert_eq!(m.revision, 2);
    assert_eq!(m.lease_expires_at, None);
}

#[test]
fn depth_is_bounded() {
    let mut v = serde_json::json!(1);
    for _ in 0..MAX_JSON_DEPTH {
        v = serde_json::json!([v]);
    }
    let mut meta = Metadata::new();
    meta.insert("deep".into(), v);
    let m = NewMessage::new("user", "x").with_metadata(meta);
    assert!(matches!(m.validate(), Err(Error::InvalidInput { .. })));
    let mut ok = serde_json::json!(1);
    for _ in 0..MAX_JSON_DEPTH - 2 {
        ok = serde_json::json!([ok]);
    }
    let mut meta = Metadata::new();
    meta.insert("deep".into(), ok);
    NewMessage::new("user", "x")
        .with_metadata(meta)
        .validate()
        .unwrap();
}

#[test]
fn replay_rules() {
    let a = NewMessage::new("user", "a");
    let b = NewMessage::new("user", "b");
    let stored_a = a.clone().into_message(1, None);
    let stored_b = b.clone().into_message(2, Some(1));
    assert_eq!(
        check_replay(&[a.clone(), b.clone()], vec![None, None]).unwrap(),
        None
    );
    assert_eq!(
        check_replay(
            &[a.clone(), b.clone()],
            vec![Some(stored_a.clone()), Some(stored_b.clone())]
        )
        .unwrap(),
        Some(vec![stored_a.clone(), stored_b])
    );
    let mut changed = a.clone();
    changed.parts = vec![Part::text("other")];
    assert!(matches!(
        check_replay(&[changed], vec![Some(stored_a.clone())]),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        check_replay(&[a.clone(), b], vec![Some(stored_a), None]),
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        check_replay(&[a.clone(), a], vec![None, None]),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn text_json_bound_is_never_below_the_json_size() {
    let long_id: crate::ids::MessageId = "m".repeat(128).parse().unwrap();
    let worst = "\u{1}\"\\\n".repeat(50);
    let texts = [
        "",
        "Hello, vault!",
        worst.as_str(),
        "héllo \u{1f600} \u{7f}",
    ];
    let mut checked = 0;
    for text in texts {
        for role in [Role::User, Role::Other("\u{2}\u{3}".repeat(20))] {
            for parent in [Parent::Active, Parent::Root, Parent::Seq(u64::MAX)] {
                let m = NewMessage::with_parts(role.clone(), vec![Part::text(text); 3])
                    .with_parent(parent)
                    .with_id(long_id.clone());
                let m = NewMessage {
                    created_at: DateTime::<chrono::Utc>::MAX_UTC,
                    status: MessageStatus::Streaming,
                    ..m
                };
                let bound = m.text_json_bound().unwrap();
                assert!(
                    bound >= m.json_len(),
                    "{bound} < {} for {m:?}",
                    m.json_len()
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 24);
    // Anything but plain text is measured exactly.
    let mut with_metadata = NewMessage::new(Role::User, "hi");
    with_metadata.metadata.insert("k".into(), 1.into());
    assert_eq!(with_metadata.text_json_bound(), None);
}

#[test]
fn duplicate_ids_are_found_in_small_and_large_batches() {
    use crate::backend::check_unique_ids;
    for n in [2usize, 16, 17, 100] {
        let mut batch: Vec<NewMessage> = (0..n)
            .map(|i| NewMessage::new(Role::User, format!("m{i}")))
            .collect();
        assert!(check_unique_ids(&batch).is_ok(), "{n} distinct ids");
        batch[n - 1].id = batch[n / 2 - 1].id.clone();
        let err = check_unique_ids(&batch).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{n}: {err:?}");
    }
    assert!(check_unique_ids(&[]).is_ok());
}

#[test]
fn now_keeps_whole_microseconds_only() {
    use chrono::{SubsecRound, Timelike};
    for _ in 0..1_000 {
        let t = now();
        assert_eq!(t.nanosecond() % 1_000, 0, "{t:?}");
        assert_eq!(t, t.trunc_subsecs(6));
    }
}

#[test]
fn new_ids_are_lowercase_hyphenated_uuid_v7() {
    let id = crate::ids::MessageId::new();
    let parsed = uuid::Uuid::parse_str(id.as_str()).expect("a UUID");
    assert_eq!(parsed.get_version_num(), 7);
    assert_eq!(id.as_str(), parsed.hyphenated().to_string());
}
