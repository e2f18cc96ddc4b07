//! The read verbs: `stat`, `ls`, `show`.

use std::collections::HashSet;

use chatvault_archive::{ConversationIds, Scope, Store};
use chatvault_core::{ConversationId, ListOptions, MessageRange, UserId};
use serde::Serialize;

use crate::error::{CliError, Result};
use crate::output::json_line;

/// What `stat` counts.
#[derive(Debug, Default, Serialize)]
struct Stat {
    conversations: u64,
    archived: u64,
    messages: u64,
    attachments: u64,
    attachment_bytes: u64,
    owners: u64,
    ownerless: u64,
}

/// `stat`: counts over the whole store (or one owner).
pub(crate) async fn stat(store: &Store, owner: Option<UserId>, json: bool) -> Result<()> {
    let scope = owner.map_or(Scope::All, Scope::Owner);
    let mut ids = ConversationIds::new(store, scope);
    let mut stat = Stat::default();
    let mut owners = HashSet::new();
    while let Some(id) = ids.next().await? {
        let Some(head) = store.messages.head(&id).await? else {
            continue;
        };
        let record = &head.record;
        stat.conversations += 1;
        stat.archived += u64::from(record.archived);
        stat.messages += record.message_count;
        stat.attachments += head.files.len() as u64;
        stat.attachment_bytes += head.files.iter().map(|f| f.size).sum::<u64>();
        match &record.user_id {
            Some(user) => {
                owners.insert(user.clone());
            }
            None => stat.ownerless += 1,
        }
    }
    stat.owners = owners.len() as u64;
    if json {
        return json_line(&stat);
    }
    println!(
        "conversations     {} ({} archived)",
        stat.conversations, stat.archived
    );
    println!("messages          {}", stat.messages);
    println!(
        "attachments       {} ({} bytes)",
        stat.attachments, stat.attachment_bytes
    );
    println!(
        "owners            {} (+{} conversations without one)",
        stat.owners, stat.ownerless
    );
    Ok(())
}

/// `ls`: one page of conversations, newest activity first.
pub(crate) async fn ls(
    store: &Store,
    owner: Option<&UserId>,
    limit: usize,
    cursor: Option<String>,
    archived: bool,
    json: bool,
) -> Result<()> {
    let mut options = ListOptions::new().limit(limit)?.include_archived(archived);
    if let Some(cursor) = &cursor {
        options = options.cursor(cursor)?;
    }
    let page = store.messages.list_conversations(owner, &options).await?;
    for s in &page.items {
        if json {
            json_line(s)?;
        } else {
            println!(
                "{}  {}  {:>6} msgs  {}  {}{}",
                s.last_active.format("%Y-%m-%d %H:%M"),
                s.id,
                s.message_count,
                s.user_id.as_ref().map_or("-", |u| u.as_str()),
                s.title.as_deref().unwrap_or("(untitled)"),
                if s.archived { "  [archived]" } else { "" },
            );
        }
    }
    if let Some(next) = page.next_cursor {
        eprintln!("more: --cursor {next}");
    }
    Ok(())
}

/// `show`: one conversation's head and messages (the last `last` of them, if given).
pub(crate) async fn show(
    store: &Store,
    id: &ConversationId,
    last: Option<usize>,
    json: bool,
) -> Result<()> {
    let head = store.messages.head(id).await?.ok_or_else(|| {
        CliError::Store(chatvault_core::Error::NotFound {
            kind: "conversation",
            id: id.to_string(),
        })
    })?;
    if json {
        json_line(&head)?;
    } else {
        let r = &head.record;
        println!("{}  {}", r.id, r.title.as_deref().unwrap_or("(untitled)"));
        println!(
            "owner {}  messages {}  attachments {}",
            r.user_id.as_ref().map_or("-", |u| u.as_str()),
            r.message_count,
            head.files.len()
        );
        for f in &head.files {
            println!(
                "  file {} {} ({} bytes, {})",
                f.id, f.filename, f.size, f.content_type
            );
        }
    }
    let count = head.record.message_count;
    let start = last.map_or(0, |n| count.saturating_sub(n as u64));
    let mut range = MessageRange::after(start).limit(500);
    loop {
        let page = store.messages.messages(id, &range).await?;
        for m in page.items.iter().take_while(|m| m.seq <= count) {
            if json {
                json_line(m)?;
            } else {
                println!("[{}] {}: {}", m.seq, m.role, m.content());
            }
        }
        match page.next_cursor {
            Some(cursor) if page.items.last().is_some_and(|m| m.seq < count) => {
                range = range.continue_from(&cursor)?;
            }
            _ => break,
        }
    }
    Ok(())
}
