//! `auditflow topics create`: every topic auditflow writes (docs/topics-and-records.md),
//! idempotently.

use std::process::ExitCode;

use auditflow_core::Config;
use auditflow_runtime::kafka::topics::{TopicStatus, ensure_topics, planned_topics};

use crate::cli::TopicsCommand;

pub fn run(command: TopicsCommand, config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    match command {
        TopicsCommand::Create => create(config, json),
    }
}

fn create(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let plan = planned_topics(&config.topics);
    let runtime = super::runtime()?;
    let results = runtime.block_on(ensure_topics(&config.kafka, &plan))?;
    if json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(topic, status)| {
                serde_json::json!({ "topic": topic, "created": *status == TopicStatus::Created })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let width = results
            .iter()
            .map(|(t, _)| t.len())
            .max()
            .unwrap_or(5)
            .max(5);
        println!("{:width$}  STATUS", "TOPIC");
        for (topic, status) in &results {
            let status = match status {
                TopicStatus::Created => "created",
                TopicStatus::AlreadyExisted => "exists",
            };
            println!("{topic:width$}  {status}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
