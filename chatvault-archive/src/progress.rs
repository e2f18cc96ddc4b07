//! Progress reports of long operations.

/// How far an export, import, copy or verify has come. Handed to the caller's callback
/// after every conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Conversations done.
    pub conversations: u64,
    /// Messages done.
    pub messages: u64,
    /// Attachment bytes moved or read.
    pub bytes: u64,
    /// How many conversations there are in all, when known in advance (an import knows
    /// from the manifest; a listing does not).
    pub total_conversations: Option<u64>,
}

/// A progress callback: called with the running totals, often (after each conversation).
pub type OnProgress<'a> = &'a (dyn Fn(&Progress) + Send + Sync);

/// A callback that ignores progress.
pub fn no_progress(_: &Progress) {}
