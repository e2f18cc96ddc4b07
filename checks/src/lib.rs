//! Tests of the ChatVault workspace itself, not of any one crate (they live in `tests/`):
//!
//! - the README's table of feature flags lists exactly the features of every published crate;
//! - the README's table of minimum Rust versions matches every published crate's
//!   `rust-version`;
//! - the published crates have the packaging shape `cargo package --workspace` needs: no
//!   dev-dependency cycle carrying a version, docs.rs metadata, `publish = false` on examples.
//!
//! - the README's code blocks compile as pasted, and run where they can: the [`readme`]
//!   module's docs are the README, so `cargo test -p workspace-checks --doc` runs each of
//!   its Rust code blocks as a doctest.
//!
//! The package is never published.

#![forbid(unsafe_code)]

#[doc = include_str!("../../README.md")]
// The README's links are relative to the repository (LICENSE, the crates' folders).
#[allow(rustdoc::broken_intra_doc_links)]
pub mod readme {}
