//! The branch routes over real HTTP (edit, regenerate, siblings, switch, rewind, fork, and
//! `GET .../messages?leaf=`), on the memory and the local backends.

// Helpers outside #[test] fns: their unwraps are test assertions too.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::HeaderName;
use chatvault_axum::{ChatVaultApi, HeaderIdentity};
use chatvault_core::ChatVault;
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use common::{PREFIX, problem};
use serde_json::{Value, json};

/// A server over `vault`, with a client that signs in by the `x-user` header.
struct Api {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Api {
    async fn serve(vault: ChatVault) -> Api {
        let router = ChatVaultApi::new(vault)
            .identity(HeaderIdentity::new(HeaderName::from_static("x-user")))
            .into_router()
            .unwrap();
        let app = axum::Router::new().nest(PREFIX, router);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Api {
            base: format!("http://{addr}{PREFIX}"),
            client: reqwest::Client::new(),
            task,
        }
    }

    fn request(&self, method: &str, user: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("x-user", user)
    }

    /// The JSON answer of a request that must answer `status`.
    async fn json(&self, request: reqwest::RequestBuilder, status: u16) -> Value {
        let res = request.send().await.unwrap();
        let url = res.url().clone();
        assert_eq!(
            res.status().as_u16(),
            status,
            "{url}: {:?}",
            res.text().await
        );
        res.json().await.unwrap()
    }

    async fn get(&self, user: &str, path: &str) -> Value {
        self.json(self.request("GET", user, path), 200).await
    }

    /// `POST path` with a JSON body; must answer `status`.
    async fn post(&self, user: &str, path: &str, body: Value, status: u16) -> Value {
        self.json(self.request("POST", user, path).json(&body), status)
            .await
    }

    /// A conversation of `user` holding these (role, text) messages: its id and the
    /// messages as stored.
    async fn conversation(&self, user: &str, messages: &[(&str, &str)]) -> (String, Vec<Value>) {
        let c = self
            .post(user, "/conversations", json!({ "title": "Trip" }), 201)
            .await;
        let id = c["id"].as_str().unwrap().to_owned();
        let mut stored = Vec::new();
        for (role, text) in messages {
            let path = format!("/conversations/{id}/messages");
            let body = json!({ "role": role, "text": text });
            stored.push(self.post(user, &path, body, 201).await);
        }
        (id, stored)
    }

    /// The texts of the active path (or of `?leaf=`), as `GET .../messages` pages them.
    async fn texts(&self, id: &str, query: &str) -> Vec<String> {
        let page = self
            .get("alice", &format!("/conversations/{id}/messages{query}"))
            .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The conversation's record as `GET /conversations/{id}` shows it.
    async fn record(&self, id: &str) -> Value {
        self.get("alice", &format!("/conversations/{id}"))
            .await
            .get("conversation")
            .cloned()
            .unwrap()
    }
}

/// The route of `action` on message `message` of conversation `id`.
fn at(id: &str, message: &Value, action: &str) -> String {
    format!(
        "/conversations/{id}/messages/{}/{action}",
        message["id"].as_str().unwrap()
    )
}

const TURNS: &[(&str, &str)] = &[
    ("user", "Where should we eat?"),
    ("assistant", "The fish market."),
    ("user", "Is it open on Sundays?"),
    ("assistant", "Yes, from noon."),
];

/// Edit, regenerate, siblings, switch, rewind, paging another branch and fork, each
/// answer checked, on one backend. Returns the conversation's id with the active leaf at
/// the regenerated reply (seq 7).
async fn edit_switch_rewind_and_fork(api: &Api) -> String {
    let (id, m) = api.conversation("alice", TURNS).await;
    // The views carry the tree: the message each follows, and one version of each.
    assert_eq!(m[0]["parent"], Value::Null);
    assert_eq!(m[1]["parent"], 1);
    assert_eq!(m[3]["parent"], 3);
    for message in &m {
        assert_eq!(
            (
                message["sibling_index"].clone(),
                message["sibling_count"].clone()
            ),
            (json!(0), json!(1))
        );
    }
    let record = api.record(&id).await;
    assert_eq!(record["active_leaf"], 4);
    assert_eq!(record["path_length"], 4);

    // Edit the second question: a sibling of it, with the old question's role.
    let edited = api
        .post(
            "alice",
            &at(&id, &m[2], "edit"),
            json!({ "text": "Is it open on Mondays?" }),
            201,
        )
        .await;
    assert_eq!(edited["seq"], 5);
    assert_eq!(edited["role"], "user");
    assert_eq!(edited["parent"], 2);
    assert_eq!(edited["sibling_index"], 1);
    assert_eq!(edited["sibling_count"], 2);
    assert_eq!(
        api.texts(&id, "").await,
        [
            "Where should we eat?",
            "The fish market.",
            "Is it open on Mondays?"
        ]
    );
    let record = api.record(&id).await;
    assert_eq!(
        (record["active_leaf"].clone(), record["path_length"].clone()),
        (json!(5), json!(3))
    );
    assert_eq!(record["message_count"], 5);
    // The page's views say where each message stands among its versions.
    let page = api
        .get("alice", &format!("/conversations/{id}/messages"))
        .await;
    let versions: Vec<(Value, Value)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["sibling_index"].clone(), v["sibling_count"].clone()))
        .collect();
    assert_eq!(
        versions,
        [
            (json!(0), json!(1)),
            (json!(0), json!(1)),
            (json!(1), json!(2))
        ]
    );

    // A reply on the new branch, then a regenerated one: its sibling.
    let path = format!("/conversations/{id}/messages");
    let body = json!({ "role": "assistant", "text": "Closed on Mondays." });
    let reply = api.post("alice", &path, body, 201).await;
    assert_eq!(
        (reply["seq"].clone(), reply["parent"].clone()),
        (json!(6), json!(5))
    );
    let body =
        json!({ "text": "Mondays: closed.", "usage": { "input_tokens": 9, "output_tokens": 3 } });
    let again = api
        .post("alice", &at(&id, &reply, "regenerate"), body, 201)
        .await;
    assert_eq!(again["seq"], 7);
    assert_eq!(again["role"], "assistant");
    assert_eq!(again["parent"], 5);
    assert_eq!(
        (
            again["sibling_index"].clone(),
            again["sibling_count"].clone()
        ),
        (json!(1), json!(2))
    );
    assert_eq!(again["usage"]["output_tokens"], 3);
    assert_eq!(api.texts(&id, "").await.last().unwrap(), "Mondays: closed.");

    // The versions of the second question, from either of them.
    let siblings = api.get("alice", &at(&id, &m[2], "siblings")).await;
    assert_eq!(siblings["index"], 0);
    let texts: Vec<&str> = siblings["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Is it open on Sundays?", "Is it open on Mondays?"]);
    assert_eq!(siblings["items"][1]["sibling_index"], 1);
    let siblings = api.get("alice", &at(&id, &edited, "siblings")).await;
    assert_eq!(siblings["index"], 1);

    // Switch back to the first question: its branch's newest leaf is the first answer.
    let switched = api
        .post("alice", &at(&id, &m[2], "switch"), json!({}), 200)
        .await;
    assert_eq!(switched["active_leaf"], 4);
    assert_eq!(switched["path_length"], 4);
    assert_eq!(
        api.texts(&id, "").await,
        TURNS.iter().map(|t| t.1).collect::<Vec<_>>()
    );
    // Another branch is paged by its leaf, in windows like the active one.
    assert_eq!(
        api.texts(&id, "?leaf=7").await,
        [
            "Where should we eat?",
            "The fish market.",
            "Is it open on Mondays?",
            "Mondays: closed."
        ]
    );
    assert_eq!(
        api.texts(&id, "?leaf=7&after=2&limit=1").await,
        ["Is it open on Mondays?"]
    );
    assert_eq!(
        api.texts(&id, "?leaf=6&last=1").await,
        ["Closed on Mondays."]
    );
    // One message by seq, on any branch, with its versions.
    let off_path = api
        .get("alice", &format!("/conversations/{id}/messages/6"))
        .await;
    assert_eq!(
        (
            off_path["content"].clone(),
            off_path["sibling_index"].clone()
        ),
        (json!("Closed on Mondays."), json!(0))
    );

    // Rewind to the first answer: the rest leaves the active path, nothing is deleted.
    let rewound = api
        .post("alice", &at(&id, &m[1], "rewind"), json!({}), 200)
        .await;
    assert_eq!(
        (
            rewound["active_leaf"].clone(),
            rewound["path_length"].clone()
        ),
        (json!(2), json!(2))
    );
    assert_eq!(rewound["message_count"], 7);
    assert_eq!(
        api.texts(&id, "").await,
        ["Where should we eat?", "The fish market."]
    );
    let back = api
        .post("alice", &at(&id, &again, "switch"), json!({}), 200)
        .await;
    assert_eq!(back["active_leaf"], 7);

    // Fork at the edited question: a new conversation of the same owner with that path.
    let fork = api
        .post(
            "alice",
            &at(&id, &edited, "fork"),
            json!({ "title": "Mondays" }),
            201,
        )
        .await;
    let fork_id = fork["id"].as_str().unwrap();
    assert_ne!(fork_id, id);
    assert_eq!(fork["user_id"], "alice");
    assert_eq!(fork["title"], "Mondays");
    assert_eq!(
        (fork["message_count"].clone(), fork["active_leaf"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(
        api.texts(fork_id, "").await,
        [
            "Where should we eat?",
            "The fish market.",
            "Is it open on Mondays?"
        ]
    );
    // The source is unchanged, and the fork is the caller's like any other.
    assert_eq!(api.record(&id).await["message_count"], 7);
    let listed = api.get("alice", "/conversations").await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == fork_id)
    );
    // A fork without a body keeps the source's title.
    let plain = api
        .json(api.request("POST", "alice", &at(&id, &m[0], "fork")), 201)
        .await;
    assert_eq!(
        (plain["title"].clone(), plain["message_count"].clone()),
        (json!("Trip"), json!(1))
    );
    id
}

/// Retrying an edit, a regeneration or a fork with the same id stores it once; an edit
/// keeps the edited message's role unless the body gives one.
async fn retries_store_once(api: &Api) {
    let (id, m) = api.conversation("alice", TURNS).await;
    let body = json!({ "id": "edit-1", "text": "Is it open on Mondays?" });
    let first = api
        .post("alice", &at(&id, &m[2], "edit"), body.clone(), 201)
        .await;
    let second = api.post("alice", &at(&id, &m[2], "edit"), body, 201).await;
    assert_eq!(first["seq"], second["seq"]);
    let body = json!({ "id": "regen-1", "text": "Yes." });
    let first = api
        .post("alice", &at(&id, &m[3], "regenerate"), body.clone(), 201)
        .await;
    let second = api
        .post("alice", &at(&id, &m[3], "regenerate"), body, 201)
        .await;
    assert_eq!(first["seq"], second["seq"]);
    assert_eq!(api.record(&id).await["message_count"], 6);
    let body = json!({ "id": "fork-1" });
    let first = api
        .post("alice", &at(&id, &m[1], "fork"), body.clone(), 201)
        .await;
    let second = api.post("alice", &at(&id, &m[1], "fork"), body, 201).await;
    assert_eq!(
        (first["id"].clone(), second["message_count"].clone()),
        (json!("fork-1"), json!(2))
    );
    // An edit of the assistant's answer stays an assistant message; a role can be given.
    let body = json!({ "text": "The harbour market." });
    let kept = api.post("alice", &at(&id, &m[1], "edit"), body, 201).await;
    assert_eq!(
        (kept["role"].clone(), kept["parent"].clone()),
        (json!("assistant"), json!(1))
    );
    let body = json!({ "text": "Noted.", "role": "system" });
    let given = api.post("alice", &at(&id, &m[1], "edit"), body, 201).await;
    assert_eq!(
        (given["role"].clone(), given["sibling_index"].clone()),
        (json!("system"), json!(2))
    );
    assert_eq!(
        api.texts("fork-1", "").await,
        ["Where should we eat?", "The fish market."]
    );
}

#[tokio::test]
async fn branches_on_the_memory_backend() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let api = Api::serve(vault).await;
    let id = edit_switch_rewind_and_fork(&api).await;
    // Search finds a message off the active path and says which branch it is on.
    let hits = api.get("alice", "/search?q=Sundays").await;
    let hits = hits["items"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["conversation"]["id"], id.as_str());
    assert_eq!(hits[0]["message"]["seq"], 3);
    assert_eq!(hits[0]["branch"], json!({ "active": false, "leaf": 4 }));
    let hits = api.get("alice", "/search?q=Mondays%3A").await;
    let on_path = hits["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["message"]["seq"] == 7);
    assert_eq!(
        on_path.unwrap()["branch"],
        json!({ "active": true, "leaf": 7 })
    );
    retries_store_once(&api).await;
}

#[tokio::test]
async fn branches_on_the_local_backend_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        ChatVault::new(
            LocalMessages::open(dir.path().join("messages")).unwrap(),
            LocalFiles::new(dir.path().join("files")).unwrap(),
        )
    };
    let api = Api::serve(open()).await;
    let id = edit_switch_rewind_and_fork(&api).await;
    retries_store_once(&api).await;
    let before = api
        .get("alice", &format!("/conversations/{id}/messages"))
        .await;
    drop(api);
    // A new server on the same files: the same active branch, the same views.
    let api = Api::serve(open()).await;
    let record = api.record(&id).await;
    assert_eq!(
        (
            record["active_leaf"].clone(),
            record["message_count"].clone()
        ),
        (json!(7), json!(7))
    );
    let after = api
        .get("alice", &format!("/conversations/{id}/messages"))
        .await;
    assert_eq!(after, before);
    assert_eq!(after["items"][3]["content"], "Mondays: closed.");
}

/// Every branch route, with a body each accepts: (method, action, body).
const ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("POST", "edit", Some(r#"{"text": "changed"}"#)),
    ("POST", "regenerate", Some(r#"{"text": "again"}"#)),
    ("GET", "siblings", None),
    ("POST", "switch", None),
    ("POST", "rewind", None),
    ("POST", "fork", Some(r#"{"title": "forked"}"#)),
];

/// What must not change when a branch route is refused: alice's conversations and the
/// record (count, leaf, version) of `id`.
async fn snapshot(api: &Api, id: &str) -> (Value, Value) {
    let list = api.get("alice", "/conversations?limit=1000").await;
    let ids = json!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect::<Vec<_>>()
    );
    let record = api.record(id).await;
    let kept = json!([
        record["message_count"],
        record["active_leaf"],
        record["version"]
    ]);
    (ids, kept)
}

async fn send(
    api: &Api,
    user: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> reqwest::Response {
    let mut request = api.request(method, user, path);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn another_users_conversation_is_404_and_unchanged() {
    let api = Api::serve(ChatVault::new(MemoryMessages::new(), MemoryFiles::new())).await;
    // The assistant reply (regenerate) is m[1]; every route is tried on it and on m[0].
    let (id, m) = api.conversation("alice", TURNS).await;
    api.post(
        "alice",
        &at(&id, &m[2], "edit"),
        json!({ "text": "v2" }),
        201,
    )
    .await;
    let before = snapshot(&api, &id).await;
    for (method, action, body) in ROUTES {
        for message in [&m[0], &m[1]] {
            let res = send(&api, "bob", method, &at(&id, message, action), *body).await;
            let problem = problem(res, 404).await;
            assert_eq!(problem["kind"], "not_found", "{method} {action}");
        }
    }
    let res = send(
        &api,
        "bob",
        "GET",
        &format!("/conversations/{id}/messages?leaf=4"),
        None,
    )
    .await;
    problem(res, 404).await;
    assert_eq!(snapshot(&api, &id).await, before);
    let bobs = api.get("bob", "/conversations").await;
    assert_eq!(bobs["items"], json!([]), "no fork was made for bob");
}

#[tokio::test]
async fn unknown_messages_are_404_and_nothing_changes() {
    let api = Api::serve(ChatVault::new(MemoryMessages::new(), MemoryFiles::new())).await;
    let (id, _) = api.conversation("alice", TURNS).await;
    let before = snapshot(&api, &id).await;
    for (method, action, body) in ROUTES {
        let path = format!("/conversations/{id}/messages/no-such-message/{action}");
        let res = send(&api, "alice", method, &path, *body).await;
        let problem = problem(res, 404).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("no-such-message"),
            "{action}: {problem}"
        );
        // An unknown conversation too.
        let path = format!("/conversations/no-such-chat/messages/no-such-message/{action}");
        problem_404(send(&api, "alice", method, &path, *body).await).await;
    }
    for leaf in ["5", "0", "99"] {
        let path = format!("/conversations/{id}/messages?leaf={leaf}");
        problem_404(send(&api, "alice", "GET", &path, None).await).await;
    }
    assert_eq!(snapshot(&api, &id).await, before);
}

async fn problem_404(res: reqwest::Response) {
    problem(res, 404).await;
}

#[tokio::test]
async fn bad_bodies_are_400_and_store_nothing() {
    let api = Api::serve(ChatVault::new(MemoryMessages::new(), MemoryFiles::new())).await;
    let (id, m) = api.conversation("alice", TURNS).await;
    let before = snapshot(&api, &id).await;
    let message_bodies = [
        "{}",
        r#"{"text": "a", "parts": []}"#,
        r#"{"text": "a", "role": ""}"#,
        r#"{"text": "a", "colour": "red"}"#,
        r#"{"text": 5}"#,
        r#"["text"]"#,
        "null",
        "{not json",
        r#"{"text": "a", "id": "a/b"}"#,
        r#"{"parts": [{"type": "text"}]}"#,
    ];
    for action in ["edit", "regenerate"] {
        let target = if action == "edit" { &m[2] } else { &m[3] };
        for body in message_bodies {
            let res = send(&api, "alice", "POST", &at(&id, target, action), Some(body)).await;
            let problem = problem(res, 400).await;
            assert_eq!(
                problem["kind"], "invalid_input",
                "{action} {body}: {problem}"
            );
        }
        // No body at all.
        let res = api
            .request("POST", "alice", &at(&id, target, action))
            .send()
            .await
            .unwrap();
        problem(res, 400).await;
    }
    // A regenerated reply is an assistant's, of an assistant's reply.
    let user_role = Some(r#"{"text": "a", "role": "user"}"#);
    let res = send(
        &api,
        "alice",
        "POST",
        &at(&id, &m[3], "regenerate"),
        user_role,
    )
    .await;
    problem(res, 400).await;
    let of_a_question = Some(r#"{"text": "a"}"#);
    let res = send(
        &api,
        "alice",
        "POST",
        &at(&id, &m[2], "regenerate"),
        of_a_question,
    )
    .await;
    let problem_doc = problem(res, 400).await;
    assert!(
        problem_doc["detail"]
            .as_str()
            .unwrap()
            .contains("edit it instead"),
        "{problem_doc}"
    );
    // A fork's body: an object with known fields, valid values; or none at all.
    for body in [
        r#"{"colour": "red"}"#,
        r#"{"id": "a/b"}"#,
        r#"{"title": 5}"#,
        r#"{"metadata": [1]}"#,
        "[]",
        "{not json",
        &format!(r#"{{"title": "{}"}}"#, "t".repeat(100_000)),
    ] {
        let res = send(&api, "alice", "POST", &at(&id, &m[1], "fork"), Some(body)).await;
        problem(res, 400).await;
    }
    let res = api
        .request("POST", "alice", &at(&id, &m[1], "fork"))
        .body("title=x")
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    // A bad path: an invalid message id, a bad leaf.
    let res = send(
        &api,
        "alice",
        "POST",
        &format!("/conversations/{id}/messages/a%2Fb/switch"),
        None,
    )
    .await;
    problem(res, 400).await;
    let res = send(
        &api,
        "alice",
        "GET",
        &format!("/conversations/{id}/messages?leaf=x"),
        None,
    )
    .await;
    problem(res, 400).await;
    assert_eq!(snapshot(&api, &id).await, before);
}
