//! The write path, each part as methods of [`Table`](super::table::Table): the requests
//! writes are made of ([`actions`]), what became of a write and the retry from it
//! ([`outcome`]), appends ([`plan`] decides, [`append`] sends), the layout's own writes
//! ([`seal`]), message updates ([`update`]), the record's writes ([`record`]) and
//! deletes ([`delete`]).

pub(crate) mod actions;
pub(crate) mod append;
pub(crate) mod delete;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod record;
pub(crate) mod seal;
pub(crate) mod update;
