//! The primitives: data keys, the keys derived from them, sealing of small values with
//! synthetic nonces, and the AEAD of one attachment segment.

use std::fmt;

use aead_stream::{StreamBE32, StreamPrimitive};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chatvault_core::{Error, Result};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The AEAD a vault encrypts new data with. Data written with either is readable whatever
/// the setting: every ciphertext names its algorithm.
///
/// The default is [`Aes256Gcm`](Algorithm::Aes256Gcm): where the CPU has AES and
/// carry-less multiply instructions (every x86-64 server of the last decade, ARMv8 with
/// the crypto extensions) it seals about 1.5 times as fast as XChaCha20-Poly1305 (see the
/// README's costs: the difference decides whether a large upload stays within its 10%
/// budget), and it is the FIPS-approved choice. Its 96-bit nonces are safe here because
/// none is drawn at random for long: each attachment has its own key (derived from a
/// random 256-bit salt), and small values take a synthetic nonce (an HMAC of what they
/// seal and where), which repeats only for the same value at the same place; a collision
/// between different values needs about 2^48 of them under one key version.
/// [`XChaCha20Poly1305`](Algorithm::XChaCha20Poly1305) is the choice on CPUs without AES
/// instructions (it runs in constant time in software everywhere, faster there than
/// software AES).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// XChaCha20-Poly1305 (24-byte nonces).
    XChaCha20Poly1305,
    /// AES-256-GCM (12-byte nonces).
    #[default]
    Aes256Gcm,
}

impl Algorithm {
    /// The byte that names the algorithm in a ciphertext header.
    pub(crate) fn id(self) -> u8 {
        match self {
            Algorithm::XChaCha20Poly1305 => 1,
            Algorithm::Aes256Gcm => 2,
        }
    }

    /// The algorithm a header byte names.
    pub(crate) fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Algorithm::XChaCha20Poly1305),
            2 => Some(Algorithm::Aes256Gcm),
            _ => None,
        }
    }

    /// The nonce length of one sealed value.
    pub(crate) fn nonce_len(self) -> usize {
        match self {
            Algorithm::XChaCha20Poly1305 => 24,
            Algorithm::Aes256Gcm => 12,
        }
    }

    /// The nonce-prefix length of a STREAM (the nonce less its 5-byte counter and flag).
    pub(crate) fn stream_prefix_len(self) -> usize {
        self.nonce_len() - 5
    }
}

/// The bytes of an authentication tag.
pub(crate) const TAG_LEN: usize = 16;

/// A 256-bit data key, wiped from memory when dropped. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        random(key.as_mut_slice())?;
        Ok(DataKey(key))
    }

    /// A key from its 32 bytes ([`Error::InvalidInput`] for another length).
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::invalid_input("data key", "must be 32 bytes"))?;
        Ok(DataKey(Zeroizing::new(array)))
    }

    /// The key's bytes: for a [`KeyProvider`](crate::KeyProvider) to wrap them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Fills `buf` from the operating system's random generator.
pub(crate) fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::backend("chatvault-crypt", e.to_string()))
}

/// HKDF-SHA256 of `ikm` with `salt` and `info`, 32 bytes.
pub(crate) fn derive(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, out.as_mut_slice())
        .map_err(|_| Error::backend("chatvault-crypt", "HKDF refused a 32-byte output"))?;
    Ok(out)
}

/// HMAC-SHA256 of the parts, in order.
pub(crate) fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC pads a key shorter than the hash's 64-byte block with zeros: the same MAC.
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new((&*block).into());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The keys derived from one data key version.
///
/// The value key is kept as the two AEADs built from it (their key schedules made once,
/// not per value; both wipe themselves when dropped).
pub(crate) struct DerivedKeys {
    /// Seals small values (message parts, titles, metadata) with AES-256-GCM.
    values_aes: Aes256Gcm,
    /// The same key as XChaCha20-Poly1305.
    values_xchacha: XChaCha20Poly1305,
    /// Keys the synthetic nonces of sealed values.
    nonces: Zeroizing<[u8; 32]>,
    /// Root of the per-file keys (each file draws its own salt).
    files: Zeroizing<[u8; 32]>,
}

impl DerivedKeys {
    /// Derives the keys of `key`.
    pub(crate) fn new(key: &DataKey) -> Result<Self> {
        let values = derive(key.expose(), None, b"chatvault-crypt/1 values")?;
        Ok(DerivedKeys {
            values_aes: Aes256Gcm::new_from_slice(values.as_slice()).map_err(|_| bad_key())?,
            values_xchacha: XChaCha20Poly1305::new_from_slice(values.as_slice())
                .map_err(|_| bad_key())?,
            nonces: derive(key.expose(), None, b"chatvault-crypt/1 synthetic nonces")?,
            files: derive(key.expose(), None, b"chatvault-crypt/1 files")?,
        })
    }

    /// [`seal_into`](Self::seal_into) a new buffer.
    #[cfg(test)]
    pub(crate) fn seal(&self, alg: Algorithm, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(alg.nonce_len() + plaintext.len() + TAG_LEN);
        self.seal_into(alg, aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Seals `plaintext` with `aad`, appending nonce || ciphertext || tag to `out` (one
    /// buffer, encrypted in place: the value is copied once, into `out`).
    ///
    /// The nonce is synthetic: HMAC of the associated data and the plaintext, so sealing
    /// the same value at the same place gives the same bytes (what keeps a retried append
    /// idempotent in the wrapped backend) and different values never share a nonce.
    pub(crate) fn seal_into(
        &self,
        alg: Algorithm,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let len = (aad.len() as u64).to_be_bytes();
        let synthetic = hmac(&self.nonces, &[&[alg.id()], &len, aad, plaintext]);
        let nonce = &synthetic[..alg.nonce_len()];
        out.reserve(nonce.len() + plaintext.len() + TAG_LEN);
        out.extend_from_slice(nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let body = &mut out[start..];
        let failed = |_| Error::backend("chatvault-crypt", "the AEAD refused to seal a value");
        match alg {
            Algorithm::XChaCha20Poly1305 => {
                let nonce = nonce.try_into().map_err(|_| bad_key())?;
                let tag = self
                    .values_xchacha
                    .encrypt_inout_detached(nonce, aad, body.into())
                    .map_err(failed)?;
                out.extend_from_slice(&tag);
            }
            Algorithm::Aes256Gcm => {
                let nonce = nonce.try_into().map_err(|_| bad_key())?;
                let tag = self
                    .values_aes
                    .encrypt_inout_detached(nonce, aad, body.into())
                    .map_err(failed)?;
                out.extend_from_slice(&tag);
            }
        }
        Ok(())
    }

    /// Opens what [`seal_into`](Self::seal_into) made; `None` when it does not authenticate.
    pub(crate) fn open(&self, alg: Algorithm, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let n = alg.nonce_len();
        if sealed.len() < n + TAG_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(n);
        let (body, tag) = body.split_at(body.len() - TAG_LEN);
        let mut buf = body.to_vec();
        match alg {
            Algorithm::XChaCha20Poly1305 => self
                .values_xchacha
                .decrypt_inout_detached(
                    nonce.try_into().ok()?,
                    aad,
                    buf.as_mut_slice().into(),
                    tag.try_into().ok()?,
                )
                .ok()?,
            Algorithm::Aes256Gcm => self
                .values_aes
                .decrypt_inout_detached(
                    nonce.try_into().ok()?,
                    aad,
                    buf.as_mut_slice().into(),
                    tag.try_into().ok()?,
                )
                .ok()?,
        }
        Some(buf)
    }

    /// A keyed digest of `input` (for names that must not reveal what they name).
    pub(crate) fn mac(&self, input: &[u8]) -> [u8; 32] {
        hmac(&self.nonces, &[b"chatvault-crypt/1 name\0", input])
    }

    /// The key of one file, from its random salt.
    pub(crate) fn file_key(&self, alg: Algorithm, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let mut info = b"chatvault-crypt/1 file ".to_vec();
        info.push(alg.id());
        derive(self.files.as_slice(), Some(salt), &info)
    }
}

fn aead_seal(
    alg: Algorithm,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> Result<()> {
    let failed = |_| Error::backend("chatvault-crypt", "the AEAD refused to seal a value");
    match alg {
        Algorithm::XChaCha20Poly1305 => {
            let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| bad_key())?;
            let nonce = nonce.try_into().map_err(|_| bad_key())?;
            cipher.encrypt_in_place(nonce, aad, buf).map_err(failed)
        }
        Algorithm::Aes256Gcm => {
            let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| bad_key())?;
            let nonce = nonce.try_into().map_err(|_| bad_key())?;
            cipher.encrypt_in_place(nonce, aad, buf).map_err(failed)
        }
    }
}

fn aead_open(
    alg: Algorithm,
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> std::result::Result<(), ()> {
    match alg {
        Algorithm::XChaCha20Poly1305 => {
            let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| ())?;
            let nonce = nonce.try_into().map_err(|_| ())?;
            cipher.decrypt_in_place(nonce, aad, buf).map_err(|_| ())
        }
        Algorithm::Aes256Gcm => {
            let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| ())?;
            let nonce = nonce.try_into().map_err(|_| ())?;
            cipher.decrypt_in_place(nonce, aad, buf).map_err(|_| ())
        }
    }
}

fn bad_key() -> Error {
    Error::backend("chatvault-crypt", "a key or nonce has the wrong length")
}

/// The STREAM (big-endian 32-bit counter, last-segment flag) of one attachment: each
/// segment sealed at its position, the last one marked, so that reordering, dropping or
/// truncating segments fails to open.
pub(crate) enum SegmentCipher {
    /// XChaCha20-Poly1305 STREAM.
    XChaCha(Box<StreamBE32<XChaCha20Poly1305>>),
    /// AES-256-GCM STREAM.
    Aes(Box<StreamBE32<Aes256Gcm>>),
}

impl SegmentCipher {
    /// The STREAM of `key` and `prefix` ([`Algorithm::stream_prefix_len`] bytes).
    pub(crate) fn new(alg: Algorithm, key: &[u8; 32], prefix: &[u8]) -> Result<Self> {
        use aead_stream::NewStream;
        Ok(match alg {
            Algorithm::XChaCha20Poly1305 => {
                let aead = XChaCha20Poly1305::new_from_slice(key).map_err(|_| bad_key())?;
                let nonce = prefix.try_into().map_err(|_| bad_key())?;
                SegmentCipher::XChaCha(Box::new(StreamBE32::from_aead(aead, nonce)))
            }
            Algorithm::Aes256Gcm => {
                let aead = Aes256Gcm::new_from_slice(key).map_err(|_| bad_key())?;
                let nonce = prefix.try_into().map_err(|_| bad_key())?;
                SegmentCipher::Aes(Box::new(StreamBE32::from_aead(aead, nonce)))
            }
        })
    }

    /// Seals segment `position` in place (the tag is appended).
    pub(crate) fn seal(
        &self,
        position: u32,
        last: bool,
        aad: &[u8],
        buf: &mut dyn chacha20poly1305::aead::Buffer,
    ) -> bool {
        match self {
            SegmentCipher::XChaCha(s) => s.encrypt_in_place(position, last, aad, buf).is_ok(),
            SegmentCipher::Aes(s) => s.encrypt_in_place(position, last, aad, buf).is_ok(),
        }
    }

    /// Opens segment `position` in place; false when it does not authenticate.
    pub(crate) fn open(&self, position: u32, last: bool, aad: &[u8], buf: &mut Vec<u8>) -> bool {
        match self {
            SegmentCipher::XChaCha(s) => s.decrypt_in_place(position, last, aad, buf).is_ok(),
            SegmentCipher::Aes(s) => s.decrypt_in_place(position, last, aad, buf).is_ok(),
        }
    }
}

/// Seals a data key under a key-encryption key (the static provider's wrapping): random
/// nonce || ciphertext || tag, XChaCha20-Poly1305.
pub(crate) fn wrap_with(kek: &[u8; 32], aad: &[u8], key: &DataKey) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 24];
    random(&mut nonce)?;
    let mut body = key.expose().to_vec();
    aead_seal(Algorithm::XChaCha20Poly1305, kek, &nonce, aad, &mut body)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens what [`wrap_with`] made; `None` when it does not authenticate.
pub(crate) fn unwrap_with(kek: &[u8; 32], aad: &[u8], wrapped: &[u8]) -> Option<DataKey> {
    if wrapped.len() != 24 + 32 + TAG_LEN {
        return None;
    }
    let (nonce, body) = wrapped.split_at(24);
    let mut buf = Zeroizing::new(body.to_vec());
    aead_open(Algorithm::XChaCha20Poly1305, kek, nonce, aad, &mut buf).ok()?;
    DataKey::from_slice(&buf).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealing_is_deterministic_and_bound_to_its_aad() {
        let keys = DerivedKeys::new(&DataKey::generate().unwrap()).unwrap();
        for alg in [Algorithm::XChaCha20Poly1305, Algorithm::Aes256Gcm] {
            let a = keys.seal(alg, b"here", b"secret").unwrap();
            assert_eq!(a, keys.seal(alg, b"here", b"secret").unwrap());
            assert_ne!(a, keys.seal(alg, b"here", b"secreT").unwrap());
            assert_eq!(keys.open(alg, b"here", &a).unwrap(), b"secret");
            assert!(keys.open(alg, b"there", &a).is_none());
            let other = DerivedKeys::new(&DataKey::generate().unwrap()).unwrap();
            assert!(other.open(alg, b"here", &a).is_none());
        }
    }

    #[test]
    fn wrapped_keys_open_only_with_their_kek_and_context() {
        let kek = [7u8; 32];
        let key = DataKey::generate().unwrap();
        let wrapped = wrap_with(&kek, b"alice", &key).unwrap();
        assert_eq!(
            unwrap_with(&kek, b"alice", &wrapped).unwrap().expose(),
            key.expose()
        );
        assert!(unwrap_with(&kek, b"bob", &wrapped).is_none());
        assert!(unwrap_with(&[8u8; 32], b"alice", &wrapped).is_none());
    }
}
