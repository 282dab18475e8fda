//! Bearer-token authentication: JWTs signed HS256 (shared secret) or RS256
//! (RSA key pair), with issuer, audience, `exp`, `nbf` and `iat` checked
//! against a bounded clock-skew leeway ([`LEEWAY_SECS`]). The subject is the
//! acting user id in canonical decimal; the `admin` scope may act for anyone.
//! [`Minter`] signs tokens for the `mint-token` dev subcommand and tests.
//!
//! Why a token was refused is said in our own words ([`AuthError`]'s
//! messages): jsonwebtoken's error text names its internals and changes
//! between versions, so it goes to the log only, never to the client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthArgs;

/// Shortest HS256 secret accepted: an empty or short secret (say, an unset
/// Secret rendered as "") would make tokens forgeable by guessing.
pub const MIN_HS256_SECRET: usize = 16;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Set
/// explicitly rather than taking jsonwebtoken's default (60 s) so a change
/// of library cannot widen the window in which an expired token still works.
pub const LEEWAY_SECS: u64 = 30;

/// The scope that lets a token act for any user.
pub const ADMIN_SCOPE: &str = "admin";

/// Claims review-svc reads and mints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The acting user id (decimal), or a service name for admin tokens.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (s since the epoch).
    pub exp: u64,
    /// Issued at (s since the epoch); more than [`LEEWAY_SECS`] in the
    /// future is refused.
    pub iat: u64,
    /// Not before (s since the epoch), checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The subject as a user id, if it is one.
    pub user_id: Option<i64>,
    /// Whether the token carries [`ADMIN_SCOPE`].
    pub admin: bool,
}

impl Principal {
    /// Whether this principal may write reviews of `user_id`.
    pub fn may_act_for(&self, user_id: i64) -> bool {
        self.admin || self.user_id == Some(user_id)
    }
}

/// Why a request is not authenticated (all map to 401). The messages are
/// the client's `reason`: our words, no library text.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// The token's algorithm has no configured key.
    #[error("token algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    /// The header names no algorithm we know (`none`, say) or is not JSON.
    #[error("malformed token")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    /// The signature does not verify with the key for its algorithm.
    #[error("token signature is invalid")]
    Signature,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is still ahead.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is ahead of our clock by more than the leeway.
    #[error("token is issued in the future")]
    IssuedInFuture,
    /// Wrong `iss`.
    #[error("token issuer is not accepted")]
    Issuer,
    /// Wrong `aud`.
    #[error("token audience is not accepted")]
    Audience,
    /// A claim we require is absent.
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// `sub` is neither a canonical decimal user id nor an admin's name.
    #[error("token subject is not a user id in canonical decimal")]
    Subject,
}

impl AuthError {
    /// Maps jsonwebtoken's error onto ours, keeping it as the source for the log.
    fn from_jwt(e: jsonwebtoken::errors::Error) -> AuthError {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => AuthError::Signature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::Issuer,
            ErrorKind::InvalidAudience => AuthError::Audience,
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(match c.as_str() {
                "exp" => "exp",
                "iss" => "iss",
                "aud" => "aud",
                "sub" => "sub",
                _ => "a required",
            }),
            _ => AuthError::Malformed(e),
        }
    }
}

/// Building keys from config failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A key could not be parsed.
    #[error("parsing {what}: {source}")]
    Parse {
        /// Which key.
        what: &'static str,
        /// Why.
        source: jsonwebtoken::errors::Error,
    },
    /// The HS256 secret is shorter than [`MIN_HS256_SECRET`].
    #[error("the HS256 secret must be at least {MIN_HS256_SECRET} bytes")]
    WeakSecret,
    /// Neither HS256 nor RS256 is configured.
    #[error(
        "no token key configured: set REVIEW_SVC_JWT_HS256_SECRET or REVIEW_SVC_JWT_RS256_PUBLIC_KEY"
    )]
    NoKey,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Verifies tokens.
pub struct Authenticator {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl Authenticator {
    /// From config; at least one key must be set.
    pub fn from_args(args: &AuthArgs) -> Result<Authenticator, KeyError> {
        if args
            .jwt_hs256_secret
            .as_ref()
            .is_some_and(|s| s.len() < MIN_HS256_SECRET)
        {
            return Err(KeyError::WeakSecret);
        }
        let hs256 = args
            .jwt_hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.as_bytes()));
        let rs256 =
            match &args.jwt_rs256_public_key {
                Some(path) => Some(DecodingKey::from_rsa_pem(&read(path)?).map_err(|source| {
                    KeyError::Parse {
                        what: "RS256 public key",
                        source,
                    }
                })?),
                None => None,
            };
        if hs256.is_none() && rs256.is_none() {
            return Err(KeyError::NoKey);
        }
        Ok(Authenticator {
            hs256,
            rs256,
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
        })
    }

    /// Checks an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let header = jsonwebtoken::decode_header(token).map_err(AuthError::from_jwt)?;
        // The key is chosen by our config, never by the token: a token
        // claiming HS256 is never checked against the RSA public key.
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            other => return Err(AuthError::Algorithm(other)),
        }
        .ok_or(AuthError::Algorithm(header.alg))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| {
                tracing::debug!(error = %e, "token refused");
                AuthError::from_jwt(e)
            })?
            .claims;
        // jsonwebtoken does not look at `iat`: a token minted "later" than
        // now is a clock that is off or a forgery that stretches its life.
        if claims.iat > now_secs().saturating_add(LEEWAY_SECS) {
            return Err(AuthError::IssuedInFuture);
        }
        let user_id = crate::model::canonical_id(&claims.sub);
        let admin = claims.scope.split_whitespace().any(|s| s == ADMIN_SCOPE);
        // A subject that looks numeric but is not canonical ("+11", "011")
        // is refused outright rather than read as a non-user: it is an
        // attempt to alias an id, not an admin service's name.
        if user_id.is_none() && looks_numeric(&claims.sub) {
            return Err(AuthError::Subject);
        }
        Ok(Principal { user_id, admin })
    }
}

/// Seconds since the Unix epoch on this host's clock.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `sub` is some spelling of a number (sign, digits, spaces, zeros).
fn looks_numeric(sub: &str) -> bool {
    let t = sub.trim();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
}

/// Signs tokens (dev subcommand and tests).
pub struct Minter {
    key: EncodingKey,
    algorithm: Algorithm,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &str, issuer: &str, audience: &str) -> Minter {
        Minter {
            key: EncodingKey::from_secret(secret.as_bytes()),
            algorithm: Algorithm::HS256,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// RS256 with an RSA private key in PEM.
    pub fn rs256(private_pem: &[u8], issuer: &str, audience: &str) -> Result<Minter, KeyError> {
        Ok(Minter {
            key: EncodingKey::from_rsa_pem(private_pem).map_err(|source| KeyError::Parse {
                what: "RS256 private key",
                source,
            })?,
            algorithm: Algorithm::RS256,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// A token for `sub` with `scopes`, valid for `ttl`.
    pub fn mint(
        &self,
        sub: &str,
        scopes: &[&str],
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_secs();
        self.mint_claims(&Claims {
            sub: sub.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl.as_secs(),
            iat: now,
            nbf: None,
            scope: scopes.join(" "),
        })
    }

    /// A token with exactly these claims (tests forge bad ones with it).
    pub fn mint_claims(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "unit-test-secret-0123";

    fn authenticator() -> Authenticator {
        Authenticator::from_args(&AuthArgs {
            jwt_issuer: "iss".into(),
            jwt_audience: "aud".into(),
            jwt_hs256_secret: Some(SECRET.into()),
            jwt_rs256_public_key: None,
        })
        .expect("an HS256 key is configured")
    }

    #[test]
    fn a_minted_token_authenticates_its_subject() {
        let token = Minter::hs256(SECRET, "iss", "aud")
            .mint("17", &[], Duration::from_secs(60))
            .expect("mints");
        let p = authenticator()
            .authenticate(Some(&format!("Bearer {token}")))
            .expect("valid");
        assert_eq!(
            p,
            Principal {
                user_id: Some(17),
                admin: false
            }
        );
        assert!(p.may_act_for(17) && !p.may_act_for(18));
    }

    #[test]
    fn wrong_secret_issuer_or_audience_is_refused() {
        for minter in [
            Minter::hs256("other", "iss", "aud"),
            Minter::hs256(SECRET, "evil", "aud"),
            Minter::hs256(SECRET, "iss", "other-svc"),
        ] {
            let token = minter
                .mint("1", &[], Duration::from_secs(60))
                .expect("mints");
            assert!(
                authenticator()
                    .authenticate(Some(&format!("Bearer {token}")))
                    .is_err()
            );
        }
        assert!(matches!(
            authenticator().authenticate(None),
            Err(AuthError::Missing)
        ));
        assert!(
            authenticator()
                .authenticate(Some("Bearer not.a.jwt"))
                .is_err()
        );
    }

    fn claims(sub: &str, now: u64) -> Claims {
        Claims {
            sub: sub.into(),
            iss: "iss".into(),
            aud: "aud".into(),
            exp: now + 600,
            iat: now,
            nbf: None,
            scope: String::new(),
        }
    }

    fn check(claims: &Claims) -> Result<Principal, AuthError> {
        let token = Minter::hs256(SECRET, "iss", "aud")
            .mint_claims(claims)
            .expect("mints");
        authenticator().authenticate(Some(&format!("Bearer {token}")))
    }

    #[test]
    fn time_claims_are_checked_within_the_leeway() {
        let now = now_secs();
        let beyond = LEEWAY_SECS + 15;
        let not_yet = Claims {
            nbf: Some(now + beyond),
            ..claims("5", now)
        };
        assert!(matches!(check(&not_yet), Err(AuthError::NotYetValid)));
        let from_the_future = Claims {
            iat: now + beyond,
            ..claims("5", now)
        };
        assert!(matches!(
            check(&from_the_future),
            Err(AuthError::IssuedInFuture)
        ));
        // Inside jsonwebtoken's default leeway (60 s) but past ours.
        let expired = Claims {
            exp: now - beyond,
            iat: now - 600,
            ..claims("5", now)
        };
        assert!(beyond < 60 && matches!(check(&expired), Err(AuthError::Expired)));
        // Skew within the leeway is tolerated.
        let skewed = Claims {
            nbf: Some(now + 5),
            iat: now + 5,
            ..claims("5", now)
        };
        assert_eq!(check(&skewed).expect("within leeway").user_id, Some(5));
    }

    #[test]
    fn only_canonical_decimal_subjects_are_users() {
        let now = now_secs();
        for alias in ["+11", "011", "-11", " 11", "0"] {
            assert!(
                matches!(check(&claims(alias, now)), Err(AuthError::Subject)),
                "{alias:?}"
            );
        }
        assert_eq!(check(&claims("11", now)).expect("valid").user_id, Some(11));
        assert_eq!(check(&claims("ops-bot", now)).expect("valid").user_id, None);
    }

    #[test]
    fn reasons_are_ours_not_the_librarys() {
        let now = now_secs();
        let expired = Claims {
            exp: now - 3600,
            iat: now - 7200,
            ..claims("5", now)
        };
        let err = check(&expired).expect_err("expired");
        assert_eq!(err.to_string(), "token has expired");
        let err = authenticator()
            .authenticate(Some("Bearer not.a.jwt"))
            .expect_err("garbage");
        assert_eq!(err.to_string(), "malformed token");
    }

    #[test]
    fn short_or_empty_secrets_are_refused() {
        for weak in ["", "short"] {
            let args = AuthArgs {
                jwt_hs256_secret: Some(weak.into()),
                ..AuthArgs::default()
            };
            assert!(matches!(
                Authenticator::from_args(&args),
                Err(KeyError::WeakSecret)
            ));
        }
    }

    #[test]
    fn admin_scope_acts_for_anyone() {
        let token = Minter::hs256(SECRET, "iss", "aud")
            .mint("ops", &["read", ADMIN_SCOPE], Duration::from_secs(60))
            .expect("mints");
        let p = authenticator()
            .authenticate(Some(&format!("Bearer {token}")))
            .expect("valid");
        assert!(p.admin && p.may_act_for(5));
    }
}
