//! The list route's window: `limit`, `order`, `after`, `before`, by item id.

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::OaiError;

/// The default page size.
const DEFAULT_LIMIT: usize = 20;
/// The largest page size.
const MAX_LIMIT: usize = 100;

/// The list route's query (`include` is accepted and ignored: items are stored whole).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<String>,
    order: Option<String>,
    after: Option<String>,
    before: Option<String>,
}

/// A checked [`ListQuery`].
#[derive(Debug)]
pub(crate) struct Window {
    limit: usize,
    descending: bool,
    after: Option<String>,
    before: Option<String>,
}

impl Window {
    /// Checks the query: `limit` 1 to 100 (default 20), `order` `asc` or `desc` (default).
    pub(crate) fn parse(query: ListQuery) -> Result<Window, OaiError> {
        let limit = match query.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(OaiError::invalid(
                        "limit",
                        format!("limit must be an integer from 1 to {MAX_LIMIT}, got {text:?}"),
                    ));
                }
            },
        };
        let descending = match query.order.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(other) => {
                return Err(OaiError::invalid(
                    "order",
                    format!("order must be \"asc\" or \"desc\", got {other:?}"),
                ));
            }
        };
        Ok(Window {
            limit,
            descending,
            after: query.after,
            before: query.before,
        })
    }

    /// The page of `items` (all of the conversation's, oldest first) this window selects,
    /// as the API's list object.
    pub(crate) fn page(&self, mut items: Vec<Value>) -> Result<Value, OaiError> {
        if self.descending {
            items.reverse();
        }
        let position = |param: &'static str, id: &str, items: &[Value]| {
            items
                .iter()
                .position(|item| item.get("id").and_then(Value::as_str) == Some(id))
                .ok_or_else(|| {
                    OaiError::invalid(
                        param,
                        format!("no item with id {id:?} in this conversation"),
                    )
                })
        };
        let start = match &self.after {
            Some(id) => position("after", id, &items)? + 1,
            None => 0,
        };
        let end = match &self.before {
            Some(id) => position("before", id, &items)?,
            None => items.len(),
        };
        let window = items.get(start..end).unwrap_or_default();
        // `before` pages backwards: the items just before it.
        let (data, has_more) = if self.before.is_some() && self.after.is_none() {
            let from = window.len().saturating_sub(self.limit);
            (&window[from..], from > 0)
        } else {
            let to = window.len().min(self.limit);
            (&window[..to], window.len() > to)
        };
        Ok(list(data.to_vec(), has_more))
    }
}

/// The API's list object over `data`.
pub(crate) fn list(data: Vec<Value>, has_more: bool) -> Value {
    let id = |item: Option<&Value>| item.and_then(|i| i.get("id")).cloned();
    json!({
        "object": "list",
        "first_id": id(data.first()),
        "last_id": id(data.last()),
        "has_more": has_more,
        "data": data,
    })
}
