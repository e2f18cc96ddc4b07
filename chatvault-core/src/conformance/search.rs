//! The search checks of a [`MessagesBackend`] (re-exported from
//! [`messages`](super::messages)): what a search finds, and that every query string is
//! answered as the core's rule ([`SearchQuery::parse`]) decides.

use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::{Strategy, any};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use tokio::runtime::Handle;

use super::SuiteConfig;
use super::util::{assert_kind, fresh_user, new_conversation, ok};
use crate::backend::MessagesBackend;
use crate::backend::MessagesBackendExt;
use crate::error::ErrorKind;
use crate::ids::{ConversationId, MessageId, UserId};
use crate::model::NewMessage;
use crate::model::SearchQuery;
use crate::model::{ConversationPatch, Role, SearchOptions};

fn user_msg(text: impl Into<String>) -> NewMessage {
    NewMessage::new(Role::User, text)
}

/// With `search`: a user's search finds a word in text parts of their messages only (never
/// another user's), best matches first in pages that neither skip nor repeat, leaves archived
/// conversations out unless asked, and finds nothing for an absent word. Without: every
/// search is NotSupported.
pub async fn search(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let alice = fresh_user("alice");
    let word = format!("quokka{}", uuid::Uuid::now_v7().simple());
    if !b.capabilities().search {
        assert_kind(
            b.search(&alice, &word, &SearchOptions::new()).await,
            ErrorKind::NotSupported,
            "search without the search capability",
        );
        return;
    }
    let mallory = fresh_user("mallory");
    let c1 = new_conversation(b, Some(&alice)).await;
    let c2 = new_conversation(b, Some(&alice)).await;
    let theirs = new_conversation(b, Some(&mallory)).await;
    let mut expected = HashSet::new();
    for (conversation, texts) in [
        (
            &c1,
            vec![
                format!("I saw a {word} today"),
                "nothing here".into(),
                format!("{word}!"),
            ],
        ),
        (
            &c2,
            vec![
                format!("Another {word} story"),
                format!("and a {word} again"),
            ],
        ),
    ] {
        let batch: Vec<NewMessage> = texts.into_iter().map(user_msg).collect();
        let a = ok(b.append_messages(&conversation.id, batch).await, "append");
        expected.extend(
            a.messages
                .iter()
                .filter(|m| m.content().contains(&word))
                .map(|m| m.id.clone()),
        );
    }
    ok(
        b.append_messages(&theirs.id, vec![user_msg(format!("mallory's {word}"))])
            .await,
        "append",
    );

    let mut options = ok(SearchOptions::new().limit(2), "limit");
    let mut found = Vec::new();
    for _ in 0..100 {
        let page = ok(b.search(&alice, &word, &options).await, "search");
        assert!(page.items.len() <= 2, "a search page longer than its limit");
        for hit in &page.items {
            assert_eq!(
                hit.conversation.user_id.as_ref(),
                Some(&alice),
                "a search must never return another user's message"
            );
            assert!(
                hit.message.content().to_lowercase().contains(&word),
                "a hit must contain the word: {:?}",
                hit.message.content()
            );
        }
        let empty = page.items.is_empty();
        found.extend(page.items.into_iter().map(|h| h.message.id));
        match page.next_cursor {
            Some(c) => {
                assert!(!empty, "a search page with a cursor must not be empty");
                options = ok(options.cursor(&c), "cursor");
            }
            None => break,
        }
    }
    let unique: HashSet<MessageId> = found.iter().cloned().collect();
    assert_eq!(unique.len(), found.len(), "search pages repeated a hit");
    assert_eq!(
        unique, expected,
        "search must find each of alice's 4 messages with the word"
    );

    let m = ok(
        b.search(&mallory, &word, &SearchOptions::new()).await,
        "search",
    );
    assert_eq!(m.items.len(), 1, "mallory finds only her own message");
    assert_eq!(m.items[0].conversation.id, theirs.id);
    archived_and_absent(b, &alice, &word, &c1.id, &c2.id).await;
}

/// The end of [`search`]: after `archived` is archived, only `active`'s 2 hits are found,
/// unless archived ones are asked for (4); an absent word finds nothing.
async fn archived_and_absent(
    b: &dyn MessagesBackend,
    alice: &UserId,
    word: &str,
    active: &ConversationId,
    archived: &ConversationId,
) {
    ok(
        b.update(
            archived,
            &ConversationPatch {
                archived: Some(true),
                ..Default::default()
            },
        )
        .await,
        "archive",
    );
    let found = ok(b.search(alice, word, &SearchOptions::new()).await, "search");
    assert!(
        found.items.iter().all(|h| &h.conversation.id == active),
        "archived conversations are left out of a search unless asked"
    );
    assert_eq!(found.items.len(), 2);
    let mut with_archived = SearchOptions::new();
    with_archived.include_archived = true;
    let all = ok(b.search(alice, word, &with_archived).await, "search");
    assert_eq!(all.items.len(), 4, "include_archived finds them again");
    let nothing = ok(
        b.search(
            alice,
            &format!("absent{}", uuid::Uuid::now_v7().simple()),
            &SearchOptions::new(),
        )
        .await,
        "search for an absent word",
    );
    assert!(nothing.items.is_empty() && !nothing.has_more());
}

/// What a query failure reads like (`suite_catches` looks for it).
const RULE: &str =
    "a search query must give results or InvalidInput, as SearchQuery::parse decides";

/// Texts stored for the searching user, so that queries have something to match (and the
/// backend something to make snippets of).
const STORED: [&str; 3] = [
    "a \"quoted\" OR NEAR(word*) text:column ^start -minus (paren) 'single' back\\slash AND NOT",
    "Straße café naïve 中文 🙂 zero\u{200B}width a:* & b | !c <-> 100% _under_",
    "tabs\tand\nnew lines\r\n; DROP TABLE chatvault_messages; --",
];

/// The fixed part of [`nasty_queries`].
const NASTY: &[&str] = &[
    "",
    " ",
    "\t\n\r ",
    "\u{3000}\u{A0}",
    "\0",
    "a\0b",
    "\0\"",
    "\"\0",
    "\u{1}",
    "\u{8}",
    "\u{1B}[31m",
    "\u{7F}",
    "\u{85}",
    "\u{9F}",
    "\"",
    "\"\"",
    "\"\"\"",
    "\"unterminated",
    "say \"hi\"",
    "'",
    "''",
    "a'b",
    "\\",
    "\\\"",
    "`",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(",
    "NEAR(a b)",
    "NEAR(a b, 2)",
    "a AND",
    "OR b",
    "NOT NOT",
    "a OR b NOT c",
    "a + b",
    "*",
    "a*",
    "*a",
    "word*",
    "^",
    "^a",
    ":",
    "a:b",
    "text:word",
    "body:x",
    "{text body}: x",
    "rowid:1",
    "-",
    "-a",
    "a - b",
    "(",
    ")",
    "()",
    "(a OR b",
    "a)",
    "[",
    "]",
    "!",
    "!!!",
    "&",
    "|",
    "a & b | !c",
    "<->",
    "a <-> b",
    "<2>",
    "a:*",
    "%",
    "_",
    "a%b",
    "100%",
    "é",
    "ß",
    "İ",
    "ﬁ",
    "中文",
    "🙂",
    "\u{200B}",
    "\u{FEFF}",
    "\u{202E}abc",
    "\u{2028}",
    "\u{E000}",
    "\u{10FFFF}",
    "SELECT * FROM chatvault_messages; --",
    "'; DROP TABLE chatvault_messages; --",
    "\"; --",
    "quoted",
    "QUOTED \"quoted\" quoted*",
];

/// Queries every searching backend must answer as the rule decides: blanks, NUL and other
/// control characters, lone and doubled quotes, FTS5, tsquery and LIKE syntax, column
/// filters, SQL, odd Unicode, and lengths at, over and far over the limit.
pub fn nasty_queries() -> Vec<String> {
    let mut queries: Vec<String> = NASTY.iter().map(|q| (*q).to_owned()).collect();
    let max = SearchQuery::MAX_BYTES;
    queries.extend([
        "a ".repeat(max / 2),
        "a ".repeat(max / 2) + "b",
        "\"".repeat(max),
        "(".repeat(max),
        "NEAR(".repeat(max / 5),
        "word* OR ".repeat(max / 9),
        "é".repeat(max / 2),
        "é".repeat(max / 2 + 1),
        "x".repeat(100 * 1024),
    ]);
    queries
}

/// Every query of [`nasty_queries`] gives what [`SearchQuery::parse`] decides: a page of
/// results for a query it accepts, InvalidInput for one it refuses; never another error,
/// never a panic. Without `search`: NotSupported (or InvalidInput for a refused query).
pub async fn search_answers_nasty_queries(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let user = seeded_user(&backend).await;
    let mut problems = Vec::new();
    for query in nasty_queries() {
        problems.extend(misanswer(&backend, &user, &query).await);
    }
    if !problems.is_empty() {
        panic!(
            "{RULE}; {} queries misanswered:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

/// The same for [`SuiteConfig::search_cases`] arbitrary strings (a proptest property:
/// any characters, mixed with query syntax, control characters and white space, and
/// lengths around the limit), shrunk to a small failing query when one fails. Skipped
/// without `search`, where one query must be NotSupported. The property runs on a blocking
/// thread of the runtime (proptest's runner is synchronous), each search on the runtime.
pub async fn search_answers_arbitrary_queries(
    backend: Arc<dyn MessagesBackend>,
    config: SuiteConfig,
) {
    if !backend.capabilities().search {
        let user = fresh_user("searcher");
        assert_kind(
            backend.search(&user, "word", &SearchOptions::new()).await,
            ErrorKind::NotSupported,
            "search without the search capability",
        );
        return;
    }
    let user = seeded_user(&backend).await;
    let runtime = Handle::current();
    let property = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: config.search_cases,
            max_shrink_iters: 1024,
            failure_persistence: None,
            ..Config::default()
        });
        runner.run(&arbitrary_query(), |query| {
            match runtime.block_on(misanswer(&backend, &user, &query)) {
                None => Ok(()),
                Some(problem) => Err(TestCaseError::fail(problem)),
            }
        })
    });
    match property.await {
        Ok(Ok(())) => {}
        Ok(Err(TestError::Fail(problem, _))) => panic!("{RULE}: {problem}"),
        Ok(Err(TestError::Abort(why))) => panic!("the search property test gave up: {why}"),
        Err(e) => panic!("the search property test did not finish: {e}"),
    }
}

/// A fresh user with [`STORED`] messages when the backend searches.
async fn seeded_user(backend: &Arc<dyn MessagesBackend>) -> UserId {
    let user = fresh_user("searcher");
    if backend.capabilities().search {
        let b = backend.as_ref();
        let c = new_conversation(b, Some(&user)).await;
        let batch = STORED.iter().map(|t| user_msg(*t)).collect();
        ok(b.append_messages(&c.id, batch).await, "append");
    }
    user
}

/// Pieces of generated queries: the syntax of the query languages backends use, control
/// and white-space characters, and words that the stored texts hold.
const PIECES: &[&str] = &[
    "\"", "'", "`", "*", "^", ":", "-", "+", "(", ")", "{", "}", "[", "]", ",", "!", "&", "|",
    "<->", "<2>", "%", "_", "\\", ";", "--", "/*", "AND", "OR", "NOT", "NEAR", "NEAR(", "text:",
    "body:", "quoted", "word", "a", "é", "ß", "中文", "🙂", "\u{200B}", "\u{FEFF}", "\u{202E}",
    " ", " ", " ", "\t", "\n", "\r", "\u{3000}", "\u{A0}", "\0", "\u{1}", "\u{1B}", "\u{7F}",
    "\u{85}", "\u{9F}",
];

/// Arbitrary strings, most made of [`PIECES`] and arbitrary characters, some around or
/// over the length limit.
fn arbitrary_query() -> impl Strategy<Value = String> {
    let piece = proptest::prop_oneof![
        4 => proptest::sample::select(PIECES).prop_map(str::to_owned),
        2 => any::<char>().prop_map(String::from),
        1 => "[a-zA-Z0-9]{1,12}",
    ];
    proptest::prop_oneof![
        6 => proptest::collection::vec(piece.clone(), 0..16).prop_map(|p| p.concat()),
        2 => any::<String>(),
        1 => proptest::collection::vec(piece, 0..800).prop_map(|p| p.concat()),
    ]
}

/// How `backend` misanswers `query`, if it does: the search runs in a task of its own, so
/// that a panic is reported with its query.
async fn misanswer(
    backend: &Arc<dyn MessagesBackend>,
    user: &UserId,
    query: &str,
) -> Option<String> {
    let searches = backend.capabilities().search;
    let refused = SearchQuery::parse(query).is_err();
    let (b, u, q) = (Arc::clone(backend), user.clone(), query.to_owned());
    let task = tokio::spawn(async move { b.search(&u, &q, &SearchOptions::new()).await });
    let got = match task.await {
        Ok(got) => got,
        Err(e) => return Some(format!("search for {} panicked: {e}", shown(query))),
    };
    let fine = match &got {
        Ok(_) => searches && !refused,
        Err(e) => match e.kind() {
            ErrorKind::InvalidInput => refused,
            ErrorKind::NotSupported => !searches,
            _ => false,
        },
    };
    if fine {
        return None;
    }
    let wanted = match (refused, searches) {
        (true, _) => "an InvalidInput error (the rule refuses it)",
        (false, true) => "a page of results (the rule accepts it)",
        (false, false) => "a NotSupported error (the backend declares no search)",
    };
    let got = match got {
        Ok(page) => format!("a page of {} hits", page.items.len()),
        Err(e) => format!("a {:?} error: {e}", e.kind()),
    };
    Some(format!(
        "search for {}: expected {wanted}, got {got}",
        shown(query)
    ))
}

/// A query as a failure shows it: in Rust escapes, long ones cut to their first 120
/// characters.
fn shown(query: &str) -> String {
    let chars = query.chars().count();
    if chars <= 120 {
        format!("{query:?}")
    } else {
        let head: String = query.chars().take(120).collect();
        format!("{head:?}... ({chars} characters, {} bytes)", query.len())
    }
}
