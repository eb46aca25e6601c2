//! Apache Kafka 4.x as one KRaft node (broker and controller in one JVM) on 127.0.0.1:9092,
//! controller on 9093. Config comes from `deploy/stack/kafka/` (server.properties,
//! log4j2.yaml); the storage is formatted once with Kafka's own StorageTool, as the release's
//! `kafka-storage.sh format` would.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Context, Result, bail};
use crate::server::{Prepare, Server};
use crate::{probe, process};

pub struct Kafka;

impl Server for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn title(&self) -> &'static str {
        "Kafka"
    }

    fn artifact(&self) -> &'static str {
        "kafka_2.13"
    }

    fn addr(&self) -> &'static str {
        "127.0.0.1:9092"
    }

    fn ready_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn prepare(&self, ctx: &Prepare<'_>, cmd: &mut Command) -> Result<()> {
        let data = ctx.dir.join("data");
        fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let props = ctx.dir.join("server.properties");
        let text = ctx
            .layout
            .read_template(self.name(), "server.properties")?
            .replace("@DATA_DIR@", &data.display().to_string());
        fs::write(&props, text).with_context(|| format!("writing {}", props.display()))?;
        let log4j = ctx.dir.join("log4j2.yaml");
        fs::write(
            &log4j,
            ctx.layout.read_template(self.name(), "log4j2.yaml")?,
        )
        .with_context(|| format!("writing {}", log4j.display()))?;

        if !data.join("meta.properties").exists() {
            format_storage(ctx, &props, &log4j)?;
        }

        // The JVM options of Kafka's kafka-server-start.sh / kafka-run-class.sh, small heap.
        cmd.args([
            "-Xms512m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
        ])
        .args([
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
        ])
        .arg("-Djava.awt.headless=true")
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .arg("-cp")
        .arg(ctx.jars.join("*"))
        .arg("kafka.Kafka")
        .arg(&props);
        Ok(())
    }

    fn probe(&self) -> Result<String> {
        probe::kafka(self.addr())
    }
}

/// `kafka-storage.sh format -t <new cluster id> -c server.properties` (static voters, so no
/// `--standalone`).
fn format_storage(ctx: &Prepare<'_>, props: &Path, log4j: &Path) -> Result<()> {
    println!("formatting Kafka storage (first run only) …");
    let log = ctx.layout.log_file("kafka-format");
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("opening the format log")?;
    let mut child = Command::new(&ctx.java.bin)
        .current_dir(&ctx.dir)
        .args(["-Xmx256m", "-XX:+UseSerialGC"])
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .arg("-cp")
        .arg(ctx.jars.join("*"))
        .args([
            "kafka.tools.StorageTool",
            "format",
            "-t",
            &cluster_id()?,
            "-c",
        ])
        .arg(props)
        .arg("--ignore-formatted")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context("starting Kafka's StorageTool")?;
    if !process::wait_with_progress(&mut child, "formatting Kafka storage")? {
        bail!(
            "formatting Kafka storage failed; last lines of {}:\n{}",
            ctx.layout.shown(&log),
            process::tail(&log, 20)
        );
    }
    Ok(())
}

/// A fresh cluster id in Kafka's `Uuid` text form: 16 random bytes, URL-safe base64 without
/// padding (what `kafka-storage.sh random-uuid` prints), never starting with `-`.
fn cluster_id() -> Result<String> {
    let mut bytes = [0_u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    // A top bit of 0 keeps the first character in A..f, so the id never reads as an option.
    bytes[0] &= 0x7f;
    Ok(base64_url(&bytes))
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_url_matches_the_rfc_4648_vectors_unpadded() {
        assert_eq!(base64_url(b"f"), "Zg");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn cluster_ids_look_like_kafka_uuids() {
        let id = cluster_id().unwrap();
        assert_eq!(id.len(), 22);
        assert!(!id.starts_with('-'));
    }
}
