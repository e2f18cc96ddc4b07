//! What a backend declares it can do, read by the vault and the conformance suite.

use crate::ids::ContentType;

/// What a [`MessagesBackend`](crate::MessagesBackend) can do, declared by the backend
/// itself.
///
/// The vault reads it (an operation the backend lacks is a clear
/// [`Error::NotSupported`](crate::Error::NotSupported); a message over `max_message_bytes`
/// is refused with [`Error::TooLarge`](crate::Error::TooLarge) before anything is written),
/// and so does the conformance suite.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessagesCapabilities {
    /// Concurrent appends to one conversation through this backend value never lose,
    /// duplicate or reorder a message.
    pub concurrent_appends: bool,
    /// The same holds for writers in other processes (or machines) sharing the store.
    pub multi_process: bool,
    /// `list_conversations(None, ..)` lists every user's conversations.
    pub list_all: bool,
    /// [`MessagesBackend::search`](crate::MessagesBackend::search) works.
    pub search: bool,
    /// The largest message (bytes of its JSON form) the backend stores, if lower than
    /// [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES).
    pub max_message_bytes: Option<u64>,
    /// The most messages one append may carry, if limited.
    pub max_append_messages: Option<usize>,
}

impl MessagesCapabilities {
    /// Everything: atomic appends in and across processes, listing all users, search, no
    /// limits below the core's.
    pub fn full() -> Self {
        MessagesCapabilities {
            concurrent_appends: true,
            multi_process: true,
            list_all: true,
            search: true,
            max_message_bytes: None,
            max_append_messages: None,
        }
    }

    /// Nothing beyond the basics every backend must do.
    pub fn basic() -> Self {
        MessagesCapabilities {
            concurrent_appends: false,
            multi_process: false,
            list_all: false,
            search: false,
            max_message_bytes: None,
            max_append_messages: None,
        }
    }

    /// Sets [`concurrent_appends`](Self::concurrent_appends).
    pub fn with_concurrent_appends(mut self, yes: bool) -> Self {
        self.concurrent_appends = yes;
        self
    }

    /// Sets [`multi_process`](Self::multi_process).
    pub fn with_multi_process(mut self, yes: bool) -> Self {
        self.multi_process = yes;
        self
    }

    /// Sets [`list_all`](Self::list_all).
    pub fn with_list_all(mut self, yes: bool) -> Self {
        self.list_all = yes;
        self
    }

    /// Sets [`search`](Self::search).
    pub fn with_search(mut self, yes: bool) -> Self {
        self.search = yes;
        self
    }

    /// Sets [`max_message_bytes`](Self::max_message_bytes).
    pub fn with_max_message_bytes(mut self, limit: Option<u64>) -> Self {
        self.max_message_bytes = limit;
        self
    }

    /// Sets [`max_append_messages`](Self::max_append_messages).
    pub fn with_max_append_messages(mut self, limit: Option<usize>) -> Self {
        self.max_append_messages = limit;
        self
    }
}

/// What a [`FilesBackend`](crate::FilesBackend) can do, declared by the backend itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilesCapabilities {
    /// [`FilesBackend::signed_url`](crate::FilesBackend::signed_url) gives URLs (otherwise
    /// it answers [`Error::NotSupported`](crate::Error::NotSupported)).
    pub signed_urls: bool,
    /// Streaming upload and download keep memory bounded whatever the file's size.
    pub bounded_memory: bool,
    /// The largest file stored, if limited.
    pub max_file_bytes: Option<u64>,
}

impl FilesCapabilities {
    /// Signed URLs, bounded memory, no size limit.
    pub fn full() -> Self {
        FilesCapabilities {
            signed_urls: true,
            bounded_memory: true,
            max_file_bytes: None,
        }
    }

    /// No signed URLs, files held in memory.
    pub fn basic() -> Self {
        FilesCapabilities {
            signed_urls: false,
            bounded_memory: false,
            max_file_bytes: None,
        }
    }

    /// Sets [`signed_urls`](Self::signed_urls).
    pub fn with_signed_urls(mut self, yes: bool) -> Self {
        self.signed_urls = yes;
        self
    }

    /// Sets [`bounded_memory`](Self::bounded_memory).
    pub fn with_bounded_memory(mut self, yes: bool) -> Self {
        self.bounded_memory = yes;
        self
    }

    /// Sets [`max_file_bytes`](Self::max_file_bytes).
    pub fn with_max_file_bytes(mut self, limit: Option<u64>) -> Self {
        self.max_file_bytes = limit;
        self
    }
}

/// What [`FilesBackend::head`](crate::FilesBackend::head) knows about stored bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// The content type stored with them.
    pub content_type: ContentType,
}

impl ObjectMeta {
    /// What a files backend knows of `size` stored bytes of `content_type`.
    pub fn new(size: u64, content_type: ContentType) -> Self {
        ObjectMeta { size, content_type }
    }
}
