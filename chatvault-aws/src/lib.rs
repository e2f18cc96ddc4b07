#![doc = include_str!("../README.md")]
//!
//! With a shared [`aws_config::SdkConfig`], explicit endpoints, timeouts and retries:
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use aws_config::retry::RetryConfig;
//! use aws_config::timeout::TimeoutConfig;
//! use chatvault_aws::{DynamoMessages, S3Files};
//!
//! # async fn example() -> chatvault_core::Result<()> {
//! let sdk = aws_config::load_from_env().await;
//! let timeouts = TimeoutConfig::builder()
//!     .connect_timeout(Duration::from_secs(2))
//!     .operation_timeout(Duration::from_secs(30))
//!     .build();
//! let messages = DynamoMessages::builder("chatvault")
//!     .sdk_config(&sdk)
//!     .endpoint_url("http://localhost:8000")
//!     .timeout_config(timeouts.clone())
//!     .retry_config(RetryConfig::standard().with_max_attempts(3))
//!     .build()
//!     .await?;
//! let files = S3Files::builder("my-chatvault-files")
//!     .sdk_config(&sdk)
//!     .endpoint_url("http://localhost:4566") // path-style addressing follows
//!     .timeout_config(timeouts)
//!     .checksums_when_required(true) // for MinIO, R2, Ceph, older LocalStack
//!     .build()
//!     .await?;
//! # let _ = (messages, files); Ok(()) }
//! ```
//!
//! ## The DynamoDB table
//!
//! One table holds everything. For users who provision it with infrastructure code, this
//! is exactly what [`DynamoMessages::create_table`] creates:
//!
//! | | |
//! |---|---|
//! | billing | `PAY_PER_REQUEST` (any mode works) |
//! | attribute definitions | `pk` S, `sk` S, `user_id` S, `list_shard` S, `activity` S |
//! | key schema | `pk` HASH, `sk` RANGE |
//! | GSI `by_user` | `user_id` HASH, `activity` RANGE; projection `INCLUDE`: `title`, `created_at`, `last_active`, `archived`, `message_count`, `file_count`, `usage` |
//! | GSI `by_activity` | `list_shard` HASH, `activity` RANGE; projection `INCLUDE`: `user_id`, `title`, `created_at`, `last_active`, `archived`, `message_count`, `file_count`, `usage` |
//!
//! (Tables created by chatvault-aws 0.1 do not project `usage`: they work unchanged, and
//! their listings show zero usage totals; `head` has the real ones.)
//!
//! As CloudFormation:
//!
//! ```yaml
//! ChatVaultTable:
//!   Type: AWS::DynamoDB::Table
//!   Properties:
//!     BillingMode: PAY_PER_REQUEST
//!     AttributeDefinitions:
//!       - { AttributeName: pk, AttributeType: S }
//!       - { AttributeName: sk, AttributeType: S }
//!       - { AttributeName: user_id, AttributeType: S }
//!       - { AttributeName: list_shard, AttributeType: S }
//!       - { AttributeName: activity, AttributeType: S }
//!     KeySchema:
//!       - { AttributeName: pk, KeyType: HASH }
//!       - { AttributeName: sk, KeyType: RANGE }
//!     GlobalSecondaryIndexes:
//!       - IndexName: by_user
//!         KeySchema:
//!           - { AttributeName: user_id, KeyType: HASH }
//!           - { AttributeName: activity, KeyType: RANGE }
//!         Projection:
//!           ProjectionType: INCLUDE
//!           NonKeyAttributes: [title, created_at, last_active, archived, message_count, file_count, usage]
//!       - IndexName: by_activity
//!         KeySchema:
//!           - { AttributeName: list_shard, KeyType: HASH }
//!           - { AttributeName: activity, KeyType: RANGE }
//!         Projection:
//!           ProjectionType: INCLUDE
//!           NonKeyAttributes: [user_id, title, created_at, last_active, archived, message_count, file_count, usage]
//! ```
//!
//! ### Items
//!
//! **The conversation item** (`pk` = conversation id, `sk` = `"#conversation"`):
//!
//! | attribute | type | holds |
//! |---|---|---|
//! | `format` | N | layout version: `2` since 0.2 (the first write of messages moves a 0.1 conversation, `1`, to `2`, after giving its message items id markers; 0.1 refuses to read format 2 rather than misread it) |
//! | `user_id` | S | owner; absent when none (so the conversation is not in `by_user`) |
//! | `title` | S | absent until set or auto-titled |
//! | `created_at`, `last_active` | S | RFC 3339, UTC, exactly 6 fractional digits (`2026-01-02T03:04:05.123456Z`): fixed width, so string order is time order |
//! | `activity` | S | `{last_active}#{id}`: the GSIs' sort key |
//! | `list_shard` | S | `all#0` .. `all#7`, FNV-1a hash of the id: the `by_activity` partition |
//! | `archived` | BOOL | |
//! | `metadata` | S | the metadata as JSON text, so that every float and 64-bit integer survives exactly (DynamoDB numbers would not keep `1e-300` or `u64::MAX` as JSON wrote them) |
//! | `message_count`, `file_count`, `version` | N | `version` grows with every change: the optimistic-concurrency check |
//! | `usage` | S | token usage totals as JSON; absent while zero |
//! | `files` | S | the attachments' records, as a JSON list |
//! | `tail` | L of S | the most recent messages (at most 48, and 48 KiB), each as its JSON form without its default fields (a message of one text part keeps it as `content`, the 0.1 form), in `seq` order; absent when empty |
//! | `sealed_max_id` | S | the greatest id (in DynamoDB's string order) of the sealed messages; absent while none is sealed |
//! | `deleting` | BOOL | only while the conversation is being deleted (`begin_delete`, or the first step of `delete`): a tombstone that makes every write fail with `NotFound` and every read see no conversation; `activity` is removed with it, which takes the conversation out of both indexes |
//!
//! **Chunk items** (`pk` = conversation id, `sk` = `m#` + the `seq` of the chunk's last
//! message zero-padded to 20 digits, e.g. `m#00000000000000000042`, so that string order
//! is `seq` order for every `u64`): `first_seq` N, `revision` N (grows with every
//! rewrite: the condition of message updates), and `messages` S, the JSON array of a run
//! of consecutive messages in the form the tail keeps them (at most 256 KiB of them, or
//! one larger message). The append that would grow the tail past its bounds seals it:
//! the tail's messages move into a chunk item in the same transaction. A 2,000-message
//! conversation is about 40 items.
//!
//! **Message items written by 0.1** have the same keys as a chunk of one message:
//! `seq` N, `id` S, `role` S, `content` S, `created_at` S, and optional `metadata` S.
//! They read as one text part at revision 1, and an update rewrites them with `parts` S
//! and `revision` N. Chunks follow them once the conversation takes new writes.
//!
//! **One id marker per sealed message** (`sk` = `mid#` + message id; `seq` N), put in the
//! transaction that seals the message (for a 0.1 conversation, before its first new
//! write). It finds a sealed message by id (`update_message`, a retried append).
//! `mid#` sorts after every `m#` key, so message ranges never meet markers.
//!
//! //! ### Costs and limits
//!
//! - **Append**: one `PutItem` of the conversation item with the messages added to its
//!   tail, conditional on the conversation's `version`, `message_count` and
//!   `created_at` (the backend knows the whole item at that version, attachment list
//!   included); once in 48 messages (or when the tail would pass 48 KiB, or the
//!   item 400 KB), one `TransactWriteItems` instead, which also seals the tail into a
//!   chunk item with an id marker per sealed message (2 WCU per KB: transactions cost
//!   double). Whatever the conversation's length. The backend remembers the
//!   conversations it last wrote or read, tail included (a bounded LRU map,
//!   [`seen_cache_bytes`](DynamoMessagesBuilder::seen_cache_bytes)), and writes against
//!   the version it knows; it reads the conversation item first (a `GetItem` more) only
//!   for a conversation it has not seen. Concurrent appends are serialised by the
//!   condition; the loser gets the conversation as it is now with the failure and
//!   retries at once from it (after a transaction conflict: jittered backoff and a read).
//!   Idempotency: an append's message ids are looked up first in the tail it writes
//!   against and, for an id that sorts at or before `sealed_max_id` (not the UUID v7 ids
//!   the vault makes, unless clocks disagree), through its id marker (a `GetItem` more);
//!   an id already stored makes the append a retry, decided by the stored message. A
//!   write the SDK retries after losing the answer is never applied twice: a retried
//!   `PutItem` fails its condition and finds its messages in the tail that comes back
//!   with the failure; transactions (create, seal, rename, archive, file changes) carry
//!   an idempotency token. When the SDK gives up with the outcome unknown and reading
//!   whether the write committed fails too, the answer is `Error::OutcomeUnknown` (not
//!   temporary): retry the append with the same message ids. A message is at most
//!   [`MAX_MESSAGE_BYTES`] (a chunk of one, in a 400 KB item), an append at most
//!   [`MAX_APPEND_MESSAGES`] messages and 4 MB: larger appends are refused with
//!   [`Error::TooLarge`](chatvault_core::Error), nothing written. There is no limit on a
//!   conversation's length.
//! - **Updating a message** (`update_message`): in the tail, one `UpdateItem` of the
//!   conversation item (the entry, usage totals, version; a tail the update would take
//!   past 400 KB is sealed first); sealed, a `GetItem` of its id marker and a `Query` of
//!   its chunk, then one `TransactWriteItems` of the chunk (conditional on its revision;
//!   split in two or more when the message no longer fits it) and the conversation item.
//! - **Reading messages**: messages are numbered without gaps, so a window is a key range
//!   known in advance: one `Query` of the chunk items holding it, cut at DynamoDB's 1 MB
//!   pages (about 4,000 short messages). A window from the start begins at the
//!   conversation item (is it there, and its tail): one request; any other forward
//!   window is a `Query` and, at the same time, a `GetItem` of the conversation item. The
//!   last messages (`MessageRange::last`) are a `GetItem`, whose tail often holds them,
//!   and a `Query` for the rest.
//! - **A user's conversations** (`by_user`): one `Query` per page; archived conversations
//!   are read and filtered out unless asked for, so a user with many archived ones costs
//!   more to list.
//! - **Every conversation** (`by_activity`, [`ChatVault::list_all_conversations`]): the
//!   conversations are spread over 8 index partitions, so that the index does not cap the
//!   table's write rate at one partition's 1,000 writes/s; a listing page costs 8 `Query`
//!   requests (one per partition, run concurrently, merged). Every conversation-item write
//!   (append, file change, rename) also writes both GSIs: 3 writes instead of 1.
//! - **The conversation item** holds the attachment list and the tail, so a conversation
//!   holds about 1,000 attachments (400 KB) at most; adding more, or a change that would
//!   take the item over 400 KB, fails with `TooLarge` (an append seals the tail instead).
//! - **Delete**: `begin_delete` (and the first step of `delete`) is an `UpdateItem` that
//!   puts a tombstone on the conversation item (from then on every append and change fails
//!   with `NotFound`, so concurrent writers cannot starve the delete, and no attachment can
//!   be added), then `delete` makes a `Query` of the conversation's keys and
//!   `BatchWriteItem`s of 25 deletes, then a conditional `DeleteItem` of the conversation
//!   item. An interrupted delete leaves the conversation marked (gone to readers, its id
//!   taken); calling it again finishes it.
//! - GSIs are eventually consistent on AWS: a new or changed conversation shows up in
//!   listings a moment later. Everything else reads consistently.
//!
//! [`ChatVault::list_all_conversations`]: chatvault_core::ChatVault::list_all_conversations
//!
//! ## S3
//!
//! [`S3Files`] stores each attachment under its storage key (optionally below a prefix),
//! uploads streams larger than the multipart threshold (8 MiB) in parts of 8 MiB (both
//! adjustable), aborting the upload on any failure, streams downloads, and presigns
//! `GetObject` URLs that carry `Content-Disposition: attachment` with the original file
//! name ([`content_disposition`]). Presigned URLs live at most 7 days.
//!
//! ## Running the tests
//!
//! The tests run against local emulators only, never real AWS:
//!
//! ```text
//! ./scripts/test.sh -p chatvault-aws                 # starts and stops the emulators itself
//!
//! scripts/emulators.sh start                        # or by hand: LocalStack S3 + DynamoDB Local
//! eval "$(scripts/emulators.sh env)"                # AWS_ENDPOINT_URL_S3, ..._DYNAMODB, test keys
//! cargo test -p chatvault-aws
//! ```
//!
//! Without the emulators' endpoints (`AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_S3`,
//! or `AWS_ENDPOINT_URL`), plain `cargo test` does not run the AWS tests and says so: the
//! crate's build script compiles them as ignored, and each is listed as
//! `ignored, needs the AWS emulators: ...` with what to do, and counted under "ignored",
//! never as passed. With `CHATVAULT_REQUIRE_AWS=1` (which `scripts/test.sh` sets) they are
//! always compiled to run, and a missing endpoint fails them.
//!
//! With Docker, a LocalStack container answers both services on one port
//! (`AWS_ENDPOINT_URL=http://localhost:4566`), or pair a LocalStack for S3 with DynamoDB
//! Local:
//!
//! ```text
//! docker run -d -p 4566:4566 localstack/localstack:4.14.0
//! docker run -d -p 8000:8000 amazon/dynamodb-local
//! export AWS_ENDPOINT_URL=http://localhost:4566 AWS_ENDPOINT_URL_DYNAMODB=http://localhost:8000
//! export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
//! cargo test -p chatvault-aws
//! ```
//!
//! The benchmark (`cargo bench -p chatvault-aws --bench dynamo`) prints the cost of an
//! append at 10 and 5,000 messages and the requests a 5,000-message read takes.
//!
//! ## Build weight
//!
//! The SDK crates are used with `default-features = false` and only `rt-tokio`,
//! `default-https-client` and `behavior-version-latest`: no SigV4a, no SSO or
//! `credential_process` providers, one TLS stack (rustls with aws-lc, which builds with a
//! C compiler alone on x86-64). This crate and everything it pulls in (chatvault-core and
//! tokio included) is about 180 crates, a cold debug build of about two minutes on two
//! cores; the SDK's default features would add about 45 crates and a second TLS stack.
//! An application that never touches AWS depends on `chatvault-core` and another backend
//! and compiles none of this. If you need SSO profiles or `credential_process`, enable
//! those `aws-config` features in your own `Cargo.toml`: features add up.

#![forbid(unsafe_code)]

mod dynamo;
mod s3;
mod sdk;

pub use dynamo::builder::DynamoMessagesBuilder;
pub use dynamo::{
    DEFAULT_MAX_WRITE_ATTEMPTS, DEFAULT_SEEN_CACHE_BYTES, DynamoMessages, MAX_APPEND_MESSAGES,
    MAX_MESSAGE_BYTES,
};
pub use s3::builder::S3FilesBuilder;
pub use s3::{
    DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, MAX_OBJECT_KEY_LEN, MAX_PART_SIZE, MAX_PARTS,
    MAX_PREFIX_LEN, MAX_PRESIGNED_EXPIRY, MIN_PART_SIZE, S3Files, content_disposition,
};

/// The AWS SDK crates this one is built on, for building clients and configurations of
/// the exact versions it takes.
pub mod reexports {
    pub use aws_config;
    pub use aws_sdk_dynamodb;
    pub use aws_sdk_s3;
}
