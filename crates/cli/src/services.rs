//! The services, each described once — its name, what it consumes, its consumer group, how it
//! starts, whether `run all` starts it — in one list, [`SERVICES`], in pipeline order.
//! `auditflow run <service>` accepts exactly these names (and `all`), `run all` starts the
//! four of the pipeline and the opt-in ones the configuration enables ([`in_run_all`]), and
//! `auditflow demo` probes those groups: a service's name or group is spelled nowhere else.

use std::future::Future;
use std::pin::Pin;

use auditflow_core::Config;
use auditflow_runtime::ServiceContext;
use auditflow_runtime::kafka::client;
use clap::builder::{PossibleValuesParser, TypedValueParser};

/// A running service: resolves when it stops (after `shutdown`, or on its own failure).
pub type Running<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// One service of the pipeline.
pub struct Service {
    /// Its name: the `run` argument, the metric label, the `auditflow.service` header, the
    /// suffix of its consumer group id.
    pub name: &'static str,
    /// The topics it consumes (names, or regular expressions starting with `^`), as configured.
    pub inputs: fn(&Config) -> Vec<String>,
    /// Starts it on the process's registry, health and shutdown signal.
    pub start: for<'a> fn(ServiceContext<'a>) -> Running<'a>,
    /// Whether `run all` starts it under a configuration: always for the pipeline's four;
    /// the OCSF exporter when `[ocsf] enabled` (it sends personal data out of reach of
    /// `gdpr delete`, so it is never on by default).
    pub in_run_all: fn(&Config) -> bool,
}

impl Service {
    /// Its consumer group: `[kafka] group_prefix` + its name.
    pub fn group(&self, config: &Config) -> String {
        client::group_id(&config.kafka, self.name)
    }
}

/// A service crate's entry: every service crate offers the same three things, its `SERVICE`
/// name, its `input_topics(&Config)` and its `run(ServiceContext)`.
macro_rules! service {
    ($krate:ident, $in_run_all:expr) => {
        Service {
            name: $krate::SERVICE,
            inputs: $krate::input_topics,
            start: |cx| Box::pin(async move { Ok($krate::run(cx).await?) }),
            in_run_all: $in_run_all,
        }
    };
}

/// Every service, in pipeline order, the opt-in ones last.
pub static SERVICES: [Service; 5] = [
    service!(auditflow_classifier, |_| true),
    service!(auditflow_security_monitor, |_| true),
    service!(auditflow_sink, |_| true),
    service!(auditflow_causality_indexer, |_| true),
    service!(auditflow_ocsf_exporter, |config| config.ocsf.enabled),
];

/// The services `run all` starts under `config`, in pipeline order.
pub fn in_run_all(config: &Config) -> impl Iterator<Item = &'static Service> + '_ {
    SERVICES.iter().filter(move |s| (s.in_run_all)(config))
}

/// What `auditflow run` is asked to run.
#[derive(Clone, Copy)]
pub enum Target {
    /// One service.
    One(&'static Service),
    /// Every service [`in_run_all`] names, in this one process.
    All,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::One(service) => f.write_str(service.name),
            Target::All => f.write_str("all"),
        }
    }
}

/// The `run` argument: a service's name or `all` (clap lists them in `--help` and refuses
/// anything else with exit code 2).
pub fn target_parser() -> impl TypedValueParser<Value = Target> {
    PossibleValuesParser::new(SERVICES.iter().map(|s| s.name).chain(["all"])).map(|name| {
        SERVICES
            .iter()
            .find(|s| s.name == name)
            .map_or(Target::All, Target::One)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_the_four_services_under_their_documented_names_and_groups() {
        let config = Config::default();
        let described: Vec<(&str, String)> = SERVICES
            .iter()
            .map(|s| (s.name, s.group(&config)))
            .collect();
        assert_eq!(
            described,
            [
                ("classifier", "auditflow-classifier".to_owned()),
                ("security-monitor", "auditflow-security-monitor".to_owned()),
                ("sink", "auditflow-sink".to_owned()),
                (
                    "causality-indexer",
                    "auditflow-causality-indexer".to_owned()
                ),
                ("ocsf-exporter", "auditflow-ocsf-exporter".to_owned()),
            ]
        );
        let names = |c: &Config| in_run_all(c).map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(&config).len(), 4, "the exporter is opt-in");
        let mut enabled = config.clone();
        enabled.ocsf.enabled = true;
        assert_eq!(names(&enabled).last(), Some(&"ocsf-exporter"));
        for service in &SERVICES {
            assert!(!(service.inputs)(&config).is_empty(), "{}", service.name);
        }
    }
}
