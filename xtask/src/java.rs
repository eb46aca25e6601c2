//! Finding a Java 17 runtime. Both servers run on it: Kafka 4.x brokers need Java 17 or newer
//! and Cassandra 5.0 supports only Java 11 and 17 (it dies on newer ones). Machines may also
//! carry a newer JDK first on PATH, so when `JAVA_HOME` is unset we look for a 17 ourselves
//! instead of failing on whatever `java` happens to be.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Context, Result, bail};

/// The Java major version both servers are started with.
const REQUIRED_MAJOR: u32 = 17;

/// A `java` executable and the JDK home it belongs to (Maven is pointed at the same one).
pub struct Java {
    pub bin: PathBuf,
    pub home: Option<PathBuf>,
}

/// `$JAVA_HOME/bin/java` when `JAVA_HOME` is set (and then it must be 17), else `java` on PATH
/// when that is 17, else the first JDK 17 under /usr/lib/jvm.
pub fn find() -> Result<Java> {
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        let home = PathBuf::from(home);
        let bin = home.join("bin/java");
        let major = major_version(&bin)
            .with_context(|| format!("JAVA_HOME={} does not hold a usable java", home.display()))?;
        if major != REQUIRED_MAJOR {
            bail!(
                "JAVA_HOME={} is Java {major}, but Kafka 4 and Cassandra 5.0 are run on Java \
                 {REQUIRED_MAJOR} here: point JAVA_HOME at a JDK 17 \
                 (e.g. /usr/lib/jvm/java-17-openjdk-amd64) or unset it",
                home.display()
            );
        }
        return Ok(Java {
            bin,
            home: Some(home),
        });
    }
    if let Ok(major) = major_version(Path::new("java"))
        && major == REQUIRED_MAJOR
    {
        return Ok(Java {
            bin: PathBuf::from("java"),
            home: None,
        });
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/jvm") {
        let mut homes: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        homes.sort();
        for home in homes {
            let bin = home.join("bin/java");
            if bin.is_file() && major_version(&bin).ok() == Some(REQUIRED_MAJOR) {
                return Ok(Java {
                    bin,
                    home: Some(home),
                });
            }
        }
    }
    bail!(
        "no Java {REQUIRED_MAJOR} found (JAVA_HOME unset, `java` on PATH is not 17, nothing in \
         /usr/lib/jvm): install one (Debian: apt-get install openjdk-17-jdk-headless) or set \
         JAVA_HOME"
    )
}

/// Runs `<bin> -version` and reads the major version from `version "17.0.15"` (or `"1.8.0"`).
fn major_version(bin: &Path) -> Result<u32> {
    let out = Command::new(bin)
        .arg("-version")
        .output()
        .with_context(|| format!("running {} -version", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    parse_major(&text)
        .with_context(|| format!("reading the version printed by {} -version", bin.display()))
}

fn parse_major(version_output: &str) -> std::result::Result<u32, String> {
    let quoted = version_output
        .split('"')
        .nth(1)
        .ok_or_else(|| format!("unexpected output {version_output:?}"))?;
    let mut parts = quoted.split(['.', '-', '+', '_']);
    let first: u32 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("unexpected version {quoted:?}"))?;
    if first == 1 {
        // Java 8 and older: "1.8.0_392".
        return parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("unexpected version {quoted:?}"));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn reads_major_versions() {
        let jdk17 = "openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime Environment";
        assert_eq!(parse_major(jdk17), Ok(17));
        assert_eq!(parse_major("openjdk version \"25\" 2025-09-16"), Ok(25));
        assert_eq!(parse_major("java version \"1.8.0_392\""), Ok(8));
        assert!(parse_major("garbage").is_err());
    }
}
