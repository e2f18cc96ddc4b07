//! Listing and search options: parsed when they are built or deserialized, so that a
//! backend reads a checked page size and a typed cursor and never validates them again.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::conversation::ConversationSummary;
use crate::error::{Error, Result};
use crate::ids::ConversationId;

/// A page size: at least 1, at most [`PageLimit::MAX`]. Checked once, when it is made.
///
/// Serialized as a number; deserializing an out-of-range number fails.
///
/// ```
/// use chatvault_core::PageLimit;
///
/// assert_eq!(PageLimit::new(20).unwrap().get(), 20);
/// assert!(PageLimit::new(0).is_err());
/// assert!(PageLimit::new(PageLimit::MAX + 1).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "usize", into = "usize")]
pub struct PageLimit(usize);

impl PageLimit {
    /// The largest page size.
    pub const MAX: usize = 1000;

    /// `limit`, or [`Error::InvalidInput`] (field `"limit"`) outside `1..=MAX`.
    pub fn new(limit: usize) -> Result<Self> {
        if limit == 0 || limit > Self::MAX {
            return Err(Error::invalid_input(
                "limit",
                format!("must be 1..={}, got {limit}", Self::MAX),
            ));
        }
        Ok(PageLimit(limit))
    }

    /// The page size.
    pub const fn get(self) -> usize {
        self.0
    }
}

impl TryFrom<usize> for PageLimit {
    type Error = Error;

    fn try_from(limit: usize) -> Result<Self> {
        PageLimit::new(limit)
    }
}

impl From<PageLimit> for usize {
    fn from(limit: PageLimit) -> usize {
        limit.0
    }
}

impl fmt::Display for PageLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Options for listing conversations: a checked page size and a decoded cursor.
///
/// Serialized with the cursor in its string form; deserializing a bad limit or cursor
/// fails.
///
/// ```
/// use chatvault_core::ListOptions;
///
/// let first = ListOptions::new().limit(20)?.include_archived(true);
/// assert_eq!(first.limit.get(), 20);
/// assert!(ListOptions::new().cursor("nonsense").is_err());
/// # Ok::<(), chatvault_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListOptions {
    /// At most this many summaries per page.
    pub limit: PageLimit,
    /// Where the previous page ended; `None` for the first page.
    pub cursor: Option<ListCursor>,
    /// Include archived conversations.
    pub include_archived: bool,
}

impl ListOptions {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest page size (the same as [`PageLimit::MAX`]).
    pub const MAX_LIMIT: usize = PageLimit::MAX;

    /// The first page, [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT) items, archived excluded.
    pub fn new() -> Self {
        ListOptions {
            limit: PageLimit(Self::DEFAULT_LIMIT),
            cursor: None,
            include_archived: false,
        }
    }

    /// Sets the page size; [`Error::InvalidInput`] outside `1..=MAX_LIMIT`.
    pub fn limit(mut self, limit: usize) -> Result<Self> {
        self.limit = PageLimit::new(limit)?;
        Ok(self)
    }

    /// Continues after a previous page's `next_cursor`; [`Error::InvalidInput`] (field
    /// `"cursor"`) for a string this library did not make.
    pub fn cursor(mut self, cursor: &str) -> Result<Self> {
        self.cursor = Some(ListCursor::decode(cursor)?);
        Ok(self)
    }

    /// Continues after a decoded cursor.
    pub fn after(mut self, cursor: ListCursor) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// Includes archived conversations.
    pub fn include_archived(mut self, include: bool) -> Self {
        self.include_archived = include;
        self
    }
}

impl Default for ListOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The position in a conversation listing, which is ordered by `last_active`
/// descending, then `id` descending.
///
/// Encoded as an opaque string in [`Page::next_cursor`](super::Page::next_cursor). A
/// listing continues strictly after the cursor's position, so a conversation created while
/// a client pages through (which sorts first) never shifts the later pages: nothing is
/// skipped or repeated. Serialized as that string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListCursor {
    /// `last_active` of the last summary returned.
    pub last_active: DateTime<Utc>,
    /// `id` of the last summary returned.
    pub id: ConversationId,
}

impl ListCursor {
    /// The cursor after `summary`.
    pub fn after(summary: &ConversationSummary) -> Self {
        ListCursor {
            last_active: summary.last_active,
            id: summary.id.clone(),
        }
    }

    /// The opaque string form. It keeps `last_active` to the nanosecond, so a cursor
    /// sorts exactly where its conversation does.
    pub fn encode(&self) -> String {
        format!(
            "v1.{}.{}.{}",
            self.last_active.timestamp(),
            self.last_active.timestamp_subsec_nanos(),
            self.id
        )
    }

    /// Parses [`encode`](Self::encode)'s output.
    pub fn decode(s: &str) -> Result<Self> {
        let bad =
            || Error::invalid_input("cursor", format!("not a cursor this library made: {s:?}"));
        let rest = s.strip_prefix("v1.").ok_or_else(bad)?;
        let (secs, rest) = rest.split_once('.').ok_or_else(bad)?;
        let (nanos, id) = rest.split_once('.').ok_or_else(bad)?;
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let nanos: u32 = nanos.parse().map_err(|_| bad())?;
        if nanos >= 1_000_000_000 {
            return Err(bad());
        }
        let last_active = DateTime::from_timestamp(secs, nanos).ok_or_else(bad)?;
        let id = ConversationId::parse(id).map_err(|_| bad())?;
        Ok(ListCursor { last_active, id })
    }

    /// Whether a conversation at (`last_active`, `id`) is listed strictly after this
    /// cursor, that is, belongs on a later page.
    pub fn comes_after(&self, last_active: DateTime<Utc>, id: &ConversationId) -> bool {
        (last_active, id) < (self.last_active, &self.id)
    }
}

impl TryFrom<String> for ListCursor {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        ListCursor::decode(&s)
    }
}

impl From<ListCursor> for String {
    fn from(cursor: ListCursor) -> String {
        cursor.encode()
    }
}

/// Where a search page starts: the number of hits before it, written in
/// [`Page::next_cursor`](super::Page::next_cursor) as a decimal number (at most
/// `u32::MAX`). Serialized as that string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SearchCursor(u32);

impl SearchCursor {
    /// The cursor of the page that starts after `offset` hits (saturating at `u32::MAX`).
    pub fn at(offset: usize) -> Self {
        SearchCursor(u32::try_from(offset).unwrap_or(u32::MAX))
    }

    /// The number of hits before the page.
    pub fn offset(self) -> u32 {
        self.0
    }

    /// The string form, for [`Page::next_cursor`](super::Page::next_cursor).
    pub fn encode(self) -> String {
        self.0.to_string()
    }
}

impl FromStr for SearchCursor {
    type Err = Error;

    /// Parses [`encode`](SearchCursor::encode)'s output; [`Error::InvalidInput`] (field
    /// `"cursor"`) otherwise.
    fn from_str(s: &str) -> Result<Self> {
        s.parse::<u32>()
            .map(SearchCursor)
            .map_err(|_| Error::invalid_input("cursor", format!("not a search cursor: {s:?}")))
    }
}

impl TryFrom<String> for SearchCursor {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<SearchCursor> for String {
    fn from(cursor: SearchCursor) -> String {
        cursor.encode()
    }
}

/// Options for [`MessagesBackend::search`](crate::MessagesBackend::search): a checked
/// page size and a decoded cursor. Deserializing a bad limit or cursor fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchOptions {
    /// At most this many hits per page.
    pub limit: PageLimit,
    /// Where the previous page ended; `None` for the first page.
    pub cursor: Option<SearchCursor>,
    /// Search archived conversations too.
    pub include_archived: bool,
}

impl SearchOptions {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 20;

    /// The first page of [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT) hits, archived
    /// conversations excluded.
    pub fn new() -> Self {
        SearchOptions {
            limit: PageLimit(Self::DEFAULT_LIMIT),
            cursor: None,
            include_archived: false,
        }
    }

    /// Sets the page size; [`Error::InvalidInput`] outside `1..=`[`PageLimit::MAX`].
    pub fn limit(mut self, limit: usize) -> Result<Self> {
        self.limit = PageLimit::new(limit)?;
        Ok(self)
    }

    /// Continues after a previous page's `next_cursor`; [`Error::InvalidInput`] (field
    /// `"cursor"`) for a string that is not a search cursor.
    pub fn cursor(mut self, cursor: &str) -> Result<Self> {
        self.cursor = Some(cursor.parse()?);
        Ok(self)
    }

    /// Searches archived conversations too.
    pub fn include_archived(mut self, include: bool) -> Self {
        self.include_archived = include;
        self
    }
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn limits_are_checked_when_made_and_deserialized() {
        assert_eq!(PageLimit::new(1).unwrap().get(), 1);
        assert_eq!(PageLimit::new(PageLimit::MAX).unwrap().get(), 1000);
        for bad in [0, PageLimit::MAX + 1] {
            let err = ListOptions::new().limit(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains("limit"), "{err}");
            assert!(SearchOptions::new().limit(bad).is_err());
            assert!(serde_json::from_str::<PageLimit>(&bad.to_string()).is_err());
        }
        let o: ListOptions = serde_json::from_str(r#"{"limit":7}"#).unwrap();
        assert_eq!(
            (o.limit.get(), o.cursor, o.include_archived),
            (7, None, false)
        );
        assert!(serde_json::from_str::<ListOptions>(r#"{"limit":0}"#).is_err());
        assert!(serde_json::from_str::<SearchOptions>(r#"{"limit":1001}"#).is_err());
    }

    #[test]
    fn cursors_are_decoded_when_set_and_deserialized() {
        let id = ConversationId::parse("c1").unwrap();
        let c = ListCursor {
            last_active: DateTime::from_timestamp(5, 7).unwrap(),
            id,
        };
        let o = ListOptions::new().cursor(&c.encode()).unwrap();
        assert_eq!(o.cursor.as_ref(), Some(&c));
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<ListOptions>(&json).unwrap(), o);
        let err = serde_json::from_str::<ListOptions>(r#"{"cursor":"v2.x"}"#).unwrap_err();
        assert!(err.to_string().contains("cursor"), "{err}");

        let s = SearchOptions::new().cursor("40").unwrap();
        assert_eq!(s.cursor.map(SearchCursor::offset), Some(40));
        for bad in ["", "-1", "x", "99999999999"] {
            let err = SearchOptions::new().cursor(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(serde_json::from_str::<SearchOptions>(r#"{"cursor":"x"}"#).is_err());
        assert_eq!(SearchCursor::at(60).encode(), "60");
    }
}
