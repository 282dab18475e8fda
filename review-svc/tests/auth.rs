//! Writes need a valid bearer token (HS256 or RS256, issuer, audience,
//! `exp`, `nbf` and `iat` checked) whose subject is the review's author in
//! canonical decimal: missing or invalid → 401 with a reason in our words
//! (each counted), another user → 403, the `admin` scope may act for anyone.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{AUDIENCE, Harness, ISSUER, rejected};
use jsonwebtoken::{Algorithm, EncodingKey};
use review_svc::auth::{Claims, LEEWAY_SECS, Minter};
use serde_json::json;

/// An RSA key pair made with the system's `openssl` for this test.
fn rsa_key_pair(dir: &std::path::Path) -> anyhow::Result<(std::path::PathBuf, Vec<u8>)> {
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let status = std::process::Command::new("openssl").args(args).status()?;
        anyhow::ensure!(status.success(), "openssl {args:?} failed");
        Ok(())
    };
    let (private_s, public_s) = (private.to_string_lossy(), public.to_string_lossy());
    run(&[
        "genpkey",
        "-quiet",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &private_s,
    ])?;
    run(&["pkey", "-in", &private_s, "-pubout", "-out", &public_s])?;
    Ok((public, std::fs::read(&private)?))
}

#[tokio::test]
async fn tokens_decide_who_may_write_which_review() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(cinerec_tests::unique_name("rv_auth_keys"));
    std::fs::create_dir_all(&dir)?;
    let (public_pem, private_pem) = rsa_key_pair(&dir)?;
    let public_pem_bytes = std::fs::read(&public_pem)?;
    let other_dir = dir.join("other");
    std::fs::create_dir_all(&other_dir)?;
    let (_, other_private_pem) = rsa_key_pair(&other_dir)?;
    let h = Harness::with_auth("rv_auth", Some(public_pem)).await?;
    let body = |user: i64| json!({"user_id": user, "movie_id": 3, "rating": 4.5}).to_string();
    let post = |token: Option<String>, user: i64| {
        let h = &h;
        async move {
            h.call(
                Method::POST,
                "/v1/reviews",
                token.as_deref(),
                &[],
                Some(body(user)),
            )
            .await
        }
    };

    // 401: no token, garbage, wrong secret, wrong issuer/audience, expired
    // (also just past our leeway, inside jsonwebtoken's default 60 s), not
    // valid yet (`nbf`), issued in the future (`iat`), RS256 signed by
    // another key, `alg: none`, algorithm confusion (an RS256 header over an
    // HMAC signature keyed with our public key), a non-canonical subject.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = |sub: &str| Claims {
        sub: sub.into(),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        exp: now + 600,
        iat: now,
        nbf: None,
        scope: String::new(),
    };
    let ttl = Duration::from_secs(60);
    let rs256 = Minter::rs256(&private_pem, ISSUER, AUDIENCE)?;
    let rs_token = rs256.mint("20", &[], ttl)?;
    let (rs_signed_part, _) = rs_token
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("a JWS has three parts"))?;
    let confused = format!(
        "{rs_signed_part}.{}",
        jsonwebtoken::crypto::sign(
            rs_signed_part.as_bytes(),
            &EncodingKey::from_secret(&public_pem_bytes),
            Algorithm::HS256,
        )?
    );
    let (_, payload_and_sig) = rs_signed_part
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("a JWS has three parts"))?;
    // base64url of {"alg":"none","typ":"JWT"}
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload_and_sig}.");
    let unauthenticated: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "missing bearer token"),
        ("garbage", Some("not-a-jwt".to_owned()), "malformed token"),
        (
            "wrong secret",
            Some(Minter::hs256("wrong-secret-0123456", ISSUER, AUDIENCE).mint("20", &[], ttl)?),
            "token signature is invalid",
        ),
        (
            "issuer",
            Some(Minter::hs256(&h.secret, "someone-else", AUDIENCE).mint("20", &[], ttl)?),
            "token issuer is not accepted",
        ),
        (
            "audience",
            Some(Minter::hs256(&h.secret, ISSUER, "other-svc").mint("20", &[], ttl)?),
            "token audience is not accepted",
        ),
        (
            "expired an hour ago",
            Some(h.minter.mint_claims(&Claims {
                exp: now - 3600,
                iat: now - 7200,
                ..claims("20")
            })?),
            "token has expired",
        ),
        (
            "expired just past the leeway",
            Some(h.minter.mint_claims(&Claims {
                exp: now - LEEWAY_SECS - 15,
                iat: now - 600,
                ..claims("20")
            })?),
            "token has expired",
        ),
        (
            "nbf ahead",
            Some(h.minter.mint_claims(&Claims {
                nbf: Some(now + 3600),
                ..claims("20")
            })?),
            "token is not valid yet",
        ),
        (
            "iat ahead",
            Some(h.minter.mint_claims(&Claims {
                iat: now + 3600,
                exp: now + 7200,
                ..claims("20")
            })?),
            "token is issued in the future",
        ),
        (
            "RS256 signed by another key",
            Some(Minter::rs256(&other_private_pem, ISSUER, AUDIENCE)?.mint("20", &[], ttl)?),
            "token signature is invalid",
        ),
        ("alg none", Some(alg_none), "malformed token"),
        (
            "RS256 header, HMAC signature",
            Some(confused),
            "token signature is invalid",
        ),
        (
            "sub +20",
            Some(h.minter.mint_claims(&claims("+20"))?),
            "token subject is not a user id in canonical decimal",
        ),
        (
            "sub 020",
            Some(h.minter.mint_claims(&claims("020"))?),
            "token subject is not a user id in canonical decimal",
        ),
    ];
    for (case, token, reason) in unauthenticated {
        let before = rejected("unauthenticated");
        let (status, _, json) = post(token.clone(), 20).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {json}");
        assert_eq!(
            (json["error"].as_str(), json["reason"].as_str()),
            (Some("unauthenticated"), Some(reason)),
            "{case}"
        );
        assert_eq!(rejected("unauthenticated") - before, 1.0, "{case} counted");
    }
    // The canonical spelling of the same subject is accepted.
    let (status, _, json) = post(Some(h.minter.mint_claims(&claims("20"))?), 20).await?;
    assert_eq!(status, StatusCode::CREATED, "{json}");

    // Own reviews: HS256 and RS256 both accepted.
    let (status, _, mine) = post(Some(h.token("20", &[])), 20).await?;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let rs = rs256.mint("21", &[], ttl)?;
    let (status, _, json) = post(Some(rs), 21).await?;
    assert_eq!(status, StatusCode::CREATED, "RS256: {json}");

    // 403: another user's id, on create, edit and delete.
    let (status, _, json) = post(Some(h.token("20", &[])), 22).await?;
    assert_eq!(
        (status, json["error"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden"))
    );
    let uri = format!(
        "/v1/reviews/{}",
        mine["review_id"].as_str().unwrap_or_default()
    );
    let intruder = h.token("99", &[]);
    let edit = json!({"rating": 1.0}).to_string();
    let (status, _, _) = h
        .call(Method::PUT, &uri, Some(&intruder), &[], Some(edit.clone()))
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = h
        .call(Method::DELETE, &uri, Some(&intruder), &[], None)
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // admin acts for anyone.
    let admin = h.token("moderation-bot", &["admin"]);
    let (status, _, json) = post(Some(admin.clone()), 23).await?;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let (status, _, json) = h
        .call(Method::PUT, &uri, Some(&admin), &[], Some(edit))
        .await?;
    assert_eq!(
        (status, json["version"].clone()),
        (StatusCode::OK, json!(2))
    );

    std::fs::remove_dir_all(&dir)?;
    h.cleanup().await
}
