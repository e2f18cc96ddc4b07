//! The write path, a part per concern, each a type in its own file that holds what it
//! works with: what writes are made of ([`actions`]), what became of a write
//! ([`outcome`]), appends ([`plan`] decides, [`append::Appender`] sends; it owns the
//! turns appends take), the layout's own writes ([`seal::Sealer`], and the pending seal's copies:
//! [`preseal::Presealer`]), message updates
//! ([`update::Updater`]), the record's writes ([`record::Records`]) and deletes
//! ([`delete::Deleter`]).

pub(crate) mod actions;
pub(crate) mod append;
pub(crate) mod delete;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod preseal;
pub(crate) mod record;
pub(crate) mod seal;
pub(crate) mod update;
