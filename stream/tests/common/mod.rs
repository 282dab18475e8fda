//! Shared set-up of the runtime's real-stack tests: a fresh source topic,
//! consumer group and cache namespace per test on the local stack's Kafka
//! and Redis, and [`Recorder`], a tiny operator that records its effects.
//!
//! Payloads are `<event id>|<body>`; anything else is undecodable. The body
//! steers the recorder: `fail` → [`Outcome::Dead`] (attempts 3), `skip` →
//! [`Outcome::Skipped`], `wait` → is recorded as started, waits for shutdown and abandons; anything
//! else is recorded and done.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::bail;
use cinerec_service_kit::{Shutdown, telemetry};
use cinerec_stream::config::{CacheArgs, KafkaArgs};
use cinerec_stream::{
    Abandoned, Claimed, Config, Decoded, Handle, Operator, Outcome, Runtime, StatsSnapshot,
};
use cinerec_tests::{POLL_DEADLINE, Stack, unique_name, unreachable};
use rdkafka::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Partitions of the source topic.
pub const PARTITIONS: i32 = 3;

/// One effect of the recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    pub key: String,
    pub body: String,
    pub partition: i32,
    pub offset: i64,
}

/// The recorder's effects, shared with the test.
#[derive(Debug, Clone, Default)]
pub struct Effects(Arc<Mutex<Vec<Effect>>>);

impl Effects {
    pub fn lock(&self) -> MutexGuard<'_, Vec<Effect>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many effects `key` had.
    pub fn count(&self, key: &str) -> usize {
        self.lock().iter().filter(|e| e.key == key).count()
    }
}

/// The partitions a recorder holds, as its rebalance hooks saw them.
#[derive(Debug, Clone, Default)]
pub struct Assigned(Arc<Mutex<BTreeSet<i32>>>);

impl Assigned {
    pub fn now(&self) -> BTreeSet<i32> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The test operator.
#[derive(Debug)]
pub struct Recorder {
    pub effects: Effects,
    pub assigned: Assigned,
}

impl Operator for Recorder {
    type Event = String;
    const NAME: &'static str = "stream-test";

    fn decode(&self, record: &OwnedMessage) -> Result<Decoded<String>, String> {
        let text = std::str::from_utf8(record.payload().unwrap_or_default())
            .map_err(|e| format!("not UTF-8: {e}"))?;
        let (key, body) = text
            .split_once('|')
            .ok_or_else(|| format!("undecodable: no `|` in {text:?}"))?;
        Ok(Decoded {
            key: key.to_owned(),
            event: body.to_owned(),
        })
    }

    fn on_assign(&self, partitions: &[i32]) {
        let mut held = self.assigned.0.lock().unwrap_or_else(|e| e.into_inner());
        held.extend(partitions);
    }

    fn on_revoke(&self, partitions: &[i32]) {
        let mut held = self.assigned.0.lock().unwrap_or_else(|e| e.into_inner());
        for p in partitions {
            held.remove(p);
        }
    }

    async fn process(
        &self,
        batch: Vec<Claimed<String>>,
        shutdown: &Shutdown,
    ) -> Result<Vec<Outcome>, Abandoned> {
        if let Some(c) = batch.iter().find(|c| c.event == "wait") {
            // Recorded as started, then interrupted.
            self.effects.lock().push(Effect {
                key: c.key.clone(),
                body: c.event.clone(),
                partition: c.partition,
                offset: c.offset,
            });
            shutdown.wait().await;
            return Err(Abandoned);
        }
        Ok(batch
            .into_iter()
            .map(|c| match c.event.as_str() {
                "fail" => Outcome::Dead {
                    error: "asked to fail".into(),
                    attempts: 3,
                },
                "skip" => Outcome::Skipped("asked"),
                _ => {
                    self.effects.lock().push(Effect {
                        key: c.key,
                        body: c.event,
                        partition: c.partition,
                        offset: c.offset,
                    });
                    Outcome::Done
                }
            })
            .collect())
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: HashMap<String, String>,
}

impl Received {
    fn from(m: &OwnedMessage) -> Received {
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_owned(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        Received {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.payload.as_deref().unwrap_or_default()).into_owned()
    }
}

/// A running runtime of the recorder.
pub struct Running {
    pub shutdown: Shutdown,
    pub handle: Handle,
    pub effects: Effects,
    pub assigned: Assigned,
    pub task: tokio::task::JoinHandle<Result<(), cinerec_stream::Error>>,
}

impl Running {
    /// Triggers shutdown and waits for the runtime to return.
    pub async fn stop(self) -> anyhow::Result<StatsSnapshot> {
        self.shutdown.trigger();
        self.task.await??;
        Ok(self.handle.stats())
    }
}

/// One test's world: its topic, group and namespace.
pub struct World {
    pub stack: Stack,
    pub source_topic: String,
    pub dlq_topic: String,
    pub group: String,
    pub namespace: String,
    producer: FutureProducer,
}

impl World {
    /// Creates the source topic.
    pub async fn start(prefix: &str) -> anyhow::Result<World> {
        telemetry::init("stream-test", "warn", telemetry::LogFormat::Text)?;
        let stack = Stack::from_env();
        let name = unique_name(prefix);
        let source_topic = format!("{name}.in");
        create_topic(&stack, &source_topic, PARTITIONS).await?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &stack.kafka_brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(World {
            dlq_topic: format!("{source_topic}.dlq"),
            group: format!("{name}_group"),
            namespace: name.clone(),
            source_topic,
            producer,
            stack,
        })
    }

    /// The Kafka flags of this world (short linger, small batches).
    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs {
            brokers: self.stack.kafka_brokers.clone(),
            group: self.group.clone(),
            source_topic: self.source_topic.clone(),
            dlq_topic: None,
            batch_size: 100,
            batch_linger_ms: 20,
        }
    }

    /// The cache flags of this world: Redis, a short in-flight TTL.
    pub fn cache(&self) -> CacheArgs {
        CacheArgs {
            cache_urls: self.stack.redis_urls[0].clone(),
            cache_namespace: self.namespace.clone(),
            in_flight_ttl_ms: 3_000,
            done_ttl_secs: 600,
        }
    }

    /// A runtime config with the cache.
    pub fn config(&self) -> Config {
        Config {
            kafka: self.kafka(),
            cache: Some(self.cache()),
        }
    }

    /// Starts the recorder on the runtime.
    pub async fn spawn(&self, config: Config) -> anyhow::Result<Running> {
        let (effects, assigned) = (Effects::default(), Assigned::default());
        let runtime = Runtime::new(
            config,
            Recorder {
                effects: effects.clone(),
                assigned: assigned.clone(),
            },
        )
        .await?;
        let handle = runtime.handle();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(runtime.run(shutdown.clone()));
        Ok(Running {
            shutdown,
            handle,
            effects,
            assigned,
            task,
        })
    }

    /// Publishes `payload` with Kafka key `key` (same key, same partition).
    pub async fn publish(&self, key: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.producer
            .send(
                FutureRecord::to(&self.source_topic)
                    .key(key)
                    .payload(payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| unreachable("Kafka", &self.stack.kafka_brokers, e))?;
        Ok(())
    }

    /// Publishes `<id>|<body>` keyed by `id`.
    pub async fn event(&self, id: &str, body: &str) -> anyhow::Result<()> {
        self.publish(id, format!("{id}|{body}").as_bytes()).await
    }

    /// Reads `topic` from its beginning until `done(records so far)` holds.
    pub async fn read_until(
        &self,
        topic: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        let reader: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.stack.kafka_brokers)
            .set("group.id", unique_name("stream_reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()?;
        reader.subscribe(&[topic])?;
        let mut got = Vec::new();
        let deadline = Instant::now() + POLL_DEADLINE;
        while !done(&got) {
            if Instant::now() > deadline {
                bail!(
                    "{topic}: condition not reached within {POLL_DEADLINE:?}; got {} records",
                    got.len()
                );
            }
            match tokio::time::timeout(Duration::from_millis(500), reader.recv()).await {
                Ok(Ok(m)) => got.push(Received::from(&m.detach())),
                Ok(Err(e)) => tracing::debug!(error = %e, "reader"),
                Err(_) => {}
            }
        }
        Ok(got)
    }
}

/// Polls `cond` on the runtime's counters until it holds.
pub async fn wait_stats(
    handle: &Handle,
    what: &str,
    cond: impl Fn(&StatsSnapshot) -> bool,
) -> anyhow::Result<StatsSnapshot> {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let s = handle.stats();
        if cond(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {POLL_DEADLINE:?}: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates `topic` with `partitions`.
pub async fn create_topic(stack: &Stack, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_brokers)
        .create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .map_err(|e| unreachable("Kafka", &stack.kafka_brokers, e))?;
    for r in results {
        r.map_err(|(t, code)| anyhow::anyhow!("creating topic {t}: {code}"))?;
    }
    Ok(())
}
