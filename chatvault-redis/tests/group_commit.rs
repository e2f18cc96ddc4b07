//! Appends of one process to one conversation are written together (group commit), each
//! keeping its own answer. In a test binary of its own, so that the server's command
//! counters see this test's scripts only.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::Arc;

use chatvault_core::{
    ConversationRecord, ErrorKind, MessageRange, MessagesBackend, NewMessage, Role, UserId,
};
use common::{fresh, server_url};

/// Scripts run by the server so far (EVAL and EVALSHA calls).
async fn scripts_run() -> u64 {
    let mut conn = redis::Client::open(server_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_go_together_and_keep_their_answers() {
    const WRITERS: usize = 16;
    const EACH: usize = 8;
    let backend = Arc::new(fresh().await);
    let owner = UserId::parse("owner").unwrap();
    let record = ConversationRecord::new(Some(owner.clone()));
    backend.create(&record).await.unwrap();
    let before = scripts_run().await;
    let mut tasks = Vec::new();
    for w in 0..=WRITERS {
        let backend = Arc::clone(&backend);
        let id = record.id.clone();
        // The last writer is someone else: each of its appends is refused on its own.
        let who = if w == WRITERS {
            UserId::parse("intruder").unwrap()
        } else {
            owner.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let m = NewMessage::new(Role::User, format!("{w}/{i}"));
                match backend.append_messages_as(Some(&who), &id, vec![m]).await {
                    Ok(a) => {
                        assert_eq!(a.messages.len(), 1);
                        assert_eq!(a.messages[0].content(), format!("{w}/{i}"));
                        assert!(a.record.message_count >= a.messages[0].seq);
                        seqs.push(a.messages[0].seq);
                    }
                    Err(e) => {
                        assert_eq!(w, WRITERS, "{e}");
                        assert_eq!(e.kind(), ErrorKind::NotFound);
                    }
                }
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for (w, t) in tasks.into_iter().enumerate() {
        let seqs = t.await.unwrap();
        assert!(seqs.windows(2).all(|p| p[0] < p[1]), "writer {w}: in order");
        all.extend(seqs);
    }
    let scripts = scripts_run().await - before;
    all.sort_unstable();
    assert_eq!(all, (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>());
    let stored = backend
        .messages(&record.id, &MessageRange::all())
        .await
        .unwrap();
    assert_eq!(stored.items.len(), WRITERS * EACH);
    // One script per append would be 128 (plus the intruder's reads); written together,
    // far fewer.
    assert!(
        scripts < (WRITERS * EACH) as u64,
        "{scripts} scripts for {} appends: not written together",
        WRITERS * EACH
    );
    println!("{scripts} scripts for {} appends", WRITERS * EACH);
}
