//! Validation of names and titles, and the storage keys of attachments.
//!
//! A storage key is `{user or _}/{conversation_id}/{file_id}/{filename}`. Every component
//! is encoded by [`encode_component`] so that whatever a user id or file name holds (`..`,
//! `/`, `\`, NUL, a drive letter, a Windows device name, a 10,000-character name) the key
//! stays a relative path of exactly four plain segments that is a valid
//! [`StorageKey`], on every operating system; and the encoding is injective, so one
//! attachment's key never equals another's.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Error, Result};
use crate::ids::{ConversationId, FileId, StorageKey, UserId};

pub use crate::ids::{MAX_ID_LEN, MAX_KEY_LEN, MAX_USER_ID_LEN};

/// The longest file name accepted, in bytes (the name is kept whole in the attachment;
/// its storage-key form is shortened to [`MAX_KEY_FILENAME_LEN`]).
pub const MAX_FILENAME_LEN: usize = 1024;
/// The longest file-name segment of a storage key, in bytes.
pub const MAX_KEY_FILENAME_LEN: usize = 160;
/// The longest title accepted, in bytes.
pub const MAX_TITLE_LEN: usize = 4096;

/// Bytes left as they are in key components: ASCII letters, digits, `-`, `_`, `.`.
/// (`~` is encoded: it marks a shortened component, so no plain encoding contains it.)
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

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

/// Encodes one non-empty key component so that it is a single, harmless path segment on
/// every operating system (an empty `raw` gives an empty string: callers validate first).
///
/// - Everything but ASCII letters, digits, `-`, `_` and `.` is percent-encoded (`~` too).
/// - A component made only of dots (`.`, `..`) has its dots encoded; a trailing dot is
///   encoded (Windows drops it).
/// - A Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9`, in
///   any case, with or without an extension: `aux.pdf`) has its first letter encoded.
/// - An encoding longer than `max_len` bytes (at most [`MAX_SEGMENT_LEN`]) is cut without
///   splitting an escape and ends with `~` and 32 hex digits of the raw value's SHA-256.
///
/// The encoding is injective: percent-encoding is, the device-name and dot rules only
/// encode more bytes (decoding gives the same raw value), and only shortened forms contain
/// `~`, so a shortened form never equals a plain one, and two shortened ones differ unless
/// SHA-256 collides.
pub fn encode_component(raw: &str, max_len: usize) -> String {
    let max_len = max_len.clamp(40, MAX_SEGMENT_LEN);
    let mut encoded: String = utf8_percent_encode(raw, COMPONENT).collect();
    if encoded.bytes().all(|b| b == b'.') {
        encoded = encoded.replace('.', "%2E");
    } else if encoded.ends_with('.') {
        encoded.pop();
        encoded.push_str("%2E");
    }
    if is_windows_device_name(&encoded) {
        let first = encoded.as_bytes()[0];
        encoded.replace_range(..1, &format!("%{first:02X}"));
    }
    if encoded.len() > max_len {
        let digest = crate::digest::sha256_hex(raw.as_bytes());
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

/// Whether a (percent-encoded) segment names a Windows device: its part before the first
/// dot is CON, PRN, AUX, NUL, COM0-9 or LPT0-9 (any case; also with superscript digits).
fn is_windows_device_name(segment: &str) -> bool {
    let stem = segment
        .split('.')
        .next()
        .unwrap_or(segment)
        .to_ascii_uppercase();
    match stem.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        s if s.len() == 4 && (s.starts_with("COM") || s.starts_with("LPT")) => {
            s.as_bytes()[3].is_ascii_digit()
        }
        // COM¹ etc.: the superscript digit is percent-encoded (%C2%B9, %C2%B2, %C2%B3).
        s if s.len() == 9 && (s.starts_with("COM") || s.starts_with("LPT")) => {
            matches!(&s[3..], "%C2%B9" | "%C2%B2" | "%C2%B3")
        }
        _ => false,
    }
}

/// The storage key of an attachment: `{user or _}/{conversation_id}/{file_id}/{filename}`,
/// each component encoded by [`encode_component`].
///
/// ```
/// use chatvault_core::keys::storage_key;
///
/// # use chatvault_core::{ConversationId, FileId, UserId};
/// let (c1, f1) = ("c1".parse::<ConversationId>()?, "f1".parse::<FileId>()?);
/// let alice: UserId = "alice@example.com".parse()?;
/// let key = storage_key(Some(&alice), &c1, &f1, "../../etc/passwd")?;
/// assert_eq!(key, "alice%40example.com/c1/f1/..%2F..%2Fetc%2Fpasswd");
/// let key = storage_key(None, &c1, &f1, "report final.pdf")?;
/// assert_eq!(key, "_/c1/f1/report%20final.pdf");
/// let key = storage_key(None, &c1, &f1, "aux.pdf")?;
/// assert_eq!(key, "_/c1/f1/%61ux.pdf"); // a Windows device name, encoded
/// # Ok::<(), chatvault_core::Error>(())
/// ```
pub fn storage_key(
    user_id: Option<&UserId>,
    conversation_id: &ConversationId,
    file_id: &FileId,
    filename: &str,
) -> Result<StorageKey> {
    validate_filename(filename)?;
    let user = match user_id.map(UserId::as_str) {
        // "_" stands for "no user": a user literally named "_" gets its own prefix.
        Some("_") => "%5F".to_owned(),
        Some(u) => encode_component(u, MAX_SEGMENT_LEN),
        None => "_".to_owned(),
    };
    StorageKey::parse(format!(
        "{user}/{}/{}/{}",
        encode_component(conversation_id.as_str(), MAX_SEGMENT_LEN),
        encode_component(file_id.as_str(), MAX_SEGMENT_LEN),
        encode_component(filename, MAX_KEY_FILENAME_LEN),
    ))
}

/// RFC 5987 `attr-char`: what stays unencoded in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The `Content-Disposition` value that makes a browser save a download as `filename`
/// (RFC 6266, with the RFC 5987 `filename*` form for non-ASCII names):
/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>`.
///
/// The quoted fallback, for old clients, replaces each non-ASCII or control character,
/// `"`, `\`, `%` and `/` with `_`; `filename*` keeps the name exactly. The value is
/// printable ASCII, so it is always a valid HTTP header value.
///
/// ```
/// use chatvault_core::keys::content_disposition;
///
/// assert_eq!(
///     content_disposition("résumé 2026.pdf"),
///     r#"attachment; filename="r_sum_ 2026.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%202026.pdf"#
/// );
/// ```
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && !matches!(c, '"' | '\\' | '%' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(filename, ATTR_CHAR);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(user: Option<&str>, conv: &str, file: &str, name: &str) -> Result<StorageKey> {
        let user = user.map(UserId::parse).transpose()?;
        storage_key(
            user.as_ref(),
            &ConversationId::parse(conv)?,
            &FileId::parse(file)?,
            name,
        )
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
            "trailing.",
        ];
        for name in cases {
            let key = key(Some(name), "c", "f", name).unwrap();
            assert_eq!(key.as_str().split('/').count(), 4, "{key}");
            for segment in key.as_str().split('/') {
                assert!(!segment.ends_with('.'), "{key}");
            }
        }
        assert!(UserId::parse("a\0b").is_err());
        assert!(key(Some("u"), "c", "f", "line\nbreak").is_err());
        assert!(key(Some("u"), "c", "f", "").is_err());
    }

    #[test]
    fn windows_device_names_are_encoded() {
        for name in [
            "CON",
            "nul",
            "aux.pdf",
            "Com1.txt",
            "LPT9",
            "prn.tar.gz",
            "COM¹",
        ] {
            let k = key(Some(name), "c", "f", name).unwrap();
            for segment in k.as_str().split('/') {
                assert!(!is_windows_device_name(segment), "{name}: {k}");
            }
        }
        // Names that merely start like one are left alone.
        assert_eq!(encode_component("console.log", 200), "console.log");
        assert_eq!(encode_component("COM10", 200), "COM10");
    }

    #[test]
    fn long_filenames_are_cut_without_splitting_escapes() {
        let name = "é".repeat(500); // 1000 bytes, each char two escapes
        let k = key(None, "c", "f", &name).unwrap();
        let last = k.as_str().rsplit('/').next().unwrap();
        assert!(last.len() <= MAX_KEY_FILENAME_LEN);
        let (prefix, hash) = last.split_once('~').unwrap();
        assert_eq!(prefix.len() % 3, 0, "cut inside an escape: {last}");
        assert_eq!(hash.len(), 32);
        let other = format!("{}x", "é".repeat(499));
        assert_ne!(k, key(None, "c", "f", &other).unwrap());
        assert!(key(None, "c", "f", &"a".repeat(MAX_FILENAME_LEN + 1)).is_err());
    }

    #[test]
    fn shortened_forms_never_equal_plain_ones() {
        // A name whose plain encoding looks like a shortened one: ~ is encoded, so no.
        let long = "a".repeat(300);
        let short = encode_component(&long, 60);
        assert!(short.contains('~'));
        assert_ne!(encode_component(&short, 200), short);
    }

    #[test]
    fn a_user_named_underscore_is_not_no_user() {
        let none = key(None, "c", "f", "x").unwrap();
        let underscore = key(Some("_"), "c", "f", "x").unwrap();
        assert_ne!(
            none.as_str().split('/').next(),
            underscore.as_str().split('/').next()
        );
    }

    #[test]
    fn same_name_different_file_ids_give_different_keys() {
        assert_ne!(
            key(Some("u"), "c", "f1", "doc.pdf").unwrap(),
            key(Some("u"), "c", "f2", "doc.pdf").unwrap()
        );
    }

    proptest! {
        #[test]
        fn any_user_and_filename_give_a_safe_key(
            user in "\\PC{1,64}",
            name in "\\PC{1,250}",
            conv in "[a-zA-Z0-9:@._-]{1,128}",
        ) {
            prop_assume!(conv != "." && conv != "..");
            let k = key(Some(&user), &conv, "file-1", &name).unwrap();
            let segments: Vec<&str> = k.as_str().split('/').collect();
            prop_assert_eq!(segments.len(), 4);
            for s in segments {
                prop_assert!(s != "." && s != ".." && !s.is_empty() && !s.ends_with('.'));
                prop_assert!(!is_windows_device_name(s));
            }
        }

        #[test]
        fn encoding_is_injective(a in "\\PC{1,120}", b in "\\PC{1,120}") {
            prop_assume!(a != b);
            prop_assert_ne!(encode_component(&a, 60), encode_component(&b, 60));
        }

        #[test]
        fn encoding_is_injective_for_near_names(a in "[a-zA-Z.~ %]{1,80}") {
            let b = format!("{a}.");
            prop_assert_ne!(encode_component(&a, 60), encode_component(&b, 60));
        }
    }
}
