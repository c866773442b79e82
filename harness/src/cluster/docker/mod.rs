//! The Docker backend's engine side: the API connection ([`Engine`]), the images
//! ([`images`]) and cleanup by label. The cluster and the workload use it for
//! `backend = "docker"` (see `cluster::Cluster::prepare` and `run::workload`).
//!
//! Everything a run makes on the engine is labelled `kmh.run=RUN_ID` and named
//! `kmh-TAG-…` (TAG: 6 hex digits of the run id's hash): one network, one container per
//! node, one per worker process. [`cleanup`] removes them by label.

mod engine;
pub mod host;
pub mod images;

pub use engine::{
    ContainerSpec, ContainerStatus, Engine, Labelled, LOG_DEST_LABEL, LOG_SOURCE_LABEL, RUN_LABEL,
};

use std::path::PathBuf;
use std::time::Duration;

use crate::error::HarnessError;

/// The name of a run's network.
pub fn network_name(run_id: &str) -> String {
    format!("kmh-{}", crate::cluster::netns::run_tag(run_id))
}

/// The name of a run's container for `what` (a node name, `producer-0`, …).
pub fn container_name(run_id: &str, what: &str) -> String {
    format!("kmh-{}-{what}", crate::cluster::netns::run_tag(run_id))
}

/// What `harness cleanup` did on the Docker engine.
#[derive(Debug, Default)]
pub struct DockerLeftovers {
    /// Containers removed.
    pub containers: Vec<String>,
    /// Networks removed.
    pub networks: Vec<String>,
    /// Worker logs copied out of containers before they were removed.
    pub salvaged: Vec<PathBuf>,
    /// Why the engine was not looked at, when it was not.
    pub skipped: Option<String>,
}

/// Removes the containers and networks of a run (`None`: of every run). A worker
/// container's log is copied to where its run wanted it first, so a killed run's logs can
/// still be checked. With no engine configured or running, nothing is done and `skipped`
/// says why.
pub fn cleanup(scope: &crate::cluster::CleanupScope) -> DockerLeftovers {
    let mut out = DockerLeftovers::default();
    let configured = std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists();
    if !configured {
        out.skipped =
            Some("no Docker engine configured (no DOCKER_HOST, no /var/run/docker.sock)".into());
        return out;
    }
    let engine = match Engine::connect() {
        Ok(e) => e,
        Err(e) => {
            out.skipped = Some(e.to_string());
            return out;
        }
    };
    let covered = |l: &engine::Labelled| l.labels.get(RUN_LABEL).is_some_and(|r| scope.covers(r));
    let containers = match engine.containers_labelled(RUN_LABEL, None) {
        Ok(c) => c.into_iter().filter(|c| covered(c)).collect::<Vec<_>>(),
        Err(e) => {
            out.skipped = Some(e.to_string());
            return out;
        }
    };
    for c in containers {
        if let (Some(dest), Some(source)) =
            (c.labels.get(LOG_DEST_LABEL), c.labels.get(LOG_SOURCE_LABEL))
        {
            let dest = PathBuf::from(dest);
            if dest.parent().is_some_and(|d| d.is_dir()) {
                // SIGTERM first: the worker flushes its log on the way out
                let _ = engine.stop(&c.name, Duration::from_secs(5));
                if engine.download(&c.name, source, &dest).unwrap_or(false) {
                    out.salvaged.push(dest);
                }
            }
        }
        if engine.remove(&c.name).is_ok() {
            out.containers.push(c.name);
        }
    }
    if let Ok(nets) = engine.networks_labelled(RUN_LABEL, None) {
        for n in nets.into_iter().filter(|n| covered(n)) {
            if engine.remove_network(&n.name).is_ok() {
                out.networks.push(n.name);
            }
        }
    }
    out
}

/// Whether the engine can be reached at all (for tests and preflight).
pub fn available() -> Result<(), HarnessError> {
    Engine::connect().map(|_| ())
}
