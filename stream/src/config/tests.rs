//! The shared flags parse into the structs the `const` defaults build, and
//! the old flag names keep working.

use super::*;

const DEFAULTS: Defaults = Defaults {
    env_prefix: "CINEREC_STREAM_CONFIG_TEST",
    group: "test-group",
    source_topic: "test.source",
    dlq_topic: None,
    batch_size: 7,
    batch_linger_ms: 3,
    cache: Some(CacheDefaults {
        urls: "redis://127.0.0.1:1",
        namespace: "test-ns",
        in_flight_ttl_ms: 1_000,
        done_ttl_secs: 60,
    }),
};

#[derive(Debug, clap::Parser)]
struct WithCache {
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Debug, clap::Parser)]
struct KafkaOnly {
    #[command(flatten)]
    kafka: KafkaArgs,
}

#[test]
fn no_flags_give_the_consumers_defaults() {
    let parsed: WithCache = try_parse_from(&DEFAULTS, ["bin"]).expect("defaults parse");
    assert_eq!(parsed.kafka, DEFAULTS.kafka());
    assert_eq!(Some(parsed.cache), DEFAULTS.cache());
    assert_eq!(parsed.kafka.dlq_topic(), "test.source.dlq");
}

#[test]
fn the_shared_flag_names_parse() {
    let parsed: WithCache = try_parse_from(
        &DEFAULTS,
        [
            "bin",
            "--brokers",
            "k:1",
            "--group",
            "g",
            "--source-topic",
            "s",
            "--dlq-topic",
            "d",
            "--batch-size",
            "4",
            "--batch-linger-ms",
            "1",
            "--cache-urls",
            "memcached://m:2",
            "--cache-namespace",
            "n",
            "--in-flight-ttl-ms",
            "9",
            "--done-ttl-secs",
            "8",
        ],
    )
    .expect("flags parse");
    assert_eq!(
        parsed.kafka,
        KafkaArgs {
            brokers: "k:1".into(),
            group: "g".into(),
            source_topic: "s".into(),
            dlq_topic: Some("d".into()),
            batch_size: 4,
            batch_linger_ms: 1,
        }
    );
    assert_eq!(
        parsed.cache,
        CacheArgs {
            cache_urls: "memcached://m:2".into(),
            cache_namespace: "n".into(),
            in_flight_ttl_ms: 9,
            done_ttl_secs: 8,
        }
    );
}

#[test]
fn topic_is_an_alias_of_source_topic() {
    let defaults = Defaults {
        cache: None,
        ..DEFAULTS
    };
    let parsed: KafkaOnly =
        try_parse_from(&defaults, ["bin", "--topic", "t"]).expect("alias parses");
    assert_eq!(parsed.kafka.source_topic, "t");
}

#[test]
fn help_names_the_consumers_env_vars_and_defaults() {
    let help = with_defaults(<WithCache as clap::CommandFactory>::command(), &DEFAULTS)
        .render_long_help()
        .to_string();
    assert!(help.contains("CINEREC_STREAM_CONFIG_TEST_GROUP"), "{help}");
    assert!(help.contains("test-ns"), "{help}");
}

#[test]
fn a_zero_batch_size_is_refused() {
    let parsed = try_parse_from::<WithCache>(&DEFAULTS, ["bin", "--batch-size", "0"]);
    assert!(parsed.is_err());
}
