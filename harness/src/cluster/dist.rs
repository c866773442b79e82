//! The Kafka/ZooKeeper distribution: a directory with `libs/*.jar`.
//!
//! `KAFKA_HOME` (an Apache Kafka install) wins when set. Otherwise the harness assembles
//! one from Maven Central with the pom kept in `docker/kafka-dist.pom.xml` (3.9: ZooKeeper
//! and reload4j) or `docker/kafka4-dist.pom.xml` (4.x: no ZooKeeper, Log4j 2)
//! (`mvn dependency:copy-dependencies`), cached per version under the user's cache
//! directory, so a fresh machine needs only a JDK, Maven and a Maven repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::HarnessError;

/// The poms that turn into a distribution; embedded so the binary works from anywhere.
const DIST_POM: &str = include_str!("../../../docker/kafka-dist.pom.xml");
/// Kafka 4.x's: its logging is Log4j 2, and it has no ZooKeeper to bring.
const DIST4_POM: &str = include_str!("../../../docker/kafka4-dist.pom.xml");

/// The pom for `version`.
fn pom_for(version: &str) -> &'static str {
    if version.starts_with("3.") {
        DIST_POM
    } else {
        DIST4_POM
    }
}

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

/// What `.complete` holds in a distribution: its version and the checksum of the pom it
/// was assembled with, so a cached distribution made by an older recipe (a missing
/// logging binding, say) is assembled again rather than used.
fn stamp(version: &str) -> String {
    format!(
        "{version}\npom crc32 {:08x}\n",
        crc32fast::hash(pom_for(version).as_bytes())
    )
}

/// True when a `.complete` stamp says the distribution was made with today's pom. A bare
/// version (stamps before the checksum) is accepted for 3.x, whose pom has not changed
/// since.
fn made_by_current_pom(made_by: &str, version: &str) -> bool {
    made_by == stamp(version) || (version.starts_with("3.") && made_by.trim() == version)
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
    let made_by = std::fs::read_to_string(home.join(".complete")).unwrap_or_default();
    if made_by_current_pom(&made_by, version) && has_kafka_jars(&home) {
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
    std::fs::write(&pom, pom_for(version))?;
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
    std::fs::write(staging.join(".complete"), stamp(version))?;
    let _ = std::fs::remove_dir_all(&home);
    std::fs::rename(&staging, &home)?;
    eprintln!("harness: Kafka {version} ready in {}", home.display());
    Ok(Distribution {
        home,
        version: version.to_string(),
    })
}
