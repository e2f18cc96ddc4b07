#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cipher;
mod files;
mod format;
mod keyring;
#[cfg(feature = "kms")]
#[cfg_attr(docsrs, doc(cfg(feature = "kms")))]
mod kms;
mod messages;
mod provider;
mod reencrypt;
mod stream;

pub use cipher::{Algorithm, DataKey};
pub use files::{EncryptedFiles, stream_error};
pub use keyring::{Keyring, RewrapReport};
#[cfg(feature = "kms")]
#[cfg_attr(docsrs, doc(cfg(feature = "kms")))]
pub use kms::KmsKeyProvider;
pub use messages::EncryptedMessages;
pub use provider::{KeyProvider, StaticKeyProvider, WrapContext};
pub use reencrypt::{ReencryptReport, reencrypt};
