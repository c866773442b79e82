//! The Docker backend's images, built from `docker/*.Dockerfile`:
//!
//! - **base**: a stock JRE image the user names (`--base`, when a registry is reachable),
//!   or, with none, `kmh-base:bookworm`: a Debian root made with `debootstrap` (a JRE,
//!   iptables, iproute2) and turned into an image with `docker import`;
//! - **node** (`kmh-node:KAFKA_VERSION`): the base plus the Kafka/ZooKeeper jars;
//! - **worker** (`kmh-worker:latest`): the base plus this build's `worker` binary.
//!
//! Each image carries labels saying what it was built from; [`ensure`] rebuilds only what
//! is missing or out of date (a new `worker` binary, another distribution, another base).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use super::Engine;
use crate::cluster::Distribution;
use crate::error::HarnessError;

/// The base made locally when the user names none.
pub const LOCAL_BASE: &str = "kmh-base:bookworm";
/// The worker image.
pub const WORKER_IMAGE: &str = "kmh-worker:latest";
/// Where the node image keeps the distribution's jars.
pub const NODE_LIBS: &str = "/opt/kafka/libs";
/// What the local base holds besides Debian's minimal system.
const BASE_PACKAGES: &str = "openjdk-17-jre-headless,iptables,iproute2,procps";
/// Label: what an image was built from.
const SOURCE_LABEL: &str = "kmh.source";
/// Label: the base an image was built on.
const BASE_LABEL: &str = "kmh.base";

const NODE_DOCKERFILE: &str = include_str!("../../../../docker/node.Dockerfile");
const WORKER_DOCKERFILE: &str = include_str!("../../../../docker/worker.Dockerfile");

/// The node image of a Kafka version.
pub fn node_image(kafka_version: &str) -> String {
    format!("kmh-node:{kafka_version}")
}

/// What [`ensure`] did with one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageAction {
    /// Present and up to date.
    Reused,
    /// Built now.
    Built,
    /// Made from a debootstrap root with `docker import`.
    Imported,
}

/// One line of [`ensure`]'s account.
#[derive(Debug, Clone)]
pub struct ImageOutcome {
    /// Image reference.
    pub image: String,
    /// What was done.
    pub action: ImageAction,
    /// Why, in words.
    pub detail: String,
}

/// FNV-1a over bytes: enough to tell one build input from another.
fn fingerprint(chunks: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in chunks {
        for b in *c {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Makes sure the base, node and worker images exist and match `dist`, `worker_bin` and
/// `base` (`None`: the local debootstrap base). `force` rebuilds node and worker images.
pub fn ensure(
    engine: &Engine,
    dist: &Distribution,
    worker_bin: &Path,
    base: Option<&str>,
    force: bool,
) -> Result<Vec<ImageOutcome>, HarnessError> {
    let mut out = Vec::new();
    let base = match base {
        Some(b) => {
            out.push(ImageOutcome {
                image: b.to_string(),
                action: ImageAction::Reused,
                detail: "base image given (--base); pulled by the engine if missing".into(),
            });
            b.to_string()
        }
        None => {
            if engine.image_labels(LOCAL_BASE)?.is_some() {
                out.push(ImageOutcome {
                    image: LOCAL_BASE.into(),
                    action: ImageAction::Reused,
                    detail: "no base given: the local Debian base made earlier".into(),
                });
            } else {
                make_local_base(engine)?;
                out.push(ImageOutcome {
                    image: LOCAL_BASE.into(),
                    action: ImageAction::Imported,
                    detail: format!(
                        "no base given and none made yet: a Debian bookworm root from debootstrap ({BASE_PACKAGES}), imported with `docker import`"
                    ),
                });
            }
            LOCAL_BASE.to_string()
        }
    };

    // node image: the jars of the distribution
    let libs = dist.home.join("libs");
    let mut jars: Vec<(String, Vec<u8>)> = Vec::new();
    for e in std::fs::read_dir(&libs)? {
        let e = e?;
        if e.file_type()?.is_file() {
            jars.push((
                format!("libs/{}", e.file_name().to_string_lossy()),
                std::fs::read(e.path())?,
            ));
        }
    }
    jars.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&[u8]> = jars.iter().map(|(n, _)| n.as_bytes()).collect();
    let mut parts = vec![base.as_bytes(), NODE_DOCKERFILE.as_bytes()];
    parts.extend(names);
    let node_source = fingerprint(&parts);
    let node = node_image(&dist.version);
    out.push(build_if_stale(
        engine,
        &node,
        &node_source,
        &base,
        force,
        NODE_DOCKERFILE,
        jars,
    )?);

    // worker image: this build's worker binary
    let binary = std::fs::read(worker_bin).map_err(|e| HarnessError::Missing {
        what: format!(
            "cannot read the worker binary {}: {e}",
            worker_bin.display()
        ),
        hint: "build the whole workspace (`cargo build --release --workspace`)".into(),
    })?;
    let worker_source = fingerprint(&[base.as_bytes(), WORKER_DOCKERFILE.as_bytes(), &binary]);
    out.push(build_if_stale(
        engine,
        WORKER_IMAGE,
        &worker_source,
        &base,
        force,
        WORKER_DOCKERFILE,
        vec![("worker".into(), binary)],
    )?);
    Ok(out)
}

fn build_if_stale(
    engine: &Engine,
    image: &str,
    source: &str,
    base: &str,
    force: bool,
    dockerfile: &str,
    files: Vec<(String, Vec<u8>)>,
) -> Result<ImageOutcome, HarnessError> {
    let current = engine.image_labels(image)?;
    let same = current
        .as_ref()
        .and_then(|l| l.get(SOURCE_LABEL))
        .is_some_and(|s| s == source);
    if same && !force {
        return Ok(ImageOutcome {
            image: image.into(),
            action: ImageAction::Reused,
            detail: format!("up to date (built on {base})"),
        });
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        tar.append_data(&mut h, path, data)
    };
    add("Dockerfile", dockerfile.as_bytes(), 0o644)?;
    for (path, data) in &files {
        add(path, data, 0o755)?;
    }
    let context = tar.into_inner()?;
    engine.build_image(
        context,
        image,
        HashMap::from([("BASE".to_string(), base.to_string())]),
        HashMap::from([
            (SOURCE_LABEL.to_string(), source.to_string()),
            (BASE_LABEL.to_string(), base.to_string()),
        ]),
    )?;
    Ok(ImageOutcome {
        image: image.into(),
        action: ImageAction::Built,
        detail: match current {
            None => format!("built on {base}"),
            Some(_) if force => format!("rebuilt on {base} (--force)"),
            Some(_) => format!("rebuilt on {base}: its inputs changed"),
        },
    })
}

/// What a run does before it starts: the images it needs, made or brought up to date on
/// the base they were last built on (`$KMH_DOCKER_BASE`, else the local Debian base, when
/// none was built yet).
pub fn ensure_for_run(
    engine: &Engine,
    dist: &Distribution,
    worker_bin: &Path,
) -> Result<Vec<ImageOutcome>, HarnessError> {
    let base = match engine
        .image_labels(WORKER_IMAGE)?
        .and_then(|l| l.get(BASE_LABEL).cloned())
    {
        Some(b) if b != LOCAL_BASE => Some(b),
        Some(_) => None,
        None => std::env::var("KMH_DOCKER_BASE").ok(),
    };
    ensure(engine, dist, worker_bin, base.as_deref(), false)
}

/// The Debian mirror debootstrap uses: `$KMH_DEBIAN_MIRROR`, else deb.debian.org.
fn mirror() -> String {
    std::env::var("KMH_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into())
}

/// debootstrap → trimmed root → `docker import` as [`LOCAL_BASE`].
fn make_local_base(engine: &Engine) -> Result<(), HarnessError> {
    let no_base = |what: String| {
        HarnessError::Missing {
        what,
        hint: "install debootstrap and run as root, or name a JRE image: `harness images build --base eclipse-temurin:17-jre`".into(),
    }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(no_base(
            "making the local base image needs root (debootstrap)".into(),
        ));
    }
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(no_base(
            "debootstrap is not installed (apt-get install debootstrap)".into(),
        ));
    }
    let work = crate::cluster::dist::cache_dir().join("base-root");
    // a debootstrap killed half-way can leave /proc or /sys mounted in its root: unmount
    // before deleting, never delete through a mount
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut inside: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(&work))
        .collect();
    inside.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in &inside {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let root = work.join("root");
    let log = work.join("debootstrap.log");
    eprintln!(
        "harness: making the base image: debootstrap bookworm from {} (log: {})…",
        mirror(),
        log.display()
    );
    let status = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={BASE_PACKAGES}"),
            "bookworm",
        ])
        .arg(&root)
        .arg(mirror())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(work.join("debootstrap.err"))?)
        .status()?;
    if !status.success() {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        return Err(no_base(format!(
            "debootstrap failed ({status}); last lines of {}: {}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    // what an image does not need: downloaded packages, package lists, documentation
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
    ] {
        let d = root.join(dir);
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = tar.stdout.take().expect("piped");
    let (repo, tag) = LOCAL_BASE.split_once(':').expect("repo:tag");
    let imported = engine.import_image(stdout, repo, tag);
    let tar_status = tar.wait()?;
    let _ = std::fs::remove_dir_all(&work);
    imported?;
    if !tar_status.success() {
        return Err(HarnessError::Cluster(format!(
            "tar of the base root failed ({tar_status})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_input_changes_the_fingerprint_and_the_same_does_not() {
        let a = fingerprint(&[b"base", b"dockerfile", b"binary v1"]);
        assert_eq!(a, fingerprint(&[b"base", b"dockerfile", b"binary v1"]));
        assert_ne!(a, fingerprint(&[b"base", b"dockerfile", b"binary v2"]));
        assert_ne!(
            a,
            fingerprint(&[b"other-base", b"dockerfile", b"binary v1"])
        );
        assert_eq!(node_image("3.9.1"), "kmh-node:3.9.1");
    }

    #[test]
    fn the_dockerfiles_take_the_base_as_a_build_argument() {
        for f in [NODE_DOCKERFILE, WORKER_DOCKERFILE] {
            assert!(f.contains("ARG BASE="), "{f}");
            assert!(f.contains("FROM ${BASE}"), "{f}");
        }
    }
}
