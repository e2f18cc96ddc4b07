//! Tests of the ChatVault workspace itself, not of any one crate (they live in `tests/`):
//!
//! - the README's table of feature flags lists exactly the features of every published crate;
//! - the README's table of minimum Rust versions matches every published crate's
//!   `rust-version`;
//! - the published crates have the packaging shape `cargo package --workspace` needs: no
//!   dev-dependency cycle carrying a version, docs.rs metadata, `publish = false` on examples.
//!
//! This library is empty; the package is never published.

#![forbid(unsafe_code)]
