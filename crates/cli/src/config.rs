//! The configuration every command reads: the file named by `--config` (none ⇒ every default)
//! plus `AUDITFLOW_<SECTION>__<KEY>` variables from the process environment, through the
//! core's one loader. This is the only place that does that I/O.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use auditflow_core::Config;

/// A configuration that cannot be used: bad usage, so exit code 2 with a one-line reason.
#[derive(Debug)]
pub struct BadConfig(String);

impl fmt::Display for BadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadConfig {}

impl BadConfig {
    /// Reports on stderr and gives the exit code (2) for `main` to return.
    pub fn exit(&self) -> ExitCode {
        let _ = writeln!(std::io::stderr(), "auditflow: {self}");
        ExitCode::from(2)
    }
}

/// Reads and validates the configuration.
pub fn load(path: Option<&Path>) -> Result<Config, BadConfig> {
    let (origin, text) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| BadConfig(format!("config {}: {e}", path.display())))?;
            (format!("config {}", path.display()), text)
        }
        None => ("config".to_owned(), String::new()),
    };
    // Variables that are not UTF-8 cannot be ours; skip them rather than fail on them.
    let env = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    Config::load(&text, env).map_err(|e| BadConfig(format!("{origin}: {e}")))
}
