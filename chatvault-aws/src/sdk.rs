//! What the two backends share: SDK error mapping, client settings, backoff.

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use chatvault_core::backend::Error;

/// Error codes (S3 and DynamoDB) that mean "try again later".
const TEMPORARY_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "TransactionConflictException",
    "TransactionInProgressException",
    "ReplicatedWriteConflictException",
    "InternalError",
    "InternalServerError",
    "InternalServerErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether an SDK error is worth retrying: timeouts, connection failures, throttling,
/// 5xx responses.
pub(crate) fn is_temporary<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(failure) => !failure.is_user(),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status >= 500
                || status == 429
                || err
                    .code()
                    .is_some_and(|code| TEMPORARY_CODES.contains(&code))
        }
        // ConstructionFailure and anything added later.
        _ => false,
    }
}

/// Error codes (S3 and DynamoDB) that mean the credentials or their permissions were
/// refused.
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
];

/// Whether an SDK error is the service refusing the caller (its code, or HTTP 403).
pub(crate) fn is_denied<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(service) => {
            service.raw().status().as_u16() == 403
                || err.code().is_some_and(|code| DENIED_CODES.contains(&code))
        }
        _ => false,
    }
}

/// Wraps an SDK error, keeping it as the source: [`Error::PermissionDenied`] when the
/// service refused the credentials or their permissions, else a backend error, temporary
/// when a retry may succeed.
pub(crate) fn sdk_error<E>(backend: &'static str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if is_denied(&err) {
        return Error::PermissionDenied {
            backend,
            message: format!(
                "{} refused the request: {}",
                backend,
                err.code().unwrap_or("HTTP 403")
            ),
            source: Some(Box::new(err)),
        };
    }
    Error::Backend {
        backend,
        temporary: is_temporary(&err),
        source: Box::new(err),
    }
}

/// Loads the SDK's own configuration from the environment, config files and the
/// instance metadata, the way every AWS SDK does.
pub(crate) async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Where a builder's client comes from.
#[derive(Clone, Debug)]
pub(crate) enum Source<C> {
    /// The SDK's own configuration, loaded at `build`.
    Env,
    /// A loaded configuration.
    Sdk(Box<SdkConfig>),
    /// A ready client's configuration.
    Client(Box<C>),
}

/// Settings the builders of both backends take: where the client's configuration comes
/// from, and what is applied on top of it.
#[derive(Clone, Debug)]
pub(crate) struct ClientSettings<C> {
    pub(crate) source: Source<C>,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) timeout_config: Option<TimeoutConfig>,
    pub(crate) retry_config: Option<RetryConfig>,
}

impl<C> Default for ClientSettings<C> {
    fn default() -> Self {
        ClientSettings {
            source: Source::Env,
            endpoint_url: None,
            timeout_config: None,
            retry_config: None,
        }
    }
}

/// A service's configuration builder, as [`ClientSettings::config`] makes it.
pub(crate) trait ServiceConfig: Sized {
    /// The service's client.
    type Client;
    /// Starts from a loaded SDK configuration.
    fn from_sdk(sdk: &SdkConfig) -> Self;
    /// Starts from a ready client's configuration.
    fn from_client(client: &Self::Client) -> Self;
    /// Applies the endpoint, timeouts and retries that are set.
    fn apply(
        self,
        endpoint: Option<String>,
        t: Option<TimeoutConfig>,
        r: Option<RetryConfig>,
    ) -> Self;
}

/// [`ServiceConfig`] for a service crate's `config::Builder`.
macro_rules! service_config {
    ($service:ident) => {
        impl ServiceConfig for $service::config::Builder {
            type Client = $service::Client;
            fn from_sdk(sdk: &SdkConfig) -> Self {
                Self::from(sdk)
            }
            fn from_client(client: &Self::Client) -> Self {
                client.config().to_builder()
            }
            fn apply(
                mut self,
                endpoint: Option<String>,
                timeouts: Option<TimeoutConfig>,
                retries: Option<RetryConfig>,
            ) -> Self {
                if let Some(url) = endpoint {
                    self = self.endpoint_url(url);
                }
                if let Some(timeouts) = timeouts {
                    self = self.timeout_config(timeouts);
                }
                if let Some(retries) = retries {
                    self = self.retry_config(retries);
                }
                self
            }
        }
    };
}

service_config!(aws_sdk_dynamodb);
service_config!(aws_sdk_s3);

impl<C> ClientSettings<C> {
    /// The service's configuration builder, from the source with the settings applied;
    /// with the SDK configuration it started from (none for a client's).
    pub(crate) async fn config<B: ServiceConfig<Client = C>>(self) -> (B, Option<SdkConfig>) {
        let (config, sdk) = match self.source {
            Source::Env => {
                let sdk = load_sdk_config().await;
                (B::from_sdk(&sdk), Some(sdk))
            }
            Source::Sdk(sdk) => (B::from_sdk(&sdk), Some(*sdk)),
            Source::Client(client) => (B::from_client(&client), None),
        };
        let config = config.apply(self.endpoint_url, self.timeout_config, self.retry_config);
        (config, sdk)
    }
}

/// Whether the environment or `sdk` names an endpoint for the service whose
/// service-specific variable is `service_env` (e.g. `AWS_ENDPOINT_URL_S3`).
pub(crate) fn endpoint_override_configured(sdk: Option<&SdkConfig>, service_env: &str) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    set(service_env) || set("AWS_ENDPOINT_URL") || sdk.is_some_and(|s| s.endpoint_url().is_some())
}

/// Full-jitter exponential backoff: a random delay in `0..min(cap, base * 2^attempt)`.
pub(crate) fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(cap);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_its_cap() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(300);
        for attempt in 0..40 {
            let d = backoff(attempt, base, cap);
            assert!(d <= cap, "{attempt}: {d:?}");
            if attempt == 0 {
                assert!(d <= base);
            }
        }
    }
}
