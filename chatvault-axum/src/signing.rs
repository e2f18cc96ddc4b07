//! HMAC-signed download links, for files backends without signed URLs of their own.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatvault_core::{ConversationId, FileId};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest signing key accepted, in bytes.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

/// Signs and checks download links with HMAC-SHA256.
///
/// A link names a conversation, a file and an expiry time (Unix seconds); its signature
/// covers all three, so none can be changed without the key.
#[derive(Clone)]
pub(crate) struct Signer {
    /// The MAC keyed once; cloned for each link.
    keyed: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { key: <redacted> }")
    }
}

impl Signer {
    /// A signer with this key; `None` when it is shorter than [`MIN_SIGNING_KEY_BYTES`].
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        if key.len() < MIN_SIGNING_KEY_BYTES {
            return None;
        }
        let keyed = HmacSha256::new_from_slice(key).ok()?;
        Some(Signer { keyed })
    }

    /// A signer with a random key: links it makes stop working when the process restarts.
    /// `None` when the operating system has no randomness to give.
    pub(crate) fn random() -> Option<Self> {
        let mut key = [0u8; MIN_SIGNING_KEY_BYTES];
        getrandom::fill(&mut key).ok()?;
        Self::new(&key)
    }

    fn mac(&self, conversation: &ConversationId, file: &FileId, expires: i64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        // Ids never contain '\n' (they are validated), so the fields cannot run together.
        mac.update(b"chatvault-download-v1\n");
        mac.update(conversation.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(file.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The signature of a link, URL-safe base64.
    pub(crate) fn sign(
        &self,
        conversation: &ConversationId,
        file: &FileId,
        expires: i64,
    ) -> String {
        let tag = self
            .mac(conversation, file, expires)
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(tag)
    }

    /// Whether `signature` is this link's, compared in constant time.
    pub(crate) fn verify(
        &self,
        conversation: &ConversationId,
        file: &FileId,
        expires: i64,
        signature: &str,
    ) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.mac(conversation, file, expires)
            .verify_slice(&tag)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_every_field() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let c: ConversationId = "c1".parse().unwrap();
        let f: FileId = "f1".parse().unwrap();
        let sig = signer.sign(&c, &f, 100);
        assert!(signer.verify(&c, &f, 100, &sig));
        assert!(!signer.verify(&c, &f, 101, &sig));
        assert!(!signer.verify(&"c2".parse().unwrap(), &f, 100, &sig));
        assert!(!signer.verify(&c, &"f2".parse().unwrap(), 100, &sig));
        assert!(!signer.verify(&c, &f, 100, "not base64!"));
        let other = Signer::new(b"another key, 32 bytes long......").unwrap();
        assert!(Signer::new(b"short").is_none());
        assert!(!other.verify(&c, &f, 100, &sig));
    }
}
