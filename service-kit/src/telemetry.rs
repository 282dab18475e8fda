//! Logging, metrics and trace export set-up, once per process.
//!
//! Logs go through `tracing` with key/value fields; metrics through the
//! `metrics` facade into one Prometheus recorder that `/metrics` renders.
//!
//! Traces: the same `tracing` spans are exported over OTLP/HTTP (protobuf)
//! through `tracing-opentelemetry`, configured only by the standard
//! OpenTelemetry environment variables:
//!
//! | variable | effect |
//! | --- | --- |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | full URL spans are POSTed to (e.g. `http://127.0.0.1:14318/v1/traces`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; `/v1/traces` is appended |
//! | `OTEL_SERVICE_NAME` | `service.name` (default: the service's own name) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes (`k=v,k2=v2`) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | sampling (default `parentbased_always_on`) |
//! | `OTEL_SDK_DISABLED=true` | no export even with an endpoint |
//! | `OTEL_BSP_*` | batch span processor delays and sizes |
//!
//! With no endpoint set there is no exporter and no OpenTelemetry layer:
//! spans cost what `tracing` spans cost. The W3C TraceContext propagator is
//! installed globally either way, so [`crate::trace_context`] reads and
//! writes `traceparent`/`tracestate` even in a process that exports nothing
//! (it then forwards the context it received unchanged).
//!
//! Spans the exporter sees are filtered separately from log lines
//! ([`TRACE_FILTER`]), so `CINEREC_LOG=warn` quiets the logs without
//! dropping the request spans. [`shutdown`] flushes what is buffered; the
//! batch processor also exports on its own every `OTEL_BSP_SCHEDULE_DELAY`
//! (5 s by default).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Info for our crates, warnings for dependencies.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Which spans are exported: ours and avro-rpc's at info, nothing from the
/// exporter's own stack (its HTTP client would otherwise trace its exports).
pub const TRACE_FILTER: &str = "info,opentelemetry=off,opentelemetry_sdk=off,\
opentelemetry_otlp=off,opentelemetry_http=off,reqwest=off,hyper=off,hyper_util=off,h2=off,\
tower=off,scylla=warn,sqlx=warn,rdkafka=warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where and whether spans are exported, read from the standard `OTEL_*`
/// variables (see the module docs). Tests build it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceExport {
    /// The full OTLP/HTTP traces URL.
    pub endpoint: String,
    /// `service.name` of the resource.
    pub service_name: String,
}

impl TraceExport {
    /// The export configuration from `OTEL_*` variables, or `None` when no
    /// endpoint is set or `OTEL_SDK_DISABLED=true`.
    pub fn from_env(default_service: &str) -> Option<TraceExport> {
        Self::from_lookup(default_service, |k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) over any variable lookup.
    pub fn from_lookup(
        default_service: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Option<TraceExport> {
        let set = |k: &str| {
            var(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        let endpoint = match set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url,
            None => {
                let base = set("OTEL_EXPORTER_OTLP_ENDPOINT")?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
        };
        let service_name = set("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned());
        Some(TraceExport {
            endpoint,
            service_name,
        })
    }

    /// A tracer provider exporting in batches to the endpoint; the sampler,
    /// batch settings and extra resource attributes come from `OTEL_*`.
    pub fn provider(&self) -> anyhow::Result<SdkTracerProvider> {
        use opentelemetry_otlp::{Protocol, WithExportConfig};
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(self.endpoint.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("OTLP exporter to {}: {e}", self.endpoint))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(self.service_name.clone())
            .build();
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build())
    }
}

/// The provider [`init`] installed, kept for [`shutdown`].
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);
/// Whether spans are exported: read on hot paths (per Kafka record), so an
/// atomic rather than the provider's lock.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Installs the global `tracing` subscriber (stderr logs filtered by `filter`;
/// OTLP span export when the `OTEL_*` variables ask for it), the W3C
/// propagator and the Prometheus metrics recorder. Safe to call more than
/// once (tests do): later calls keep the first subscriber.
pub fn init(service: &'static str, filter: &str, format: LogFormat) -> anyhow::Result<()> {
    init_with(service, filter, format, TraceExport::from_env(service))
}

/// [`init`] with an explicit export configuration (`None`: no export).
pub fn init_with(
    service: &'static str,
    filter: &str,
    format: LogFormat,
    export: Option<TraceExport>,
) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter {filter:?}: {e}"))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    layers.push(match format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    });
    let provider = match &export {
        Some(export) => {
            let provider = export.provider()?;
            let tracer = provider.tracer(service);
            layers.push(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(EnvFilter::new(TRACE_FILTER))
                    .boxed(),
            );
            Some(provider)
        }
        None => None,
    };
    let installed = tracing_subscriber::registry().with(layers).try_init();
    match (installed, provider) {
        (Ok(()), provider) => {
            if let Some(provider) = provider {
                opentelemetry::global::set_tracer_provider(provider.clone());
                *PROVIDER.lock().unwrap_or_else(|p| p.into_inner()) = Some(provider);
                EXPORTING.store(true, Ordering::Release);
            }
            tracing::info!(
                service,
                otlp = export.as_ref().map(|e| e.endpoint.as_str()),
                "telemetry initialised"
            );
        }
        // Another subscriber came first (a test harness): this provider
        // would never see a span.
        (Err(_), Some(provider)) => {
            let _ = provider.shutdown();
        }
        (Err(_), None) => {}
    }
    metrics_handle();
    Ok(())
}

/// Whether [`init`] installed span export in this process (and
/// [`shutdown`] has not stopped it). Per-record spans are only made when it
/// is, so a process that exports nothing pays nothing for them.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Acquire)
}

/// Flushes buffered spans and stops the exporter. Call once on the way
/// out of `main`; without an exporter it does nothing. A failing export is
/// logged, never an error: telemetry must not fail a clean shutdown.
pub fn shutdown() {
    EXPORTING.store(false, Ordering::Release);
    let provider = PROVIDER.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(provider) = provider {
        if let Err(e) = provider.force_flush() {
            tracing::warn!(error = %e, "flushing spans failed");
        }
        if let Err(e) = provider.shutdown() {
            tracing::warn!(error = %e, "stopping the span exporter failed");
        }
    }
}

/// The process-wide Prometheus recorder, installed on first use. The `metrics`
/// facade accepts one global recorder per process, so every caller shares this
/// handle.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            // Latency histograms in seconds, from 50 µs (an RPC on loopback)
            // to 10 s (a stalled dependency).
            .set_buckets(&[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ])
            .expect("bucket list is non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness, or a
        // library's); then our handle renders nothing, which /metrics shows.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_endpoint_means_no_export() {
        assert_eq!(TraceExport::from_lookup("svc", lookup(&[])), None);
        assert_eq!(
            TraceExport::from_lookup("svc", lookup(&[("OTEL_SERVICE_NAME", "x")])),
            None
        );
    }

    #[test]
    fn base_endpoint_gets_the_traces_path_and_signal_endpoint_wins() {
        let base = TraceExport::from_lookup(
            "svc",
            lookup(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]),
        )
        .expect("export");
        assert_eq!(base.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(base.service_name, "svc");
        let signal = TraceExport::from_lookup(
            "svc",
            lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://h:1/custom"),
                ("OTEL_SERVICE_NAME", "named"),
            ]),
        )
        .expect("export");
        assert_eq!(signal.endpoint, "http://h:1/custom");
        assert_eq!(signal.service_name, "named");
    }

    #[test]
    fn sdk_disabled_wins_over_an_endpoint() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ];
        assert_eq!(TraceExport::from_lookup("svc", lookup(&vars)), None);
    }
}
