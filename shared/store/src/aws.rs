//! AWS SDK configuration shared by every function: loaded once, with retries that back off
//! with jitter when AWS throttles.
//!
//! The SDK's standard retry strategy retries throttling and transient errors with exponential
//! backoff and full jitter; Pulse raises its attempts and bounds its delays so a Lambda
//! invocation stays within its timeout. Item-level retries the SDK cannot see (BatchWriteItem's
//! UnprocessedItems, in `events.rs`) back off with jitter too, from 25 ms to 1 s, until the
//! request's deadline; conditional-write conflicts (`metrics.rs`) are retried a bounded number
//! of times at once, since a conflict means the item moved on, not that DynamoDB is busy.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Attempts per AWS call, the first included.
pub const MAX_ATTEMPTS: u32 = 5;

/// The retry policy of every AWS client: standard mode, exponential backoff with full jitter
/// from 50 ms, capped at 2 s a wait.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_secs(2))
}

/// Timeouts of every AWS client: a dead endpoint fails fast instead of eating the invocation.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(20))
        .build()
}

/// Loads the SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL` when pointed at the local cloud) with Pulse's retry and timeout policy.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

/// SDK configuration for an AWS-compatible endpoint of our own (the local cloud's emulator, a
/// test's fault-injecting endpoint): static credentials, `region`, and Pulse's retry and
/// timeout policy.
pub async fn at_endpoint(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "pulse-local",
        ))
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}
