//! Retries for idempotent messages, as a `tower::retry::Policy`.
//!
//! Only messages whose declaration carries `"idempotent": true` are resent
//! (see [`Message::is_idempotent`](crate::Message::is_idempotent)): anything
//! else may already have had its effect when the failure was seen. Only
//! failures where the call may not have happened are retried — transport
//! errors and timeouts — never replies (a declared or system error is the
//! server's answer). Waits grow exponentially with "full jitter" (a uniform
//! random wait up to the exponential bound), so clients that failed together
//! do not retry together.

use std::time::Duration;

use cinerec_backoff::ExponentialBackoff;
use tower::retry::Policy;

use crate::client::{Call, Reply};
use crate::error::{Error, Kind};
use crate::protocol::Protocol;

/// Use with `tower::retry::RetryLayer::new(IdempotentRetry::new(protocol))`.
#[derive(Debug, Clone)]
pub struct IdempotentRetry {
    protocol: Protocol,
    max_retries: u32,
    backoff: ExponentialBackoff,
    /// Retries done for the current request (tower clones the policy per request).
    attempts: u32,
}

impl IdempotentRetry {
    /// Up to 3 retries, waits bounded by 10 ms, 20 ms, 40 ms ... capped at 1 s.
    pub fn new(protocol: Protocol) -> Self {
        IdempotentRetry {
            protocol,
            max_retries: 3,
            backoff: ExponentialBackoff::new(Duration::from_millis(10), Duration::from_secs(1)),
            attempts: 0,
        }
    }

    /// Sets how many times one call may be resent.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the first wait bound and the cap of the exponential growth.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff = ExponentialBackoff::new(base, max);
        self
    }

    /// The bound of the wait before retry number `attempt` (0-based).
    pub fn backoff_bound(&self, attempt: u32) -> Duration {
        self.backoff.delay(attempt.saturating_add(1))
    }

    fn retryable(&self, call: &Call, error: &Error) -> bool {
        matches!(error.kind(), Kind::Transport | Kind::Timeout)
            && self
                .protocol
                .message(&call.message)
                .is_some_and(|m| m.is_idempotent())
    }
}

impl Policy<Call, Reply, Error> for IdempotentRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        call: &mut Call,
        result: &mut Result<Reply, Error>,
    ) -> Option<Self::Future> {
        let error = result.as_ref().err()?;
        if self.attempts >= self.max_retries || !self.retryable(call, error) {
            return None;
        }
        self.attempts += 1;
        let wait = self.backoff.full_jitter(self.attempts);
        tracing::debug!(message = %call.message, attempt = self.attempts, wait_us = wait.as_micros(), error = %error, "retrying idempotent call");
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, call: &Call) -> Option<Call> {
        // Cheap: the parameters are already-encoded `Bytes`.
        Some(call.clone())
    }
}

#[cfg(test)]
mod tests;
