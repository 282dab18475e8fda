//! Writes need a valid bearer token (HS256 or RS256, issuer, audience and
//! expiry checked) whose subject is the review's author: missing or invalid
//! → 401, another user → 403, the `admin` scope may act for anyone.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{AUDIENCE, Harness, ISSUER};
use review_svc::auth::{Claims, Minter};
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

    // 401: no token, garbage, wrong secret, wrong issuer/audience, expired, RS256 signed by another key.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let expired = h.minter.mint_claims(&Claims {
        sub: "20".into(),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        exp: now - 3600,
        iat: now - 7200,
        scope: String::new(),
    })?;
    let ttl = Duration::from_secs(60);
    let unauthenticated = [
        None,
        Some("not-a-jwt".to_owned()),
        Some(Minter::hs256("wrong-secret", ISSUER, AUDIENCE).mint("20", &[], ttl)?),
        Some(Minter::hs256(&h.secret, "someone-else", AUDIENCE).mint("20", &[], ttl)?),
        Some(Minter::hs256(&h.secret, ISSUER, "other-svc").mint("20", &[], ttl)?),
        Some(expired),
    ];
    for token in unauthenticated {
        let (status, _, json) = post(token.clone(), 20).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {json}");
        assert_eq!(json["error"], "unauthenticated");
    }

    // Own reviews: HS256 and RS256 both accepted.
    let (status, _, mine) = post(Some(h.token("20", &[])), 20).await?;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let rs = Minter::rs256(&private_pem, ISSUER, AUDIENCE)?.mint("21", &[], ttl)?;
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
