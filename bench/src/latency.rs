//! Quantiles of a Prometheus histogram over an interval: the difference of
//! its cumulative `_bucket` counts scraped before and after.
//!
//! The resolution is the bucket list service-kit installs (50 µs … 10 s;
//! around the target: 25, 50, 100, 250 ms), so a quantile is reported as the
//! upper bound of the bucket it falls in. That bound is exact for the
//! question asked: "p99 ≤ 100 ms" holds iff 99 % of the events are in the
//! buckets up to `le="0.1"`.

use cinerec_tests::pipeline::Metrics;

/// Cumulative bucket counts of one histogram, by upper bound (ascending;
/// `+Inf` as `f64::INFINITY`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    /// The `<name>_bucket` samples of `page` (summed over other labels).
    pub fn scrape(page: &Metrics, name: &str) -> Buckets {
        let bucket = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = Vec::new();
        for s in page.samples().iter().filter(|s| s.name == bucket) {
            let Some(le) = s.labels.get("le").and_then(|le| parse_le(le)) else {
                continue;
            };
            match out.iter_mut().find(|(b, _)| *b == le) {
                Some((_, n)) => *n += s.value,
                None => out.push((le, s.value)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Buckets(out)
    }

    /// `self − earlier`, bucket by bucket (a bucket absent earlier counts 0).
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|(le, n)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(b, _)| b == le)
                        .map_or(0.0, |(_, m)| *m);
                    (*le, (n - before).max(0.0))
                })
                .collect(),
        )
    }

    /// `self + other`, bucket by bucket (histograms of several instances).
    pub fn plus(&self, other: &Buckets) -> Buckets {
        let mut out = self.0.clone();
        for (le, n) in &other.0 {
            match out.iter_mut().find(|(b, _)| b == le) {
                Some((_, m)) => *m += n,
                None => out.push((*le, *n)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Buckets(out)
    }

    /// Events counted (the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        self.0.last().map_or(0, |(_, n)| *n as u64)
    }

    /// The upper bound of the bucket holding the `q`-quantile (0..=1), in
    /// seconds; `None` without events.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.0.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = (q * total).ceil().max(1.0);
        self.0.iter().find(|(_, n)| *n >= rank).map(|(le, _)| *le)
    }
}

fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

/// A bucket bound for a table: `≤25ms`, `>10s` for the `+Inf` bucket.
pub fn show(bound: Option<f64>) -> String {
    match bound {
        None => "-".to_owned(),
        Some(b) if b.is_infinite() => ">10s".to_owned(),
        Some(b) if b < 0.001 => format!("≤{:.0}µs", b * 1e6),
        Some(b) if b < 1.0 => format!("≤{:.0}ms", b * 1e3),
        Some(b) => format!("≤{b}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(counts: &[(&str, u64)]) -> Metrics {
        let text: String = counts
            .iter()
            .map(|(le, n)| format!("lat_bucket{{le=\"{le}\"}} {n}\n"))
            .collect();
        Metrics::parse(&text).expect("valid page")
    }

    #[test]
    fn quantiles_of_the_difference_are_bucket_upper_bounds() {
        let before = Buckets::scrape(
            &page(&[("0.05", 10), ("0.1", 10), ("0.25", 10), ("+Inf", 10)]),
            "lat",
        );
        // 100 new events: 90 ≤ 50 ms, 9 in (50, 100] ms, 1 in (100, 250] ms.
        let after = Buckets::scrape(
            &page(&[("0.05", 100), ("0.1", 109), ("0.25", 110), ("+Inf", 110)]),
            "lat",
        );
        let d = after.since(&before);
        assert_eq!(d.count(), 100);
        assert_eq!(d.quantile(0.5), Some(0.05));
        assert_eq!(d.quantile(0.99), Some(0.1));
        assert_eq!(d.quantile(1.0), Some(0.25));
        assert_eq!(Buckets::default().quantile(0.99), None);
        assert_eq!(show(Some(0.1)), "≤100ms");
        assert_eq!(show(Some(f64::INFINITY)), ">10s");
    }
}
