//! The command's errors and exit codes.

use std::process::ExitCode;

use chatvault_archive::ArchiveError;

/// Exit code: the command did what was asked (for `verify`: nothing is damaged).
pub const EXIT_OK: u8 = 0;
/// Exit code: a failure not covered by the codes below (an I/O error, a store error
/// during the work).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: the command line is wrong (unknown verb or option, a bad store URL or id).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a store could not be opened or reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: damage found (`verify` found problems; an archive is unreadable or fails
/// its checksums; a destination differs from its source).
pub const EXIT_DAMAGE: u8 = 4;

/// Why the command failed; each variant has its exit code ([`CliError::exit_code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// A store could not be opened or reached.
    #[error("cannot open store {url}: {source}")]
    Unreachable {
        /// The store's URL (without credentials).
        url: String,
        /// Why.
        #[source]
        source: chatvault_core::Error,
    },
    /// Damage found: the message says where.
    #[error("{0}")]
    Damage(String),
    /// An archive operation failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A store operation failed.
    #[error("store: {0}")]
    Store(#[from] chatvault_core::Error),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            CliError::Damage(_) => EXIT_DAMAGE,
            CliError::Archive(e) if e.is_damage() => EXIT_DAMAGE,
            CliError::Archive(ArchiveError::DestinationExists(_)) => EXIT_USAGE,
            CliError::Archive(_) | CliError::Store(_) | CliError::Output(_) => EXIT_FAILURE,
        }
    }

    /// The [`ExitCode`] of [`exit_code`](Self::exit_code).
    pub fn exit(&self) -> ExitCode {
        ExitCode::from(self.exit_code())
    }
}

/// The command's result type.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// The error for a backend this binary was built without.
#[cfg_attr(
    all(
        feature = "sqlite",
        feature = "postgres",
        feature = "aws",
        feature = "redis"
    ),
    allow(dead_code)
)]
pub(crate) fn not_built(feature: &'static str) -> chatvault_core::Error {
    chatvault_core::Error::not_supported(
        "this chatvault build",
        match feature {
            "sqlite" => "sqlite: stores (built without the `sqlite` feature)",
            "postgres" => "postgres:// stores (built without the `postgres` feature)",
            "redis" => "redis:// stores (built without the `redis` feature)",
            _ => "dynamodb:// stores (built without the `aws` feature)",
        },
    )
}
