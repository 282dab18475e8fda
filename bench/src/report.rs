//! What a run of `cinerec-bench pipeline` prints: one step's figures
//! ([`StepReport`]) as they come, the table of all steps, and the verdict
//! against the targets (DESIGN.md §7).

use std::collections::BTreeMap;

use cinerec_tests::pipeline::Metrics;

use crate::latency::{Buckets, show};
use crate::procs::CpuUse;
use crate::{Judged, MIN_ACCEPTED_SHARE, PipelineArgs, Source, TARGET_RATE};

/// The figures of one step.
#[derive(Debug)]
pub(crate) struct StepReport {
    pub(crate) offered_rate: u64,
    pub(crate) offered: u64,
    pub(crate) accepted: u64,
    /// The step's length plus how far behind schedule its last review was
    /// sent: the time the accepted reviews took to offer.
    pub(crate) load_secs: f64,
    pub(crate) handled_in_load: u64,
    /// The recommender's latency (from the enriched record's Kafka timestamp).
    pub(crate) latency: Buckets,
    /// From review-svc's acceptance of the review to its serving row.
    pub(crate) end_to_end: Buckets,
    /// review-svc's CDC lag (commit → Kafka ack).
    pub(crate) cdc_lag: Buckets,
    /// Which of the two latencies the p99 limit applies to.
    pub(crate) judged: Judged,
    pub(crate) enricher_lag: u64,
    pub(crate) recommender_lag: u64,
    pub(crate) drain_secs: f64,
    pub(crate) drained: bool,
    pub(crate) cpu: CpuUse,
    pub(crate) peak_kib: BTreeMap<String, u64>,
    pub(crate) note: String,
    /// Batch sizes and times of each consumer, Cassandra write times.
    pub(crate) stages: String,
}

/// Count and mean of a histogram over an interval (`_count`, `_sum` differences).
pub(crate) fn mean_of(before: &Metrics, after: &Metrics, name: &str) -> Option<(u64, f64)> {
    let count =
        after.sum(&format!("{name}_count"), &[]) - before.sum(&format!("{name}_count"), &[]);
    let sum = after.sum(&format!("{name}_sum"), &[]) - before.sum(&format!("{name}_sum"), &[]);
    (count > 0.0).then(|| (count as u64, sum / count))
}

/// "N of mean E events, mean S ms" for a consumer's `<prefix>_batch_*` histograms.
pub(crate) fn batches(before: &Metrics, after: &Metrics, prefix: &str) -> String {
    match (
        mean_of(before, after, &format!("{prefix}_batch_events")),
        mean_of(before, after, &format!("{prefix}_batch_seconds")),
    ) {
        (Some((n, events)), Some((_, secs))) => {
            format!("{n} of mean {events:.0} events, {:.1} ms", secs * 1e3)
        }
        _ => "-".to_owned(),
    }
}

impl StepReport {
    pub(crate) fn accepted_rate(&self) -> f64 {
        self.accepted as f64 / self.load_secs.max(1e-9)
    }
    /// The p99 of the judged latency.
    pub(crate) fn p99(&self) -> Option<f64> {
        match self.judged {
            Judged::Recommender => self.latency.quantile(0.99),
            Judged::EndToEnd => self.end_to_end.quantile(0.99),
        }
    }
    /// Cassandra's CPU per accepted review, milliseconds.
    pub(crate) fn cassandra_ms_per_review(&self) -> Option<f64> {
        let cpu = self.cpu.per_process.get("cassandra")?;
        (self.accepted > 0).then(|| cpu * self.load_secs * 1e3 / self.accepted as f64)
    }
    /// Accepted ≥ 90 % of the offered rate and the consumers caught up.
    pub(crate) fn keeps_up(&self) -> bool {
        self.drained && self.accepted_rate() >= MIN_ACCEPTED_SHARE * self.offered_rate as f64
    }
    pub(crate) fn passes(&self, limit_secs: f64) -> bool {
        self.keeps_up() && self.p99().is_some_and(|p| p <= limit_secs)
    }
    /// The process using the most CPU, and how much.
    pub(crate) fn busiest(&self) -> Option<(&str, f64)> {
        self.cpu
            .per_process
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(l, c)| (l.as_str(), *c))
    }
}

pub(crate) fn mib(kib: Option<&u64>) -> String {
    kib.map_or("-".to_owned(), |k| format!("{}", k / 1024))
}

pub(crate) fn print_step(n: usize, r: &StepReport, source: Source) {
    let unit = match source {
        Source::Http => "accepted (2xx)",
        Source::Kafka => "acked by Kafka",
    };
    println!(
        "step {n}: offered {}/s ({} in {:.1}s), {unit} {:.0}/s, recommender handled {:.0}/s during the load; \
         recommender latency p50 {} p99 {} over {} events; end to end (accepted → row) p50 {} p99 {}; \
         CDC lag p50 {} p99 {}; Cassandra CPU {} ms per review; lag at end of load: enricher {} recommender {}; \
         drained {} in {:.1}s; box CPU {}; {}",
        r.offered_rate,
        r.offered,
        r.load_secs,
        r.accepted_rate(),
        r.handled_in_load as f64 / r.load_secs.max(1e-9),
        show(r.latency.quantile(0.5)),
        show(r.latency.quantile(0.99)),
        r.latency.count(),
        show(r.end_to_end.quantile(0.5)),
        show(r.end_to_end.quantile(0.99)),
        show(r.cdc_lag.quantile(0.5)),
        show(r.cdc_lag.quantile(0.99)),
        r.cassandra_ms_per_review()
            .map_or("-".to_owned(), |ms| format!("{ms:.2}")),
        r.enricher_lag,
        r.recommender_lag,
        if r.drained { "yes" } else { "NO" },
        r.drain_secs,
        match (r.cpu.box_busy, r.cpu.others()) {
            (Some(b), Some(o)) => format!(
                "{b:.2}/{} cores, of which {o:.2} by processes outside the run",
                r.cpu.cores
            ),
            _ => "-".to_owned(),
        },
        r.note,
    );
    let cpu: Vec<String> = r
        .cpu
        .per_process
        .iter()
        .map(|(l, c)| format!("{l} {:.0}%", c * 100.0))
        .collect();
    println!("  CPU (% of one core): {}", cpu.join(", "));
    let mem: Vec<String> = r
        .peak_kib
        .iter()
        .map(|(l, k)| format!("{l} {}", k / 1024))
        .collect();
    println!("  peak RSS (VmHWM, MiB): {}", mem.join(", "));
    println!("  {}", r.stages);
}

pub(crate) fn print_table(reports: &[StepReport], source: Source) {
    let labels = [
        "review-svc",
        "movie-svc",
        "user-svc",
        "enricher",
        "recommender",
        "bench",
        "kafka",
        "cassandra",
    ];
    println!();
    println!(
        "source {source:?}; p50/p99 = recommender_event_latency_seconds, e2e = \
         recommender_review_latency_seconds (review accepted → row), cdc = review_svc_cdc_lag_seconds, \
         over load + drain, each the upper bound of its bucket (…, 25, 50, 100, 250 ms, …); \
         cass-ms = Cassandra CPU ms per accepted review"
    );
    println!(
        "{:>8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} | CPU % of a core: {} | peak RSS MiB: {}",
        "offered",
        "accepted",
        "handled",
        "p50",
        "p99",
        "e2e-p99",
        "cdc-p99",
        "cass-ms",
        "enr-lag",
        "rec-lag",
        "drained",
        labels.join(" "),
        labels.join(" ")
    );
    for r in reports {
        let cpu: Vec<String> = labels
            .iter()
            .map(|l| {
                r.cpu
                    .per_process
                    .get(*l)
                    .map_or("-".to_owned(), |c| format!("{:.0}", c * 100.0))
            })
            .collect();
        let mem: Vec<String> = labels.iter().map(|l| mib(r.peak_kib.get(*l))).collect();
        println!(
            "{:>8} {:>9.0} {:>9.0} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} | {} | {}",
            r.offered_rate,
            r.accepted_rate(),
            r.handled_in_load as f64 / r.load_secs.max(1e-9),
            show(r.latency.quantile(0.5)),
            show(r.latency.quantile(0.99)),
            show(r.end_to_end.quantile(0.99)),
            show(r.cdc_lag.quantile(0.99)),
            r.cassandra_ms_per_review()
                .map_or("-".to_owned(), |ms| format!("{ms:.2}")),
            r.enricher_lag,
            r.recommender_lag,
            if r.drained {
                format!("{:.0}s", r.drain_secs)
            } else {
                "NO".to_owned()
            },
            cpu.join(" "),
            mem.join(" ")
        );
    }
}

pub(crate) fn print_verdict(reports: &[StepReport], args: &PipelineArgs, release: bool) {
    let limit = args.p99_limit_ms / 1e3;
    let best = reports
        .iter()
        .filter(|r| r.passes(limit))
        .map(|r| r.accepted_rate())
        .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))));
    let last = reports.last();
    let why = last
        .filter(|r| !r.passes(limit))
        .map(|r| {
            let mut reasons = Vec::new();
            if !r.p99().is_some_and(|p| p <= limit) {
                reasons.push(format!("p99 {}", show(r.p99())));
            }
            if r.accepted_rate() < MIN_ACCEPTED_SHARE * r.offered_rate as f64 {
                reasons.push(format!(
                    "accepted {:.0}/s of {} offered",
                    r.accepted_rate(),
                    r.offered_rate
                ));
            }
            if !r.drained {
                reasons.push("consumers did not catch up".to_owned());
            }
            format!(
                "last step, {}/s offered, failed: {}",
                r.offered_rate,
                reasons.join(", ")
            )
        })
        .unwrap_or_else(|| "every step passed (raise --rates)".to_owned());
    let bottleneck = last
        .map(|r| {
            let lag = if r.enricher_lag > r.recommender_lag && r.enricher_lag > 0 {
                format!("; the enricher lagged most ({} events)", r.enricher_lag)
            } else if r.recommender_lag > 0 {
                format!(
                    "; the recommender lagged most ({} events)",
                    r.recommender_lag
                )
            } else {
                String::new()
            };
            let busiest = r.busiest().map_or("-".to_owned(), |(l, c)| {
                format!("{l} at {:.0}% of a core", c * 100.0)
            });
            let others = r.cpu.others().map_or(String::new(), |o| {
                format!(", {o:.2} cores of it by processes outside the run")
            });
            let box_busy = r.cpu.box_busy.map_or("-".to_owned(), |b| {
                format!(
                    "box {:.0}% busy ({:.2} of {} cores)",
                    b / r.cpu.cores as f64 * 100.0,
                    b,
                    r.cpu.cores
                )
            });
            format!("busiest process {busiest}, {box_busy}{others}{lag}")
        })
        .unwrap_or_default();
    let ceiling = reports
        .iter()
        .filter(|r| r.keeps_up())
        .map(|r| r.accepted_rate())
        .fold(0.0_f64, f64::max);
    let why = format!("{why}; highest rate kept up with (any latency): {ceiling:.0}/s");
    println!(
        "verdict ({}{:?} source): highest sustained rate with {} p99 ≤ {} ms: {} vs the {:.0}/s target; {why}; bottleneck: {bottleneck}",
        if release {
            ""
        } else {
            "NON-RELEASE binaries, "
        },
        args.source,
        match args.judge {
            Judged::Recommender => "recommender",
            Judged::EndToEnd => "end-to-end",
        },
        args.p99_limit_ms,
        best.map_or("none".to_owned(), |b| format!("{b:.0}/s")),
        TARGET_RATE,
    );
}
