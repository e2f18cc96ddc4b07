//! Who wrote a message, and which role names the core stores.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Who wrote a message.
///
/// The four well-known roles have variants; any other role string is kept as
/// [`Role::Other`]. On the wire a role is a plain string: the known roles in lowercase
/// (`"user"`), others exactly as given.
///
/// # What the core stores
///
/// The well-known roles always; another role when its name is 1..=[`MAX_BYTES`](Self::MAX_BYTES)
/// bytes long, not blank (not only white space) and free of control characters (U+0000 to
/// U+001F and U+007F to U+009F, tab and line feed included: a role is one short name).
/// [`Role::validate`] states the rule, [`NewMessage::validate`](crate::NewMessage::validate)
/// applies it, and the vault refuses a message whose role breaks it with
/// [`Error::InvalidInput`] (field `"role"`) before a backend sees it, whatever the path
/// (the Rust API, the HTTP API, an importer). [`Role::parse`] is `Role::from` with the rule.
/// Reading is lenient: a stored role deserializes whatever it holds.
///
/// ```
/// use chatvault_core::{ErrorKind, Role};
///
/// assert_eq!(Role::from("user"), Role::User);
/// assert_eq!(Role::from("Assistant"), Role::Assistant); // known names are case-insensitive
/// assert_eq!(Role::from("critic").as_str(), "critic");
/// assert_eq!(serde_json::to_string(&Role::Tool).unwrap(), "\"tool\"");
///
/// assert_eq!(Role::parse("critic").unwrap(), Role::Other("critic".into()));
/// for bad in ["", "  ", "a\nb", &"r".repeat(65)] {
///     assert_eq!(Role::parse(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions to the model (`"system"`).
    System,
    /// The person chatting (`"user"`).
    User,
    /// The model (`"assistant"`).
    Assistant,
    /// A tool's output (`"tool"`).
    Tool,
    /// Any other role, kept as given. Build it with `Role::from` (or [`Role::parse`]),
    /// which maps the well-known names to their variants.
    Other(String),
}

impl Role {
    /// The longest role name the core stores, in bytes of UTF-8.
    pub const MAX_BYTES: usize = 64;

    /// The role as it is stored.
    pub fn as_str(&self) -> &str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Other(s) => s,
        }
    }

    /// `Role::from(name)`, refused with [`Error::InvalidInput`] when the core would not
    /// store it (see [`Role::validate`]).
    pub fn parse(name: &str) -> Result<Role> {
        let role = Role::from(name);
        role.validate()?;
        Ok(role)
    }

    /// Checks the rule of the [type docs](Role#what-the-core-stores): a role name of
    /// 1..=[`MAX_BYTES`](Self::MAX_BYTES) bytes, not blank, without control characters.
    /// [`Error::InvalidInput`] (field `"role"`) otherwise.
    pub fn validate(&self) -> Result<()> {
        let name = self.as_str();
        if name.len() > Self::MAX_BYTES {
            return Err(Error::invalid_input(
                "role",
                format!(
                    "is {} bytes long; the limit is {}",
                    name.len(),
                    Self::MAX_BYTES
                ),
            ));
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(Error::invalid_input(
                "role",
                format!("holds the control character U+{:04X}", u32::from(c)),
            ));
        }
        if name.trim().is_empty() {
            return Err(Error::invalid_input("role", "must not be blank"));
        }
        Ok(())
    }
}

impl From<&str> for Role {
    fn from(s: &str) -> Self {
        // The names as written (the usual case) without the lowercase copy.
        match s {
            "system" => return Role::System,
            "user" => return Role::User,
            "assistant" => return Role::Assistant,
            "tool" => return Role::Tool,
            _ => {}
        }
        match s.to_ascii_lowercase().as_str() {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => Role::Other(s.to_owned()),
        }
    }
}

impl From<String> for Role {
    fn from(s: String) -> Self {
        Role::from(s.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Role::from(s))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn the_role_rule() {
        let longest = "r".repeat(Role::MAX_BYTES);
        for ok in [
            "user",
            "critic",
            "Narrator-ü",
            " padded ",
            "\u{200B}",
            longest.as_str(),
        ] {
            assert_eq!(Role::parse(ok).unwrap().as_str(), ok);
        }
        for known in [Role::System, Role::User, Role::Assistant, Role::Tool] {
            known.validate().unwrap();
        }
        let too_long = "é".repeat(Role::MAX_BYTES / 2 + 1);
        for bad in [
            "",
            " ",
            "\u{3000}",
            "a\tb",
            "user\n",
            "\0",
            "\u{7F}",
            "\u{9F}",
            too_long.as_str(),
        ] {
            let err = Role::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().starts_with("invalid role"), "{err}");
            assert!(Role::Other(bad.into()).validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reading_is_lenient() {
        let r: Role = serde_json::from_str("\"\"").unwrap();
        assert_eq!(r, Role::Other(String::new()));
        assert!(r.validate().is_err());
    }
}
