//! One review is one trace, from the `POST` to the recommender's write
//! (DESIGN.md §2, issue 8 point 1): the five services run as child processes
//! exporting OTLP to the stack's Jaeger; the test sends a review with its own
//! W3C `traceparent`, then reads that trace back through Jaeger's query API
//! and checks that it holds spans of all five services, joined hop by hop:
//!
//! - review-svc's HTTP server span is the child of the test's span;
//! - its calls to user-svc and movie-svc, and the relay's producer span
//!   (through the CDC change row), descend from it;
//! - the enricher's consumer span is the child of that producer span; its
//!   `getReviews`/`getMovies`/`getUsers` calls reach review-svc, movie-svc and
//!   user-svc server spans; its producer span publishes `reviews.enriched`;
//! - the recommender's spans descend from the enricher's producer span;
//! - every span of the trace reaches the HTTP server span through its
//!   parents: nothing is orphaned or in another trace.
//!
//! Jaeger forwards every span it receives to the stack's Zipkin (the trace
//! web UI, Lens); the test then reads the same trace through Zipkin's
//! `/api/v2/trace/<id>` and checks it the same way, span for span.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cinerec_tests::pipeline::{JWT_AUDIENCE, JWT_ISSUER, Pipeline, PipelineConfig, Service};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Jaeger's query API when `dev/stack env` is not in the environment.
const DEFAULT_JAEGER: &str = "127.0.0.1:17686";
/// Zipkin's API (and Lens UI) when `dev/stack env` is not in the environment.
const DEFAULT_ZIPKIN: &str = "127.0.0.1:19411";
/// How long Zipkin may lag behind Jaeger: Jaeger's exporter to it sends the
/// same batches as it stores, so a few seconds at most.
const ZIPKIN_DEADLINE: Duration = Duration::from_secs(30);
/// Jaeger's OTLP/HTTP receiver when `dev/stack env` is not in the environment.
const DEFAULT_OTLP: &str = "http://127.0.0.1:14318";
/// How long the trace may take to be complete in Jaeger: the pipeline's
/// own latency plus each service's batch export delay (set to 200 ms here).
const TRACE_DEADLINE: Duration = Duration::from_secs(90);

/// A span as Jaeger's `/api/traces/<id>` or Zipkin's `/api/v2/trace/<id>`
/// returns it, reduced to what the assertions read. Zipkin lower-cases span
/// names, so names compare without case.
#[derive(Debug, Clone)]
struct Span {
    id: String,
    service: String,
    name: String,
    kind: String,
    /// `CHILD_OF` reference: the parent span id.
    parent: Option<String>,
}

/// The address in `var` (`http://ip:port`), or `default`.
fn addr_from_env(var: &str, default: &str) -> anyhow::Result<SocketAddr> {
    let url = std::env::var(var).unwrap_or_else(|_| default.into());
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    hostport
        .parse()
        .with_context(|| format!("{var} {url:?} is not http://ip:port"))
}

/// One HTTP/1.0 request (so the answer is never chunked): status and body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .with_context(|| format!("no header end in the answer of {method} {addr}{path}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status in the answer of {method} {addr}{path}"))?;
        Ok((status, body.to_owned()))
    })
    .await
    .with_context(|| format!("{method} {addr}{path} timed out"))?
}

/// A token for `user` signed with the run's secret, minted by review-svc's
/// own `mint-token`.
fn token(pipeline: &Pipeline, user: i64) -> anyhow::Result<String> {
    let bin = cinerec_tests::pipeline::bin_dir()?.join("review-svc");
    let out = std::process::Command::new(&bin)
        .args(["mint-token", "--sub", &user.to_string()])
        .args(["--issuer", JWT_ISSUER, "--audience", JWT_AUDIENCE])
        .env("REVIEW_SVC_JWT_HS256_SECRET", &pipeline.names().jwt_secret)
        .output()
        .with_context(|| format!("running {} mint-token", bin.display()))?;
    if !out.status.success() {
        bail!(
            "mint-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str())
}

/// The spans of `trace_id` Jaeger holds (none yet: empty).
async fn fetch_trace(jaeger: SocketAddr, trace_id: &str) -> anyhow::Result<Vec<Span>> {
    let (status, body) = http(jaeger, "GET", &format!("/api/traces/{trace_id}"), &[], "").await?;
    if status == 404 {
        return Ok(Vec::new());
    }
    if status != 200 {
        bail!("Jaeger answered {status} for trace {trace_id}: {body}");
    }
    let json: Value = serde_json::from_str(&body).context("Jaeger's trace JSON")?;
    let Some(trace) = json["data"].as_array().and_then(|d| d.first()) else {
        return Ok(Vec::new());
    };
    let processes = &trace["processes"];
    let mut spans = Vec::new();
    for s in trace["spans"].as_array().into_iter().flatten() {
        if s["traceID"] != trace_id {
            bail!("Jaeger returned a span of another trace: {s}");
        }
        let refs = s["references"].as_array().cloned().unwrap_or_default();
        let of = |kind: &str| -> Vec<String> {
            refs.iter()
                .filter(|r| r["refType"] == kind)
                .filter_map(|r| r["spanID"].as_str().map(str::to_owned))
                .collect()
        };
        let process = s["processID"].as_str().unwrap_or_default();
        spans.push(Span {
            id: s["spanID"].as_str().unwrap_or_default().to_owned(),
            service: processes[process]["serviceName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name: s["operationName"].as_str().unwrap_or_default().to_owned(),
            kind: tag(s, "span.kind").unwrap_or("internal").to_owned(),
            parent: of("CHILD_OF").into_iter().next(),
        });
    }
    Ok(spans)
}

/// The spans of `trace_id` Zipkin holds (none yet: empty).
async fn fetch_zipkin_trace(zipkin: SocketAddr, trace_id: &str) -> anyhow::Result<Vec<Span>> {
    let (status, body) = http(zipkin, "GET", &format!("/api/v2/trace/{trace_id}"), &[], "").await?;
    if status == 404 {
        return Ok(Vec::new());
    }
    if status != 200 {
        bail!("Zipkin answered {status} for trace {trace_id}: {body}");
    }
    let json: Value = serde_json::from_str(&body).context("Zipkin's trace JSON")?;
    let mut spans = Vec::new();
    for s in json.as_array().into_iter().flatten() {
        if s["traceId"] != trace_id {
            bail!("Zipkin returned a span of another trace: {s}");
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        spans.push(Span {
            id: text(&s["id"]),
            service: text(&s["localEndpoint"]["serviceName"]),
            name: text(&s["name"]),
            // Zipkin leaves `kind` out for internal spans.
            kind: s["kind"]
                .as_str()
                .unwrap_or("internal")
                .to_ascii_lowercase(),
            parent: s["parentId"].as_str().map(str::to_owned),
        });
    }
    Ok(spans)
}

/// Polls `fetch` until the trace is complete (nothing `missing`) or
/// `deadline` passed: the last spans seen and what they still lack.
async fn poll_trace<F, Fut>(
    deadline: Duration,
    root_parent: &str,
    mut fetch: F,
) -> anyhow::Result<(Vec<Span>, Vec<String>)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Span>>>,
{
    let started = Instant::now();
    loop {
        let spans = fetch().await?;
        let left = missing(&spans, root_parent);
        if left.is_empty() || started.elapsed() > deadline {
            return Ok((spans, left));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn describe(spans: &[Span]) -> String {
    let mut lines: Vec<String> = spans
        .iter()
        .map(|s| {
            format!(
                "  {} {:<12} {:<9} {:<45} parent {}",
                s.id,
                s.service,
                s.kind,
                s.name,
                s.parent.as_deref().unwrap_or("-")
            )
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// What is still missing from the trace for the test to pass (empty: done).
fn missing(spans: &[Span], root_parent: &str) -> Vec<String> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let parent_of = |s: &Span| s.parent.as_deref().and_then(|p| by_id.get(p).copied());
    let mut missing = Vec::new();
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    for service in Service::ALL {
        if !services.contains(service.name()) {
            missing.push(format!("no span of {service}"));
        }
    }
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent.as_deref() == Some(root_parent))
        .collect();
    let root = match roots.as_slice() {
        [root] if root.service == "review-svc" && root.kind == "server" => *root,
        _ => {
            missing.push(format!(
                "exactly one review-svc server span as the child of the test's span {root_parent}, \
                 found {}",
                roots.len()
            ));
            return missing;
        }
    };
    // Every span reaches the HTTP server span through its parents.
    for s in spans {
        let mut at = s;
        let mut hops = 0;
        while at.id != root.id && hops <= spans.len() {
            match parent_of(at) {
                Some(p) => at = p,
                None => break,
            }
            hops += 1;
        }
        if at.id != root.id {
            missing.push(format!(
                "span {} ({} {}) does not descend from the HTTP server span",
                s.id, s.service, s.name
            ));
        }
    }
    let mut has = |what: &str, ok: &dyn Fn(&Span) -> bool| {
        if !spans.iter().any(ok) {
            missing.push(what.to_owned());
        }
    };
    let is = |s: Option<&Span>, service: &str, kind: &str| {
        s.is_some_and(|s| s.service == service && s.kind == kind)
    };
    has("a review-svc producer span (the relay's publish)", &|s| {
        s.service == "review-svc" && s.kind == "producer"
    });
    has(
        "an enricher consumer span whose parent is review-svc's producer span",
        &|s| {
            s.service == "enricher"
                && s.kind == "consumer"
                && is(parent_of(s), "review-svc", "producer")
        },
    );
    for (service, method) in [
        ("review-svc", "getReviews"),
        ("movie-svc", "getMovies"),
        ("user-svc", "getUsers"),
    ] {
        has(
            &format!("a {service} server span ({method}) whose parent is an enricher client span"),
            &|s| {
                s.service == service
                    && s.kind == "server"
                    && s.name
                        .to_ascii_lowercase()
                        .ends_with(&method.to_ascii_lowercase())
                    && is(parent_of(s), "enricher", "client")
            },
        );
    }
    for service in ["user-svc", "movie-svc"] {
        has(
            &format!("a {service} server span whose parent is a review-svc client span"),
            &|s| {
                s.service == service
                    && s.kind == "server"
                    && is(parent_of(s), "review-svc", "client")
            },
        );
    }
    has("an enricher producer span (reviews.enriched)", &|s| {
        s.service == "enricher" && s.kind == "producer"
    });
    has(
        "a recommender span whose parent is the enricher's producer span",
        &|s| s.service == "recommender" && is(parent_of(s), "enricher", "producer"),
    );
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_review_is_one_trace_across_all_five_services() -> anyhow::Result<()> {
    let jaeger = addr_from_env("CINEREC_JAEGER_URL", DEFAULT_JAEGER)?;
    let (status, body) = http(jaeger, "GET", "/api/services", &[], "")
        .await
        .with_context(|| format!("Jaeger's query API at {jaeger} (dev/stack up jaeger)"))?;
    anyhow::ensure!(status == 200, "Jaeger /api/services: {status} {body}");
    let zipkin = addr_from_env("CINEREC_ZIPKIN_URL", DEFAULT_ZIPKIN)?;
    let (status, body) = http(zipkin, "GET", "/health", &[], "")
        .await
        .with_context(|| format!("Zipkin at {zipkin} (dev/stack up zipkin)"))?;
    anyhow::ensure!(status == 200, "Zipkin /health: {status} {body}");
    let otlp = std::env::var("CINEREC_OTLP_ENDPOINT").unwrap_or_else(|_| DEFAULT_OTLP.into());

    let mut config = PipelineConfig::new("pipeline_trace");
    config.env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp),
        ("OTEL_TRACES_SAMPLER".into(), "parentbased_always_on".into()),
        // Export every 200 ms instead of every 5 s: the test waits less.
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
    ];
    let pipeline = Pipeline::start(config).await?;
    let api = pipeline
        .addrs(Service::ReviewSvc)
        .api
        .context("review-svc's API address")?;

    // The test is the trace's first span: a fresh trace id, its own span id.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let root_parent = format!("{:016x}", rand::random::<u64>() | 1);
    let traceparent = format!("00-{trace_id}-{root_parent}-01");
    let (user, movie) = (17_i64, 42_i64);
    let bearer = format!("Bearer {}", token(&pipeline, user)?);
    let review = format!(r#"{{"user_id":{user},"movie_id":{movie},"rating":4.5,"text":"traced"}}"#);
    let (status, answer) = http(
        api,
        "POST",
        "/v1/reviews",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer),
            ("traceparent", &traceparent),
        ],
        &review,
    )
    .await?;
    anyhow::ensure!(
        status == 201,
        "POST /v1/reviews answered {status}: {answer}"
    );

    let started = Instant::now();
    let (spans, left) = poll_trace(TRACE_DEADLINE, &root_parent, || {
        fetch_trace(jaeger, &trace_id)
    })
    .await?;
    assert!(
        left.is_empty(),
        "trace {trace_id} in Jaeger after {:?} is missing:\n  {}\nits {} spans:\n{}\n{}",
        started.elapsed(),
        left.join("\n  "),
        spans.len(),
        describe(&spans),
        pipeline.log_tails()
    );
    eprintln!(
        "trace {trace_id}: {} spans in Jaeger in {:?}\n{}",
        spans.len(),
        started.elapsed(),
        describe(&spans)
    );

    // The same trace through Zipkin: the same checks, and every span Jaeger
    // holds is there (Jaeger forwards what it receives; nothing is dropped).
    let forwarded = Instant::now();
    let (zipkin_spans, left) = poll_trace(ZIPKIN_DEADLINE, &root_parent, || {
        fetch_zipkin_trace(zipkin, &trace_id)
    })
    .await?;
    assert!(
        left.is_empty(),
        "trace {trace_id} in Zipkin {:?} after Jaeger had it is missing:\n  {}\nits {} spans:\n{}",
        forwarded.elapsed(),
        left.join("\n  "),
        zipkin_spans.len(),
        describe(&zipkin_spans)
    );
    let in_zipkin: BTreeSet<&str> = zipkin_spans.iter().map(|s| s.id.as_str()).collect();
    let not_forwarded: Vec<&Span> = spans
        .iter()
        .filter(|s| !in_zipkin.contains(s.id.as_str()))
        .collect();
    assert!(
        not_forwarded.is_empty(),
        "spans of trace {trace_id} in Jaeger but not in Zipkin: {not_forwarded:?}"
    );
    eprintln!(
        "trace {trace_id}: {} spans in Zipkin (Lens: http://{zipkin}/zipkin/traces/{trace_id})",
        zipkin_spans.len()
    );
    pipeline.cleanup().await
}
