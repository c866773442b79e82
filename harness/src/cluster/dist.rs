//! The Kafka/ZooKeeper distribution: a directory with `libs/*.jar`.
//!
//! `KAFKA_HOME` (an Apache Kafka install) wins when set. Otherwise the harness assembles
//! one from Maven Central with the pom kept in `docker/kafka-dist.pom.xml`
//! (`mvn dependency:copy-dependencies`), cached per version under the user's cache
//! directory, so a fresh machine needs only a JDK, Maven and a Maven repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::HarnessError;

/// The pom that turns into a distribution; embedded so the binary works from anywhere.
const DIST_POM: &str = include_str!("../../../docker/kafka-dist.pom.xml");

/// A usable distribution.
#[derive(Debug, Clone)]
pub struct Distribution {
    /// Directory holding `libs/`.
    pub home: PathBuf,
    /// Kafka version it holds.
    pub version: String,
}

impl Distribution {
    /// The `-cp` value for `java`.
    pub fn classpath(&self) -> String {
        format!("{}/libs/*", self.home.display())
    }
}

/// Where cached distributions live: `$KMH_CACHE_DIR`, else `$XDG_CACHE_HOME/kafka-migration-harness`,
/// else `~/.cache/kafka-migration-harness`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KMH_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("kafka-migration-harness")
}

fn has_kafka_jars(home: &Path) -> bool {
    std::fs::read_dir(home.join("libs"))
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
        })
        .unwrap_or(false)
}

/// Checks that `java` runs; the harness needs it for every node.
pub fn require_java() -> Result<(), HarnessError> {
    match Command::new("java").arg("-version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(HarnessError::Missing {
            what: "no working `java` on PATH (Kafka and ZooKeeper nodes are JVMs)".into(),
            hint: "install a JDK 17, e.g. `apt-get install openjdk-17-jre-headless`".into(),
        }),
    }
}

/// Finds the distribution for `version`, fetching it with Maven on first use.
pub fn locate(version: &str) -> Result<Distribution, HarnessError> {
    if let Some(home) = std::env::var_os("KAFKA_HOME") {
        let home = PathBuf::from(home);
        if !has_kafka_jars(&home) {
            return Err(HarnessError::Missing {
                what: format!("KAFKA_HOME={} has no libs/kafka_2.13-*.jar", home.display()),
                hint: "point KAFKA_HOME at an Apache Kafka install, or unset it to let the harness fetch one".into(),
            });
        }
        return Ok(Distribution {
            home,
            version: version.to_string(),
        });
    }
    let home = cache_dir().join(format!("kafka-{version}"));
    if home.join(".complete").exists() && has_kafka_jars(&home) {
        return Ok(Distribution {
            home,
            version: version.to_string(),
        });
    }
    fetch(version)
}

/// Assembles the distribution for `version` with Maven (always, replacing a cached one).
pub fn fetch(version: &str) -> Result<Distribution, HarnessError> {
    require_java()?;
    if !Command::new("mvn")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
    {
        return Err(HarnessError::Missing {
            what: "no `mvn` on PATH: the Kafka distribution is assembled from Maven Central".into(),
            hint: "install Maven (`apt-get install maven`), or set KAFKA_HOME to an Apache Kafka install".into(),
        });
    }
    let root = cache_dir();
    std::fs::create_dir_all(&root)?;
    let home = root.join(format!("kafka-{version}"));
    let staging = root.join(format!(".kafka-{version}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(staging.join("libs"))?;
    let pom = staging.join("pom.xml");
    std::fs::write(&pom, DIST_POM)?;
    eprintln!(
        "harness: fetching Kafka {version} and ZooKeeper from Maven into {} (first use only)…",
        home.display()
    );
    let out = Command::new("mvn")
        .args(["-q", "-B", "-f"])
        .arg(&pom)
        .arg(format!("-Dkafka.version={version}"))
        .arg("dependency:copy-dependencies")
        .arg("-DincludeScope=runtime")
        .arg(format!(
            "-DoutputDirectory={}",
            staging.join("libs").display()
        ))
        .output()
        .map_err(|e| HarnessError::Missing {
            what: format!("running mvn: {e}"),
            hint: "check the Maven install".into(),
        })?;
    if !out.status.success() || !has_kafka_jars(&staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(HarnessError::Missing {
            what: format!(
                "Maven could not assemble Kafka {version}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            hint: "check access to a Maven repository (~/.m2/settings.xml for a mirror), or set KAFKA_HOME".into(),
        });
    }
    std::fs::write(staging.join(".complete"), version)?;
    let _ = std::fs::remove_dir_all(&home);
    std::fs::rename(&staging, &home)?;
    eprintln!("harness: Kafka {version} ready in {}", home.display());
    Ok(Distribution {
        home,
        version: version.to_string(),
    })
}
