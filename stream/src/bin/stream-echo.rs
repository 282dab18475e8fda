//! `stream-echo`: the smallest consumer on the runtime. Each record of the
//! source topic whose payload is `<event id>|<body>` is copied to
//! `--sink-topic` (keyed by the event id); anything else goes to the DLQ.
//! The runtime's kill -9 test runs it; it also shows how a consumer binary
//! flattens the shared flags with its own defaults.

use cinerec_service_kit::kafka as kit;
use cinerec_service_kit::{AdminServer, CommonArgs, Readiness, Shutdown, shutdown, telemetry};
use cinerec_stream::config::{self, CacheDefaults, Defaults};
use cinerec_stream::{CacheArgs, Claimed, Config, Decoded, KafkaArgs, Operator, Outcome, Runtime};
use rdkafka::Message as _;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The echo's defaults of the shared flags.
const DEFAULTS: Defaults = Defaults {
    env_prefix: "STREAM_ECHO",
    group: "stream-echo",
    source_topic: "stream-echo.in",
    dlq_topic: None,
    batch_size: config::DEFAULT_BATCH_SIZE,
    batch_linger_ms: config::DEFAULT_BATCH_LINGER_MS,
    cache: Some(CacheDefaults {
        urls: cinerec_service_kit::defaults::DEFAULT_REDIS_URL,
        namespace: "stream-echo",
        in_flight_ttl_ms: 30_000,
        done_ttl_secs: 86_400,
    }),
};

/// Copies `<event id>|<body>` records to a sink topic, at least once and deduplicated.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    cache: CacheArgs,
    /// Where the copies go.
    #[arg(
        long,
        env = "STREAM_ECHO_SINK_TOPIC",
        default_value = "stream-echo.out"
    )]
    sink_topic: String,
}

struct Echo {
    producer: FutureProducer,
    sink: String,
}

impl Operator for Echo {
    type Event = String;
    const NAME: &'static str = "stream-echo";

    fn decode(&self, record: &OwnedMessage) -> Result<Decoded<String>, String> {
        let text = std::str::from_utf8(record.payload().unwrap_or_default())
            .map_err(|e| format!("not UTF-8: {e}"))?;
        let (key, _) = text
            .split_once('|')
            .ok_or_else(|| "no `|` in the payload".to_owned())?;
        Ok(Decoded {
            key: key.to_owned(),
            event: text.to_owned(),
        })
    }

    async fn process(
        &self,
        batch: Vec<Claimed<String>>,
        _shutdown: &Shutdown,
    ) -> Result<Vec<Outcome>, cinerec_stream::Abandoned> {
        let sends = batch.iter().map(|c| {
            let record = FutureRecord::to(&self.sink).key(&c.key).payload(&c.event);
            self.producer
                .send(record, std::time::Duration::from_secs(30))
        });
        Ok(await_in_order(sends).await)
    }
}

/// Awaits every send, in order (the producer pipelines them meanwhile).
async fn await_in_order<F>(sends: impl Iterator<Item = F>) -> Vec<Outcome>
where
    F: std::future::Future<
            Output = Result<
                rdkafka::producer::future_producer::Delivery,
                (rdkafka::error::KafkaError, OwnedMessage),
            >,
        >,
{
    let pending: Vec<F> = sends.collect();
    let mut outcomes = Vec::with_capacity(pending.len());
    for send in pending {
        outcomes.push(match send.await {
            Ok(_) => Outcome::Done,
            Err((e, _)) => Outcome::Dead {
                error: format!("producing the copy: {e}"),
                attempts: 1,
            },
        });
    }
    outcomes
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = config::parse(&DEFAULTS);
    telemetry::init("stream-echo", &args.common.log, args.common.log_format)?;
    let shutdown = shutdown::on_signals()?;
    kit::ensure_topics(&args.kafka.brokers, &[(&args.sink_topic, 1)]).await?;
    let echo = Echo {
        producer: kit::idempotent_producer(&args.kafka.brokers, &[])?,
        sink: args.sink_topic,
    };
    let runtime = Runtime::new(
        Config {
            kafka: args.kafka,
            cache: Some(args.cache),
        },
        echo,
    )
    .await?;
    // /healthz, /readyz, /metrics (the runtime's counters) beside the loop.
    let admin_addr = args
        .common
        .admin_addr_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let admin = AdminServer::bind(admin_addr, Readiness::new()).await?;
    tracing::info!(admin = %admin.local_addr()?, "stream-echo starting");
    let admin = admin.serve(shutdown.clone());
    let outcome = runtime.run(shutdown.clone()).await;
    shutdown.trigger();
    let _ = admin.await;
    telemetry::shutdown();
    Ok(outcome?)
}
