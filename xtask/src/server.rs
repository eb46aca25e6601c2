//! What a server of the stack must provide (Kafka and Cassandra each implement [`Server`]),
//! and what it is given to prepare its start ([`Prepare`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::java::Java;
use crate::layout::Layout;

/// One server of the stack: how to start it and how to tell it is ready.
pub trait Server {
    /// Short lowercase name used in paths and on the command line (`kafka`).
    fn name(&self) -> &'static str;
    /// Name for people (`Kafka`).
    fn title(&self) -> &'static str;
    /// The artifactId in its POM whose version names the release.
    fn artifact(&self) -> &'static str;
    /// The address clients use.
    fn addr(&self) -> &'static str;
    /// How long a (first) start may take before we give up waiting.
    fn ready_timeout(&self) -> Duration;
    /// Writes the server's config files and completes `cmd` (a `java` command that already
    /// carries the stack marker) with its JVM options, class path and main class.
    fn prepare(&self, ctx: &Prepare<'_>, cmd: &mut Command) -> Result<()>;
    /// Asks the server a real question; `Ok` describes the answer.
    fn probe(&self) -> Result<String>;
}

/// What [`Server::prepare`] gets to work with.
pub struct Prepare<'a> {
    pub layout: &'a Layout,
    pub java: &'a Java,
    /// Folder of the server's jars.
    pub jars: &'a Path,
    /// The server's own folder under the stack dir (configs, `data/`).
    pub dir: PathBuf,
}
