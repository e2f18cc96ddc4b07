//! What a search query may hold: the one rule every backend's search and the vault apply.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A full-text search query the core accepts: the user's words, not a query language.
///
/// The rule, the same on every backend: a query is at most [`MAX_BYTES`](Self::MAX_BYTES)
/// bytes long, holds at least one character that is not white space, and holds no control
/// character other than tab, line feed and carriage return (which separate words like a
/// space). Anything else is [`Error::InvalidInput`] with field `"query"`. Every other
/// character is literal text: quotes, `*`, `^`, `:`, `-`, parentheses and words like `AND`,
/// `OR`, `NOT` or `NEAR` are searched for as written, never read as operators, so a
/// backend must quote or escape them for its store (or bind the query as a parameter of a
/// plain-text search function).
///
/// [`MessagesBackend::search`](crate::MessagesBackend::search) takes the raw string;
/// a backend calls [`SearchQuery::parse`] first and answers its error as it is, so that
/// every backend refuses the same queries (the conformance suite checks it).
///
/// ```
/// use chatvault_core::{ErrorKind, SearchQuery};
///
/// let q = SearchQuery::parse("  \"quoted\" OR near*  ").unwrap();
/// assert_eq!(q.terms().collect::<Vec<_>>(), ["\"quoted\"", "OR", "near*"]);
/// for bad in ["", " \t", "a\0b", "\u{7}", &"x".repeat(1025)] {
///     assert_eq!(SearchQuery::parse(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SearchQuery(String);

impl SearchQuery {
    /// The longest query, in bytes of UTF-8.
    pub const MAX_BYTES: usize = 1024;

    /// Checks `query` against the rule; the query is kept exactly as given.
    pub fn parse(query: &str) -> Result<SearchQuery> {
        if query.len() > Self::MAX_BYTES {
            return Err(Error::invalid_input(
                "query",
                format!(
                    "is {} bytes long; the limit is {}",
                    query.len(),
                    Self::MAX_BYTES
                ),
            ));
        }
        if let Some(c) = query.chars().find(|&c| c.is_control() && !is_separator(c)) {
            return Err(Error::invalid_input(
                "query",
                format!("holds the control character U+{:04X}", u32::from(c)),
            ));
        }
        if query.trim().is_empty() {
            return Err(Error::invalid_input("query", "must not be blank"));
        }
        Ok(SearchQuery(query.to_owned()))
    }

    /// The query as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The query's white-space-separated words, in order (never empty, none blank).
    pub fn terms(&self) -> impl Iterator<Item = &str> {
        self.0.split_whitespace()
    }
}

/// The control characters a query may hold: they separate words.
fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
}

impl FromStr for SearchQuery {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        SearchQuery::parse(s)
    }
}

impl fmt::Display for SearchQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SearchQuery {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn the_rule_refuses_blank_long_and_control_characters_only() {
        for ok in [
            "a",
            "\"",
            "a\tb\r\nc",
            "NEAR(a b, 2) AND -c:d ^e*",
            "\u{200B}",
            "\u{FEFF}é中🙂",
            &"x".repeat(SearchQuery::MAX_BYTES),
        ] {
            assert_eq!(SearchQuery::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            " ",
            "\t\r\n",
            "\u{3000}\u{A0}",
            "\0",
            "a\0",
            "a\u{1B}[0m",
            "\u{7F}",
            "\u{85}",
            &"é".repeat(513),
        ] {
            let err = SearchQuery::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("query"), "{err}");
        }
    }

    #[test]
    fn terms_split_on_white_space() {
        let q: SearchQuery = " a\u{3000}b\n\"c d\" ".parse().unwrap();
        assert_eq!(q.terms().collect::<Vec<_>>(), ["a", "b", "\"c", "d\""]);
        assert_eq!(q.to_string(), " a\u{3000}b\n\"c d\" ");
    }
}
