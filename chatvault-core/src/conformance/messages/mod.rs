//! Checks of a [`MessagesBackend`](crate::MessagesBackend), each a public async function
//! taking the backend and the [`SuiteConfig`](crate::conformance::SuiteConfig), grouped by
//! topic. Run them on a tokio multi-thread runtime (the macro
//! [`messages_backend_tests!`](crate::messages_backend_tests) does).
mod appends;
mod branches;
mod common;
mod deleting;
mod listing;
mod owner;
mod ranges;
mod records;
mod round_trips;
mod updates;

pub use super::search::{
    nasty_queries, search, search_answers_arbitrary_queries, search_answers_nasty_queries,
};
pub use appends::{
    append_assigns_seq_and_title, concurrent_appends, concurrent_retries_store_once,
    idempotent_appends,
};
pub use branches::{branches_edit_switch_rewind, racing_edits_keep_both};
pub use deleting::marked_conversations_are_listed_until_deleted;
pub use listing::{
    list_all_conversations, list_user_conversations, listing_pages_survive_concurrent_creation,
    listing_ties_break_by_id,
};
pub use owner::append_checks_the_owner;
pub use ranges::{long_conversation, message_ranges_and_cursors, natural_pages_cover_everything};
pub use records::{
    begin_delete_then_delete, create_and_read_back, file_records,
    metadata_updates_leave_messages_alone, missing_conversations_are_not_found,
};
pub use round_trips::{
    accepted_values_read_back, every_part_kind_round_trips, message_fields_round_trip,
};
pub use updates::{racing_updates_one_wins, update_message_is_versioned};
