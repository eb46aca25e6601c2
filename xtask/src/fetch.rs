//! Getting a server's jars: Maven resolves the runtime closure of the small POM in
//! `deploy/stack/<server>/pom.xml` and copies it into `.stack/<server>/jars`. That happens on
//! the first run only (minutes); later runs use the copy and need no network. A copy of the
//! POM kept beside the jars says which POM they came from, so editing a version in the POM
//! fetches again, and a fetch interrupted half-way never passes for a complete one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Context, Result, bail};
use crate::java::Java;
use crate::layout::Layout;
use crate::process;
use crate::server::Server;

/// Pinned: Maven 3.8's default dependency plugin predates `copy-dependencies` as used here.
const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1";

/// The jar directory of `server`, fetching it first when missing or stale.
pub fn ensure_jars(layout: &Layout, server: &dyn Server, java: &Java) -> Result<PathBuf> {
    let pom_path = layout.template(server.name(), "pom.xml");
    let pom = layout.read_template(server.name(), "pom.xml")?;
    let jars = layout.service_dir(server.name()).join("jars");
    let stamp = jars.join("pom.xml");
    if fs::read_to_string(&stamp).is_ok_and(|fetched| fetched == pom) {
        return Ok(jars);
    }

    let version = pom_version(&pom, server.artifact()).unwrap_or("?");
    println!(
        "fetching {} {version} jars with Maven (first run only, about a minute) …",
        server.title()
    );
    let partial = jars.with_extension("partial");
    if partial.exists() {
        fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    let log = layout.log_file(&format!("fetch-{}", server.name()));
    let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("opening the fetch log")?;

    let mut mvn = Command::new("mvn");
    mvn.args(["-B", "--no-transfer-progress", "-f"])
        .arg(&pom_path)
        .arg(format!("{DEPENDENCY_PLUGIN}:copy-dependencies"))
        .arg("-DincludeScope=runtime")
        .arg(format!("-DoutputDirectory={}", partial.display()))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(home) = &java.home {
        mvn.env("JAVA_HOME", home);
    }
    let mut child = match mvn.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "Maven (`mvn`) is needed once, to fetch the {} jars, and is not on PATH: install \
             it (Debian: apt-get install maven) and run again",
            server.title()
        ),
        Err(e) => bail!("starting mvn: {e}"),
    };
    let doing = format!("fetching {} jars", server.title());
    if !process::wait_with_progress(&mut child, &doing)? {
        bail!(
            "Maven could not fetch the {} jars (full output: {}):\n{}",
            server.title(),
            log.display(),
            process::tail(&log, 20)
        );
    }

    fs::write(partial.join("pom.xml"), &pom).context("recording the fetched POM")?;
    if jars.exists() {
        fs::remove_dir_all(&jars).with_context(|| format!("removing {}", jars.display()))?;
    }
    fs::rename(&partial, &jars).with_context(|| format!("creating {}", jars.display()))?;
    Ok(jars)
}

/// The `<version>` that follows `<artifactId>{artifact}</artifactId>` in a POM.
pub fn pom_version<'a>(pom: &'a str, artifact: &str) -> Option<&'a str> {
    let after = &pom[pom.find(&format!("<artifactId>{artifact}</artifactId>"))?..];
    let start = after.find("<version>")? + "<version>".len();
    let len = after[start..].find("</version>")?;
    Some(after[start..start + len].trim())
}

/// The one jar in `jars` whose file name starts with `prefix` (e.g. the jamm agent).
pub fn find_jar(jars: &Path, prefix: &str) -> Result<PathBuf> {
    let entries = fs::read_dir(jars).with_context(|| format!("listing {}", jars.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(".jar") {
            return Ok(entry.path());
        }
    }
    bail!(
        "no {prefix}*.jar in {}: delete that folder and run again to fetch afresh",
        jars.display()
    )
}

#[cfg(test)]
mod tests {
    use super::pom_version;

    #[test]
    fn finds_the_version_of_the_named_artifact() {
        let pom = "<artifactId>me</artifactId><version>1</version>\
                   <dependency><artifactId>kafka_2.13</artifactId>\n  <version> 4.1.2 </version>";
        assert_eq!(pom_version(pom, "kafka_2.13"), Some("4.1.2"));
        assert_eq!(pom_version(pom, "cassandra-all"), None);
    }
}
