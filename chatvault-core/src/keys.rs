//! Validation of ids and names, and the storage keys of attachments.
//!
//! A storage key is `{user or _}/{conversation_id}/{file_id}/{filename}`. Every component
//! is percent-encoded so that whatever a user id or file name holds (`..`, `/`, `\`, NUL,
//! a drive letter, a 10,000-character name) the key stays a relative path of exactly four
//! plain segments, and one attachment's key never equals another's: the file id is unique.
//! [`validate_key`] is the check every first-party [`FilesBackend`](crate::FilesBackend)
//! applies to the keys it is given, whoever built them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Error, Result};

/// The longest id (conversation, message, file) accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// The longest user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;
/// The longest file name accepted, in bytes (the name is kept whole in the attachment;
/// its storage-key form is shortened to [`MAX_KEY_FILENAME_LEN`]).
pub const MAX_FILENAME_LEN: usize = 1024;
/// The longest file-name segment of a storage key, in bytes.
pub const MAX_KEY_FILENAME_LEN: usize = 160;
/// The longest title accepted, in bytes.
pub const MAX_TITLE_LEN: usize = 4096;
/// The longest storage key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Bytes left as they are in key components: ASCII letters, digits, `-`, `_`, `.`, `~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Checks an id (conversation, message or file id) chosen by a caller.
///
/// 1 to [`MAX_ID_LEN`] bytes of ASCII letters, digits, `-`, `_`, `.`, `:` and `@`, and not
/// `.` or `..`. Ids need not be UUIDs.
pub fn validate_id(field: &'static str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid_input(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid_input(
            field,
            format!("is {} bytes long; the limit is {MAX_ID_LEN}", id.len()),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')))
    {
        return Err(Error::invalid_input(
            field,
            format!("{c:?} is not allowed (use ASCII letters, digits, - _ . : @)"),
        ));
    }
    if id == "." || id == ".." {
        return Err(Error::invalid_input(field, "must not be . or .."));
    }
    Ok(())
}

/// Checks a user id: 1 to [`MAX_USER_ID_LEN`] bytes, no control characters.
///
/// Anything else is allowed (emails, `auth0|123`, non-ASCII): storage keys encode it.
pub fn validate_user_id(user_id: &str) -> Result<()> {
    if user_id.is_empty() {
        return Err(Error::invalid_input("user_id", "must not be empty"));
    }
    if user_id.len() > MAX_USER_ID_LEN {
        return Err(Error::invalid_input(
            "user_id",
            format!(
                "is {} bytes long; the limit is {MAX_USER_ID_LEN}",
                user_id.len()
            ),
        ));
    }
    if user_id.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            "user_id",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a file name as a user gave it: 1 to [`MAX_FILENAME_LEN`] bytes, no control
/// characters (no NUL, no line breaks that could split an HTTP header).
pub fn validate_filename(filename: &str) -> Result<()> {
    if filename.is_empty() {
        return Err(Error::invalid_input("filename", "must not be empty"));
    }
    if filename.len() > MAX_FILENAME_LEN {
        return Err(Error::invalid_input(
            "filename",
            format!(
                "is {} bytes long; the limit is {MAX_FILENAME_LEN}",
                filename.len()
            ),
        ));
    }
    if filename.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            "filename",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a MIME content type: `type/subtype` with optional parameters, printable ASCII,
/// at most 255 bytes.
pub fn validate_content_type(content_type: &str) -> Result<()> {
    let ok = !content_type.is_empty()
        && content_type.len() <= 255
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
        && content_type
            .split(';')
            .next()
            .is_some_and(|essence| {
                let mut parts = essence.trim().splitn(2, '/');
                matches!((parts.next(), parts.next()), (Some(t), Some(s)) if !t.is_empty() && !s.is_empty())
            });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "content_type",
            format!("{content_type:?} is not a MIME type like \"application/pdf\""),
        ))
    }
}

/// Checks a conversation title: at most [`MAX_TITLE_LEN`] bytes, no NUL.
pub fn validate_title(title: &str) -> Result<()> {
    if title.len() > MAX_TITLE_LEN {
        return Err(Error::invalid_input(
            "title",
            format!(
                "is {} bytes long; the limit is {MAX_TITLE_LEN}",
                title.len()
            ),
        ));
    }
    if title.contains('\0') {
        return Err(Error::invalid_input("title", "must not contain NUL"));
    }
    Ok(())
}

/// The longest segment of a storage key that [`encode_component`] makes, in bytes.
pub const MAX_SEGMENT_LEN: usize = 200;

/// Percent-encodes one non-empty key component so that it is a single, harmless path
/// segment (an empty `raw` gives an empty string: callers validate first).
///
/// Everything but ASCII letters, digits, `-`, `_`, `.` and `~` is encoded; a component
/// made only of dots (`.`, `..`, `...`) has its dots encoded too. An encoding longer than
/// `max_len` bytes (at most [`MAX_SEGMENT_LEN`]) is cut, without splitting an escape, and
/// ends with `~` and 32 hex digits of the raw value's SHA-256, so that distinct long values
/// still give distinct segments.
pub fn encode_component(raw: &str, max_len: usize) -> String {
    let max_len = max_len.clamp(40, MAX_SEGMENT_LEN);
    let mut encoded: String = utf8_percent_encode(raw, COMPONENT).collect();
    if encoded.bytes().all(|b| b == b'.') {
        encoded = encoded.replace('.', "%2E");
    }
    if encoded.len() > max_len {
        let digest = crate::vault::sha256_hex(raw.as_bytes());
        let mut cut = max_len - 33;
        // Do not cut inside a "%XX" escape.
        if let Some(pct) = encoded[..cut].rfind('%')
            && pct + 3 > cut
        {
            cut = pct;
        }
        encoded.truncate(cut);
        encoded.push('~');
        encoded.push_str(&digest[..32]);
    }
    encoded
}

/// The storage key of an attachment: `{user or _}/{conversation_id}/{file_id}/{filename}`,
/// each component encoded by [`encode_component`].
///
/// ```
/// use chatvault_core::keys::storage_key;
///
/// let key = storage_key(Some("alice@example.com"), "c1", "f1", "../../etc/passwd").unwrap();
/// assert_eq!(key, "alice%40example.com/c1/f1/..%2F..%2Fetc%2Fpasswd");
/// let key = storage_key(None, "c1", "f2", "report final.pdf").unwrap();
/// assert_eq!(key, "_/c1/f2/report%20final.pdf");
/// ```
pub fn storage_key(
    user_id: Option<&str>,
    conversation_id: &str,
    file_id: &str,
    filename: &str,
) -> Result<String> {
    if let Some(user) = user_id {
        validate_user_id(user)?;
    }
    validate_id("conversation id", conversation_id)?;
    validate_id("file id", file_id)?;
    validate_filename(filename)?;
    let user = match user_id {
        // "_" stands for "no user": a user literally named "_" gets its own prefix.
        Some("_") => "%5F".to_owned(),
        Some(u) => encode_component(u, MAX_SEGMENT_LEN),
        None => "_".to_owned(),
    };
    let key = format!(
        "{user}/{}/{}/{}",
        encode_component(conversation_id, MAX_SEGMENT_LEN),
        encode_component(file_id, MAX_SEGMENT_LEN),
        encode_component(filename, MAX_KEY_FILENAME_LEN),
    );
    validate_key(&key)?;
    Ok(key)
}

/// Checks a storage key given to a files backend: a relative path of plain segments.
///
/// Rejected: the empty key, keys over [`MAX_KEY_LEN`] bytes, control characters (NUL
/// included), `\`, `:`, a leading `/`, empty segments (`a//b`, a trailing `/`), and
/// `.` or `..` segments. A key that passes cannot climb out of a backend's root directory
/// (no parent segments, no absolute path, no drive or stream syntax). Windows device names
/// such as `NUL` are not rejected; storage keys from [`storage_key`] never are bare
/// device names, since their last segment is a file name under three others.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::invalid_input(
            "storage key",
            format!("{key:?}: {reason}"),
        ))
    };
    if key.is_empty() {
        return bad("must not be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("is too long");
    }
    if key.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    if key.contains('\\') || key.contains(':') {
        return bad("must not contain \\ or :");
    }
    for segment in key.split('/') {
        match segment {
            "" => return bad("must be relative and have no empty segments"),
            "." | ".." => return bad("must not have . or .. segments"),
            s if s.len() > 255 => return bad("has a segment longer than 255 bytes"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids() {
        for ok in ["a", "019a-b_c.d:e@f", &"x".repeat(128)] {
            validate_id("id", ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a b",
            "é",
            "a\0",
            &"x".repeat(129),
        ] {
            assert!(validate_id("id", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hostile_names_stay_inside() {
        let cases = [
            "..",
            ".",
            "...",
            "/etc/passwd",
            "C:\\Windows\\win.ini",
            "a/../../b",
            "\\\\server\\share",
            "~",
            "名前.txt",
        ];
        for name in cases {
            let key = storage_key(Some(name), "c", "f", name).unwrap();
            validate_key(&key).unwrap();
            assert_eq!(key.split('/').count(), 4, "{key}");
        }
        assert!(storage_key(Some("a\0b"), "c", "f", "x").is_err());
        assert!(storage_key(Some("u"), "c", "f", "line\nbreak").is_err());
        assert!(storage_key(Some("u"), "c", "f", "").is_err());
        assert!(storage_key(Some(""), "c", "f", "x").is_err());
    }

    #[test]
    fn long_filenames_are_cut_without_splitting_escapes() {
        let name = "é".repeat(500); // 1000 bytes, each char two escapes
        let key = storage_key(None, "c", "f", &name).unwrap();
        let last = key.rsplit('/').next().unwrap();
        assert!(last.len() <= MAX_KEY_FILENAME_LEN);
        let (prefix, hash) = last.split_once('~').unwrap();
        assert_eq!(prefix.len() % 3, 0, "cut inside an escape: {last}");
        assert_eq!(hash.len(), 32);
        // Two long names that share their first 500 characters still differ.
        let other = format!("{}x", "é".repeat(499));
        assert_ne!(key, storage_key(None, "c", "f", &other).unwrap());
        assert!(storage_key(None, "c", "f", &"a".repeat(MAX_FILENAME_LEN + 1)).is_err());
    }

    #[test]
    fn a_user_named_underscore_is_not_no_user() {
        let none = storage_key(None, "c", "f", "x").unwrap();
        let underscore = storage_key(Some("_"), "c", "f", "x").unwrap();
        assert_ne!(none.split('/').next(), underscore.split('/').next());
        validate_key(&underscore).unwrap();
    }

    #[test]
    fn same_name_different_file_ids_give_different_keys() {
        let a = storage_key(Some("u"), "c", "f1", "doc.pdf").unwrap();
        let b = storage_key(Some("u"), "c", "f2", "doc.pdf").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn key_validation() {
        for bad in [
            "", "/abs", "a//b", "a/", "../a", "a/./b", "a\\b", "c:/x", "a\0b",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        validate_key("u/c/f/name.txt").unwrap();
        validate_key("single").unwrap();
    }

    #[test]
    fn content_types() {
        validate_content_type("application/pdf").unwrap();
        validate_content_type("text/plain; charset=utf-8").unwrap();
        for bad in ["", "pdf", "/x", "a/", "text/plain\r\nX-Evil: 1"] {
            assert!(validate_content_type(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn any_user_and_filename_give_a_safe_key(
            user in "\\PC{1,64}",
            name in "\\PC{1,250}",
            conv in "[a-zA-Z0-9:@._-]{1,128}",
        ) {
            prop_assume!(conv != "." && conv != "..");
            let key = storage_key(Some(&user), &conv, "file-1", &name).unwrap();
            prop_assert!(validate_key(&key).is_ok());
            let segments: Vec<&str> = key.split('/').collect();
            prop_assert_eq!(segments.len(), 4);
            for s in segments {
                prop_assert!(s != "." && s != ".." && !s.is_empty());
            }
        }

        #[test]
        fn encoding_is_injective_for_short_names(a in "\\PC{1,40}", b in "\\PC{1,40}") {
            prop_assume!(a != b);
            prop_assert_ne!(encode_component(&a, 60), encode_component(&b, 60));
        }
    }
}
