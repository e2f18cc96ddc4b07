//! The stored forms: owners' key references, the header of a sealed value, the
//! associated data that binds a ciphertext to its place.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatvault_core::keys::{MAX_SEGMENT_LEN, encode_component};
use chatvault_core::{ConversationId, Error, Result, UserId};
use sha2::{Digest, Sha256};

use crate::cipher::{Algorithm, DerivedKeys, TAG_LEN};

/// The version byte of every sealed value this release writes.
const FORMAT: u8 = 1;
/// Bytes of a sealed value's header: format, algorithm, key reference, key version.
pub(crate) const VALUE_HEADER_LEN: usize = 1 + 1 + 16 + 4;
/// The prefix of a sealed string (a title, a failure reason).
pub(crate) const STRING_PREFIX: &str = "cvc1:";
/// The prefix of the ids of the conversations that hold wrapped data keys.
pub(crate) const KEY_CONVERSATION_PREFIX: &str = "chatvault-crypt.";

/// Whose data key seals something: the owner as the first segment of an attachment's
/// storage key spells it (`_` for conversations without an owner), so that the files
/// wrapper, which sees only keys, and the messages wrapper, which sees user ids, agree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Owner(String);

impl Owner {
    /// The owner of a conversation of `user` (the vault-wide key for `None`).
    pub(crate) fn of(user: Option<&UserId>) -> Self {
        Owner(match user.map(UserId::as_str) {
            None => "_".to_owned(),
            Some("_") => "%5F".to_owned(),
            Some(u) => encode_component(u, MAX_SEGMENT_LEN),
        })
    }

    /// The owner a storage key's first segment names (the key layout of
    /// [`chatvault_core::keys::storage_key`]); the vault-wide key for other keys.
    pub(crate) fn of_key(key: &str) -> Self {
        let segments: Vec<&str> = key.split('/').collect();
        match segments.as_slice() {
            [user, _, _, _] if !user.is_empty() => Owner((*user).to_owned()),
            _ => Owner("_".to_owned()),
        }
    }

    /// An owner by its segment form as given (for pseudo-owners such as the names key's,
    /// spelled with a `~`, which no encoded user id holds).
    pub(crate) fn raw(segment: &str) -> Self {
        Owner(segment.to_owned())
    }

    /// The segment form.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The 16-byte reference a ciphertext header carries.
    pub(crate) fn key_ref(&self) -> KeyRef {
        let digest = Sha256::new()
            .chain_update(b"chatvault-crypt owner\0")
            .chain_update(self.0.as_bytes())
            .finalize();
        let mut r = [0u8; 16];
        r.copy_from_slice(&digest[..16]);
        KeyRef(r)
    }
}

/// What a ciphertext header names to find its data key: a digest of the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct KeyRef(pub(crate) [u8; 16]);

impl KeyRef {
    /// The conversation of the key store that holds this owner's wrapped data keys.
    pub(crate) fn conversation(&self) -> Result<ConversationId> {
        let name = format!("{KEY_CONVERSATION_PREFIX}keys.{}", hex(&self.0));
        // Letters, digits and dots, 53 bytes at most: always a valid id.
        ConversationId::parse(name)
    }
}

/// Whether `id` is one of the key store's conversations (hidden from the wrapped views).
pub(crate) fn is_key_conversation(id: &ConversationId) -> bool {
    id.as_str().starts_with(KEY_CONVERSATION_PREFIX)
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The header of a sealed value or file: which algorithm, whose key, which version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The AEAD.
    pub(crate) alg: Algorithm,
    /// Whose data key.
    pub(crate) key_ref: KeyRef,
    /// Which version of it.
    pub(crate) version: u32,
}

impl Header {
    /// The header's bytes.
    pub(crate) fn bytes(&self) -> [u8; VALUE_HEADER_LEN] {
        let mut out = [0u8; VALUE_HEADER_LEN];
        out[0] = FORMAT;
        out[1] = self.alg.id();
        out[2..18].copy_from_slice(&self.key_ref.0);
        out[18..22].copy_from_slice(&self.version.to_be_bytes());
        out
    }

    /// Parses the first [`VALUE_HEADER_LEN`] bytes of `bytes`.
    pub(crate) fn parse(bytes: &[u8], location: &(impl fmt::Display + ?Sized)) -> Result<Self> {
        if bytes.len() < VALUE_HEADER_LEN || bytes[0] != FORMAT {
            return Err(corrupt(
                location.to_string(),
                "not a sealed value of format 1",
            ));
        }
        let alg = Algorithm::from_id(bytes[1])
            .ok_or_else(|| corrupt(location.to_string(), "names an unknown algorithm"))?;
        let mut key_ref = [0u8; 16];
        key_ref.copy_from_slice(&bytes[2..18]);
        let mut version = [0u8; 4];
        version.copy_from_slice(&bytes[18..22]);
        Ok(Header {
            alg,
            key_ref: KeyRef(key_ref),
            version: u32::from_be_bytes(version),
        })
    }
}

/// Associated data: a purpose and the fields that say where a value belongs, each
/// length-prefixed so that no two lists of fields give the same bytes.
pub(crate) fn aad(purpose: &str, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for f in std::iter::once(purpose.as_bytes()).chain(fields.iter().copied()) {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Seals `plaintext` at the place `aad` names: header || nonce || ciphertext || tag.
pub(crate) fn seal_value(
    keys: &DerivedKeys,
    header: Header,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let head = header.bytes();
    let bound = [&head[..], aad].concat();
    let mut out = Vec::with_capacity(sealed_len(header.alg, plaintext.len()));
    out.extend_from_slice(&head);
    keys.seal_into(header.alg, &bound, plaintext, &mut out)?;
    Ok(out)
}

/// The length of what [`seal_value`] makes of `plaintext_len` bytes.
pub(crate) fn sealed_len(alg: Algorithm, plaintext_len: usize) -> usize {
    VALUE_HEADER_LEN + alg.nonce_len() + plaintext_len + TAG_LEN
}

/// Opens a sealed value whose header has been parsed; [`Error::Corrupt`] when it does not
/// authenticate (tampered, or moved from another place).
pub(crate) fn open_value(
    keys: &DerivedKeys,
    header: Header,
    aad: &[u8],
    sealed: &[u8],
    location: &(impl fmt::Display + ?Sized),
) -> Result<Vec<u8>> {
    let head = header.bytes();
    let bound = [&head[..], aad].concat();
    keys.open(header.alg, &bound, &sealed[VALUE_HEADER_LEN..])
        .ok_or_else(|| {
            corrupt(
                location.to_string(),
                "the ciphertext does not authenticate: altered, or moved from another place",
            )
        })
}

/// Base64 (URL-safe, no padding) of a sealed value.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of [`b64`]'s text.
pub(crate) fn unb64(text: &str, location: &(impl fmt::Display + ?Sized)) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| corrupt(location.to_string(), "a sealed value is not valid base64"))
}

/// A [`Error::Corrupt`] of this crate.
pub(crate) fn corrupt(location: impl Into<String>, message: impl Into<String>) -> Error {
    Error::corrupt("chatvault-crypt", location, message)
}

/// The error of a value whose data key is no longer in the key store.
pub(crate) fn shredded(location: &(impl fmt::Display + ?Sized)) -> Error {
    corrupt(
        location.to_string(),
        "its data key is not in the key store: destroyed (crypto-shredded), or never written",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_agree_between_user_ids_and_storage_keys() -> Result<()> {
        let alice: UserId = "alice@example.com".parse()?;
        let c: ConversationId = "c1".parse()?;
        let f = "f1".parse()?;
        let key = chatvault_core::keys::storage_key(Some(&alice), &c, &f, "a.pdf")?;
        assert_eq!(Owner::of_key(key.as_str()), Owner::of(Some(&alice)));
        let key = chatvault_core::keys::storage_key(None, &c, &f, "a.pdf")?;
        assert_eq!(Owner::of_key(key.as_str()), Owner::of(None));
        let underscore: UserId = "_".parse()?;
        assert_ne!(Owner::of(Some(&underscore)), Owner::of(None));
        assert!(is_key_conversation(
            &Owner::of(None).key_ref().conversation()?
        ));
        assert_eq!(
            aad("a", &[b"bc"]),
            [0, 0, 0, 1, b'a', 0, 0, 0, 2, b'b', b'c']
        );
        assert_ne!(aad("a", &[b"b", b"c"]), aad("a", &[b"bc"]));
        Ok(())
    }

    /// What earlier releases stored for these values (computed by the code at 17e4603, before
    /// sealing was streamlined): a sealed value keeps its bytes.
    #[test]
    fn sealed_values_keep_their_stored_bytes() -> Result<()> {
        let keys = DerivedKeys::new(&crate::cipher::DataKey::from_slice(&[7u8; 32])?)?;
        let place = aad(
            "part",
            &[b"c1", b"m1", &0u64.to_be_bytes(), &1u64.to_be_bytes()],
        );
        let expected = [
            (
                Algorithm::Aes256Gcm,
                "AQIPH5XdtnXvu1APoU-0xA8VAAAAA4ClnTPOlVEo4-sdsbCBa_oYhccNGmj3Wm5hFItx3AmEN7zWVTUx0kh9acQXLXjbilwVCJ_8famOPH0",
                "AQIPH5XdtnXvu1APoU-0xA8VAAAAA5w9MbrWcQ1xAE5pkR-35uNozahQbJtmzIqgges",
            ),
            (
                Algorithm::XChaCha20Poly1305,
                "AQEPH5XdtnXvu1APoU-0xA8VAAAAA4HsjFSglfGricapgrNyG934ctTbSP8GvrvkjkkIhlIcFQ0Q8dH7dG7pr-_74siShhRXmIQUSW7ksElzOfD-9iOcFoUSJk0",
                "AQEPH5XdtnXvu1APoU-0xA8VAAAAA3WEiWBfLFoxKt-xqiXokfPyRRZ-Luy5Yehs_zdUGufFSe9dPRQ2Gjg",
            ),
        ];
        for (alg, part, empty) in expected {
            let header = Header {
                alg,
                key_ref: Owner::of(None).key_ref(),
                version: 3,
            };
            let plaintext = br#"{"text":"hello","type":"text"}"#;
            let sealed = seal_value(&keys, header, &place, plaintext)?;
            assert_eq!(b64(&sealed), part, "{alg:?}");
            assert_eq!(sealed.len(), sealed_len(alg, plaintext.len()));
            assert_eq!(open_value(&keys, header, &place, &sealed, "")?, plaintext);
            assert!(open_value(&keys, header, b"elsewhere", &sealed, "").is_err());
            let sealed = seal_value(&keys, header, b"", b"")?;
            assert_eq!(b64(&sealed), empty, "{alg:?}");
            assert_eq!(open_value(&keys, header, b"", &sealed, "")?, b"");
        }
        Ok(())
    }
}
