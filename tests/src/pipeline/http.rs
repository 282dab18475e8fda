//! The little HTTP the harness speaks to the services' admin ports: one
//! `GET` per connection (HTTP/1.0, so the body is never chunked), and the
//! Prometheus text format `/metrics` answers in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read (a /metrics page is a few tens of KiB).
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// `GET http://{addr}{path}`: the status code and the body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        (&mut stream).take(MAX_ANSWER).read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .with_context(|| format!("no header end in the answer of {addr}{path}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .with_context(|| format!("no status line in the answer of {addr}{path}"))?;
        Ok((status, body.to_owned()))
    })
    .await
    .with_context(|| format!("GET {addr}{path} timed out after {REQUEST_TIMEOUT:?}"))?
}

/// One `/metrics` page, parsed: every sample by family name.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
}

/// One line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (`foo_total`, `foo_bucket`, `foo_sum`, …).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Metrics {
    /// Parses the Prometheus text exposition format (comments skipped).
    pub fn parse(text: &str) -> anyhow::Result<Metrics> {
        let mut samples = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_line(line).with_context(|| format!("bad metrics line {line:?}"))?);
        }
        Ok(Metrics { samples })
    }

    /// Every sample.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Whether any sample's name is `name` or starts with `name_` (a
    /// histogram's `_bucket`/`_sum`/`_count`).
    pub fn has_family(&self, name: &str) -> bool {
        self.samples.iter().any(|s| {
            s.name == name
                || s.name
                    .strip_prefix(name)
                    .is_some_and(|rest| matches!(rest, "_bucket" | "_sum" | "_count"))
        })
    }

    /// The sum of the samples named `name` whose labels include every pair of
    /// `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
            // An empty f64 sum is -0.0; callers print it.
            .fold(0.0, |a, v| a + v)
    }
}

fn parse_line(line: &str) -> anyhow::Result<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => bail!("no value"),
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        loop {
            // key
            let mut key = String::new();
            while let Some(&(i, c)) = chars.peek() {
                if c == '}' {
                    end = Some(i);
                    break;
                }
                chars.next();
                if c == '=' {
                    break;
                }
                if c != ',' && !c.is_whitespace() {
                    key.push(c);
                }
            }
            if end.is_some() {
                break;
            }
            anyhow::ensure!(
                matches!(chars.next(), Some((_, '"'))),
                "label value not quoted"
            );
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => bail!("unterminated escape"),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated label value"),
                }
            }
            labels.insert(key, value);
        }
        let end = end.context("unterminated labels")?;
        &inner[end + 1..]
    } else {
        rest
    };
    let value = rest
        .split_whitespace()
        .next()
        .context("no value")?
        .parse::<f64>()
        .context("value is not a number")?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_and_values() {
        let m = Metrics::parse(
            "# TYPE x counter\n\
             x_total{outcome=\"duplicate\",ns=\"a\\\"b\"} 3\n\
             x_total{outcome=\"processed\",ns=\"a\"} 4\n\
             plain 1.5\n\
             h_bucket{le=\"+Inf\"} 2\n",
        )
        .expect("parse");
        assert_eq!(m.sum("x_total", &[]), 7.0);
        assert_eq!(m.sum("x_total", &[("outcome", "duplicate")]), 3.0);
        assert_eq!(m.sum("x_total", &[("ns", "a\"b")]), 3.0);
        assert_eq!(m.sum("plain", &[]), 1.5);
        assert!(m.has_family("h"));
        assert!(!m.has_family("x"));
        assert!(m.has_family("x_total"));
    }
}
