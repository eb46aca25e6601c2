//! `auditflow migrate`: create or upgrade the CQL schema (idempotent; the sink also runs it on
//! start). Prints what it applied, which table options it aligned with `[retention]`, and the
//! latest expiry the server can store (the 2038 limit, if it has one).

use std::process::ExitCode;

use auditflow_core::Config;
use auditflow_store::Store;

pub fn run(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = super::runtime()?;
    let report = runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        store.migrate().await
    })?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let applied = if report.applied.is_empty() {
        "already current".to_owned()
    } else {
        let versions: Vec<String> = report.applied.iter().map(i32::to_string).collect();
        format!("applied {}", versions.join(", "))
    };
    println!(
        "keyspace {}: schema version {} ({applied})",
        report.keyspace, report.current_version
    );
    for table in &report.altered {
        println!("  {table}: TTL and compaction window aligned with [retention]");
    }
    match &report.expiry_limit {
        Some(limit) => {
            println!("  server expiry limit: {limit} (records expiring later are refused)")
        }
        None => println!("  server expiry limit: none before 2106"),
    }
    Ok(ExitCode::SUCCESS)
}
