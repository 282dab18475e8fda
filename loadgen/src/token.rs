//! The bearer token loadgen sends: HS256, signed with the secret review-svc
//! is configured with (`REVIEW_SVC_JWT_HS256_SECRET`), scope `admin` so one
//! token may write for every simulated user — loadgen plays a trusted
//! front end acting on users' behalf, not the users themselves.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};

/// Claims review-svc checks.
#[derive(Debug, serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    scope: &'a str,
}

/// An admin token valid for `ttl`.
pub fn admin_token(
    secret: &str,
    issuer: &str,
    audience: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: "loadgen",
        iss: issuer,
        aud: audience,
        iat: now,
        exp: now + ttl.as_secs(),
        scope: "admin",
    };
    Ok(jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
