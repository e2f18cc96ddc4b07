//! What every format's converter produces (one conversation as a tree of source nodes),
//! and the plan that turns it into appends: parents before children, each chain's
//! messages consecutive, the active leaf found.

use std::collections::HashMap;

use bytes::Bytes;
use chatvault_core::{
    ContentType, ConversationId, FileId, MessageStatus, Metadata, NewMessage, Parent, Part, Role,
    Usage, UserId,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Format;
use super::fields::{Bad, Got};
use super::ids;
use super::report::Notes;

/// One source conversation, converted.
#[derive(Debug, Default)]
pub(crate) struct Conv {
    /// The source's conversation id.
    pub(crate) source_id: String,
    /// The ChatVault id to keep (`None`: one derived from the source's).
    pub(crate) id: Option<ConversationId>,
    /// The owner the source names (`None`: the import's owner).
    pub(crate) owner: Option<UserId>,
    pub(crate) title: Option<String>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) updated_at: Option<DateTime<Utc>>,
    pub(crate) archived: bool,
    /// The source's other conversation fields, kept in metadata under the format's name.
    pub(crate) extra: Metadata,
    /// Every node, in the source's order.
    pub(crate) nodes: Vec<Node>,
    /// The source's active leaf (`None`: the newest leaf).
    pub(crate) leaf: Option<String>,
    /// Attachments whose bytes the export holds.
    pub(crate) files: Vec<PendingFile>,
    /// What could not be carried exactly.
    pub(crate) notes: Notes,
}

/// One source message.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) id: String,
    /// The source's parent node (`None`: a first message).
    pub(crate) parent: Option<String>,
    pub(crate) role: Role,
    pub(crate) parts: Vec<Part>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) status: MessageStatus,
    pub(crate) usage: Option<Usage>,
    /// The source's other message fields, kept in metadata under the format's name.
    pub(crate) extra: Metadata,
    /// A hidden node (ChatGPT's hidden system messages): stored beside the path, never on
    /// it; its children follow its nearest visible ancestor.
    pub(crate) off_path: bool,
}

impl Node {
    /// A node with no content yet.
    pub(crate) fn new(id: String, parent: Option<String>, role: Role) -> Self {
        Node {
            id,
            parent,
            role,
            parts: Vec::new(),
            created_at: None,
            status: MessageStatus::Complete,
            usage: None,
            extra: Metadata::new(),
            off_path: false,
        }
    }
}

/// An attachment whose bytes the export holds.
#[derive(Debug, Clone)]
pub(crate) struct PendingFile {
    pub(crate) id: FileId,
    /// The source's pointer (ChatGPT's `file-service://..`, a file name, ...).
    pub(crate) pointer: String,
    pub(crate) filename: String,
    pub(crate) content_type: ContentType,
    pub(crate) uploaded_at: Option<DateTime<Utc>>,
    pub(crate) bytes: FileBytes,
}

/// Where a [`PendingFile`]'s bytes are.
#[derive(Debug, Clone)]
pub(crate) enum FileBytes {
    /// In the conversation's JSON (a `data:` URL, extracted text).
    Inline(Bytes),
    /// An entry of the export (zip entry name or file path).
    Entry(String),
}

/// A conversation's appends, in order.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The messages, parents first; `parent` is an index into this list.
    pub(crate) items: Vec<Planned>,
    /// The index of the active leaf.
    pub(crate) leaf: Option<usize>,
}

/// One message of a [`Plan`].
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) message: NewMessage,
    pub(crate) parent: Option<usize>,
}

/// Orders `conv`'s nodes (depth first from the first messages, siblings oldest first, so
/// that each chain is consecutive), resolves the active leaf, and builds each message
/// with its deterministic id, times and source metadata. A duplicate id, a parent that is
/// not there, a cycle or a message the store would refuse is a [`Bad`].
pub(crate) fn plan(format: Format, conv: &mut Conv) -> Got<Plan> {
    let nodes = std::mem::take(&mut conv.nodes);
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        if index.insert(n.id.as_str(), i).is_some() {
            return Err(Bad::new(
                format!("message {}", n.id),
                "the id appears twice",
            ));
        }
    }
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(nodes.len());
    for n in &nodes {
        parent.push(match &n.parent {
            None => None,
            Some(p) => Some(*index.get(p.as_str()).ok_or_else(|| {
                Bad::new(
                    format!("message {}: parent", n.id),
                    format!("names {p:?}, which the conversation does not hold"),
                )
            })?),
        });
    }
    // What each node follows once hidden nodes are stepped over.
    let effective: Vec<Option<usize>> = (0..nodes.len())
        .map(|i| {
            let mut at = parent[i];
            let mut steps = 0;
            while let Some(p) = at
                && nodes[p].off_path
                && steps <= nodes.len()
            {
                at = parent[p];
                steps += 1;
            }
            at
        })
        .collect();
    let (order, children) = order(&nodes, &effective)?;
    let leaf = active_leaf(conv, &nodes, &index, &effective, &children);
    let mut position = vec![0; nodes.len()];
    let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(nodes.len());
    let mut items = Vec::with_capacity(nodes.len());
    let fallback = conv
        .created_at
        .or(conv.updated_at)
        .unwrap_or(DateTime::UNIX_EPOCH);
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    for (k, &i) in order.iter().enumerate() {
        position[i] = k;
        let planned_parent = effective[i].map(|p| position[p]);
        let Some(node) = nodes[i].take() else {
            continue;
        };
        let created = match node.created_at {
            Some(t) => t,
            None => {
                conv.notes
                    .add("messages without a time (their parent's was taken)");
                planned_parent.map_or(fallback, |p| times[p])
            }
        };
        times.push(created);
        let message = build(format, conv, node, created)?;
        items.push(Planned {
            message,
            parent: planned_parent,
        });
    }
    Ok(Plan {
        items,
        leaf: leaf.map(|l| position[l]),
    })
}

/// The nodes depth first from the first messages, siblings oldest first (each chain
/// consecutive), and each node's children; a [`Bad`] when the parents form a cycle.
fn order(nodes: &[Node], effective: &[Option<usize>]) -> Got<(Vec<usize>, Vec<Vec<usize>>)> {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut roots = Vec::new();
    for (i, p) in effective.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    let oldest = |a: &usize, b: &usize| (nodes[*a].created_at, *a).cmp(&(nodes[*b].created_at, *b));
    roots.sort_by(oldest);
    for c in &mut children {
        c.sort_by(oldest);
    }
    let mut order = Vec::with_capacity(nodes.len());
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children[i].iter().rev());
    }
    if order.len() < nodes.len() {
        let seen: std::collections::HashSet<usize> = order.iter().copied().collect();
        let stuck = (0..nodes.len()).find(|i| !seen.contains(i)).unwrap_or(0);
        return Err(Bad::new(
            format!("message {}: parent", nodes[stuck].id),
            "the parents form a cycle",
        ));
    }
    Ok((order, children))
}

/// The active leaf: the source's, stepped up to a visible node; the newest leaf when the
/// source names none or one it does not hold.
fn active_leaf(
    conv: &mut Conv,
    nodes: &[Node],
    index: &HashMap<&str, usize>,
    effective: &[Option<usize>],
    children: &[Vec<usize>],
) -> Option<usize> {
    if let Some(leaf) = &conv.leaf {
        match index.get(leaf.as_str()) {
            Some(&i) if !nodes[i].off_path => return Some(i),
            Some(&i) => return effective[i],
            None => conv
                .notes
                .add("active leaf not found (the newest leaf was taken)"),
        }
    }
    (0..nodes.len())
        .filter(|&i| !nodes[i].off_path && children[i].iter().all(|&c| nodes[c].off_path))
        .max_by_key(|&i| (nodes[i].created_at, i))
}

/// The message a node becomes.
fn build(format: Format, conv: &Conv, node: Node, created: DateTime<Utc>) -> Got<NewMessage> {
    let mut source = json!({
        "format": format.name(),
        "conversation_id": conv.source_id,
        "message_id": node.id,
    });
    if let Some(p) = &node.parent {
        source["parent_id"] = Value::String(p.clone());
    }
    if node.off_path {
        source["hidden"] = Value::Bool(true);
    }
    let mut metadata = Metadata::new();
    metadata.insert("source".into(), source);
    if !node.extra.is_empty() {
        metadata.insert(format.name().into(), Value::Object(node.extra));
    }
    let mut message = NewMessage::with_parts(node.role, node.parts)
        .with_id(ids::message(format, &conv.source_id, &node.id))
        .with_metadata(metadata)
        .with_status(node.status, None);
    message.created_at = created;
    message.usage = node.usage;
    message.parent = Parent::Root;
    message
        .validate()
        .map_err(|e| Bad::new(format!("message {}", node.id), e.to_string()))?;
    Ok(message)
}
