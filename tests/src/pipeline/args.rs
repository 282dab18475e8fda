//! The command lines of the run's processes: each service's `serve`
//! flags (its listeners, topics, keyspace, schema, cache namespace from the
//! run's names and addresses), the one-shot `migrate` and `seed` commands,
//! and the recommender's `run`.

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use super::{JWT_AUDIENCE, JWT_ISSUER, PARTITIONS, Pipeline, Service};

impl Pipeline {
    /// The arguments of `binary` of this workspace, with the run's
    /// environment (extra env and `OTEL_SERVICE_NAME`), stderr into a new log
    /// file. Returns the command and the log path.
    pub(super) fn command(
        &mut self,
        binary: &str,
        label: &str,
        args: &[String],
    ) -> anyhow::Result<(Command, PathBuf)> {
        let n = self.logs.iter().filter(|(l, _)| l == label).count();
        let log = self.log_dir.join(format!("{label}.{n}.log"));
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(self.bin_dir.join(binary));
        cmd.args(args)
            .env("CINEREC_LOG", &self.config.log)
            .env("CINEREC_LOG_FORMAT", "text")
            // Logs go to files: no terminal colours in them.
            .env("NO_COLOR", "1")
            .env("OTEL_SERVICE_NAME", binary)
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        self.logs.push((label.to_owned(), log.clone()));
        Ok((cmd, log))
    }

    /// Starts a set-up command (`seed`, `migrate`) of `service`'s binary.
    pub(super) fn one_shot(
        &mut self,
        service: Service,
        args: Vec<String>,
    ) -> anyhow::Result<(String, Child, PathBuf)> {
        let label = format!("{}-setup", service.name());
        let (mut cmd, log) = self.command(service.name(), &label, &args)?;
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} {args:?}", service.name()))?;
        Ok((format!("{} {}", service.name(), args.join(" ")), child, log))
    }

    pub(super) fn seed_args(&self, service: Service) -> Vec<String> {
        let (schema, count_flag, count) = match service {
            Service::MovieSvc => (&self.names.movie_schema, "--movies", self.config.movies),
            _ => (&self.names.user_schema, "--users", self.config.users),
        };
        strings([
            "--database-url",
            &self.stack.database_url,
            "--db-schema",
            schema,
            "seed",
            count_flag,
            &count.to_string(),
            "--seed",
            &self.config.world_seed.to_string(),
        ])
    }

    pub(super) fn review_common_args(&self) -> Vec<String> {
        strings([
            "--cql-nodes",
            &self.stack.cql_nodes.join(","),
            "--keyspace",
            &self.names.review_keyspace,
        ])
    }

    pub(super) fn kafka_args(&self) -> Vec<String> {
        strings([
            "--kafka-brokers",
            &self.stack.kafka_brokers,
            "--changes-topic",
            &self.names.changes_topic,
            "--topic-partitions",
            &PARTITIONS.to_string(),
        ])
    }

    pub(super) fn migrate_args(&self) -> Vec<String> {
        let mut a = self.review_common_args();
        a.push("migrate".into());
        a.extend(self.kafka_args());
        a
    }

    pub(super) fn cache_urls(&self) -> String {
        match &self.config.cache_urls {
            Some(urls) => urls.join(","),
            None => self.stack.memcached_urls.join(","),
        }
    }

    /// The arguments that start `service` (the same every time).
    pub(super) fn serve_args(&self, service: Service) -> Vec<String> {
        let a = self.addrs[&service];
        let addr = |x: Option<SocketAddr>| x.map(|x| x.to_string()).unwrap_or_default();
        let admin = a.admin.to_string();
        let mut args = match service {
            Service::MovieSvc | Service::UserSvc => {
                let schema = if service == Service::MovieSvc {
                    &self.names.movie_schema
                } else {
                    &self.names.user_schema
                };
                strings([
                    "--admin-addr",
                    &admin,
                    "--database-url",
                    &self.stack.database_url,
                    "--db-schema",
                    schema,
                    "serve",
                    "--rpc-addr",
                    &addr(a.rpc),
                    "--rpc-http-addr",
                    &addr(a.rpc_http),
                ])
            }
            Service::ReviewSvc => {
                let mut v = strings(["--admin-addr", &admin]);
                v.extend(self.review_common_args());
                v.extend(strings([
                    "serve",
                    "--listen",
                    &addr(a.api),
                    "--rpc-addr",
                    &addr(a.rpc),
                    "--rpc-http-addr",
                    &addr(a.rpc_http),
                    "--jwt-issuer",
                    JWT_ISSUER,
                    "--jwt-audience",
                    JWT_AUDIENCE,
                    "--jwt-hs256-secret",
                    &self.names.jwt_secret,
                    "--directory",
                    "rpc",
                    "--user-svc-addr",
                    &addr(self.addrs[&Service::UserSvc].rpc),
                    "--movie-svc-addr",
                    &addr(self.addrs[&Service::MovieSvc].rpc),
                ]));
                v.extend(self.kafka_args());
                v
            }
            Service::Enricher => strings([
                "--admin-addr",
                &admin,
                "--brokers",
                &self.stack.kafka_brokers,
                "--group",
                &self.names.enricher_group,
                "--source-topic",
                &self.names.changes_topic,
                "--sink-topic",
                &self.names.enriched_topic,
                "--topic-partitions",
                &PARTITIONS.to_string(),
                "--cache-urls",
                &self.cache_urls(),
                "--cache-namespace",
                &self.names.enricher_cache_namespace,
                "--review-rpc",
                &addr(self.addrs[&Service::ReviewSvc].rpc),
                "--movie-rpc",
                &addr(self.addrs[&Service::MovieSvc].rpc),
                "--user-rpc",
                &addr(self.addrs[&Service::UserSvc].rpc),
            ]),
            Service::Recommender => recommender_args(self, &admin),
        };
        if let Some(extra) = self.config.extra_args.get(&service) {
            args.extend(extra.iter().cloned());
        }
        args
    }
}

/// The recommender's `run` arguments (every flag belongs to `run`).
pub(super) fn recommender_args(p: &Pipeline, admin: &str) -> Vec<String> {
    strings([
        "run",
        "--admin-addr",
        admin,
        "--cql-nodes",
        &p.stack.cql_nodes.join(","),
        "--keyspace",
        &p.names.recommender_keyspace,
        "--brokers",
        &p.stack.kafka_brokers,
        "--group",
        &p.names.recommender_group,
        "--source-topic",
        &p.names.enriched_topic,
        "--cache-urls",
        &p.cache_urls(),
        "--cache-namespace",
        &p.names.recommender_cache_namespace,
    ])
}

pub(super) fn strings<const N: usize>(a: [&str; N]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}
