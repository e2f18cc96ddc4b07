#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cipher;
mod files;
mod format;
mod keyring;
mod messages;
mod provider;
mod reencrypt;
mod stream;

pub use cipher::{Algorithm, DataKey};
pub use files::{EncryptedFiles, stream_error};
pub use keyring::{Keyring, RewrapReport};
pub use messages::EncryptedMessages;
pub use provider::{KeyProvider, StaticKeyProvider, WrapContext};
pub use reencrypt::{ReencryptReport, reencrypt};
