//! A blocking face on the Docker API (bollard): the harness is synchronous, so the engine
//! owns a small tokio runtime and every call waits for its answer. Background work (a
//! worker container's output streamed into its status file, its log copied out when it
//! dies) runs on that runtime while the coordinator goes on.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, InspectContainerOptions,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder, WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;

use crate::error::HarnessError;

/// The label every container and network of a run carries: `kmh.run=RUN_ID`.
pub const RUN_LABEL: &str = "kmh.run";
/// On a worker container: where its log goes on the coordinator (`harness cleanup` copies
/// it there before removing a container a killed run left).
pub const LOG_DEST_LABEL: &str = "kmh.log-dest";
/// On a worker container: its log's path inside the container.
pub const LOG_SOURCE_LABEL: &str = "kmh.log-source";

/// A connection to a Docker engine (`DOCKER_HOST`, else the local socket).
pub struct Engine {
    docker: Docker,
    rt: tokio::runtime::Runtime,
    /// Where the engine is, for messages.
    pub host: String,
}

/// What a container is made of.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Container name (unique on the engine).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command line (the image has no entrypoint).
    pub cmd: Vec<String>,
    /// Labels (the run label among them).
    pub labels: HashMap<String, String>,
    /// The network to join.
    pub network: String,
    /// Its fixed address on that network.
    pub address: String,
    /// Hostname inside the container.
    pub hostname: String,
    /// Working directory.
    pub working_dir: Option<String>,
    /// NET_ADMIN, so faults can be set with iptables and tc inside it.
    pub net_admin: bool,
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone, Default)]
pub struct ContainerStatus {
    /// Its process runs (a paused one counts).
    pub running: bool,
    /// Frozen by `pause`.
    pub paused: bool,
    /// Exit code of its last run, when it ran and stopped.
    pub exit_code: Option<i64>,
    /// `created`, `running`, `exited`, …
    pub status: String,
}

/// Something a run left on the engine.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// Name (containers) or name (networks).
    pub name: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
}

fn api(what: &str, e: impl Into<crate::error::Cause>) -> HarnessError {
    crate::error::EngineError {
        what: what.to_string(),
        source: e.into(),
    }
    .into()
}

impl Engine {
    /// Connects (honouring `DOCKER_HOST`) and negotiates the API version.
    pub fn connect() -> Result<Arc<Engine>, HarnessError> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        let missing = |e: String| {
            HarnessError::Missing {
            what: format!("no Docker engine answers at {host}: {e}"),
            hint: "start one (Debian: apt-get install docker.io; dockerd &), or point DOCKER_HOST at one".into(),
        }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kmh-docker")
            .enable_all()
            .build()?;
        let docker = Docker::connect_with_defaults().map_err(|e| missing(e.to_string()))?;
        let docker = rt
            .block_on(async {
                let d = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
                    .await
                    .map_err(|_| "no answer within 10 s".to_string())?
                    .map_err(|e| e.to_string())?;
                d.ping().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(d)
            })
            .map_err(missing)?;
        Ok(Arc::new(Engine { docker, rt, host }))
    }

    /// True when the engine runs on this machine (its containers' addresses are reachable
    /// from here, and this kernel is theirs).
    pub fn is_local(&self) -> bool {
        self.host.starts_with("unix://")
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Makes a bridge network with a fixed subnet (addresses are chosen by the harness).
    pub fn create_network(
        &self,
        name: &str,
        subnet: &str,
        gateway: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), HarnessError> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.into()),
                    gateway: Some(gateway.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.block(self.docker.create_network(req))
            .map_err(|e| api(&format!("creating network {name} ({subnet})"), e))?;
        Ok(())
    }

    /// Removes a network (absent is fine).
    pub fn remove_network(&self, name: &str) -> Result<(), HarnessError> {
        match self.block(self.docker.remove_network(name)) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(&format!("removing network {name}"), e)),
        }
    }

    /// Creates (does not start) a container.
    pub fn create_container(&self, spec: &ContainerSpec) -> Result<(), HarnessError> {
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(spec.address.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.cmd.clone()),
            labels: Some(spec.labels.clone()),
            hostname: Some(spec.hostname.clone()),
            working_dir: spec.working_dir.clone(),
            host_config: Some(HostConfig {
                network_mode: Some(spec.network.clone()),
                // an init reaps what `exec` leaves and passes SIGTERM to the JVM
                init: Some(true),
                cap_add: spec.net_admin.then(|| vec!["NET_ADMIN".to_string()]),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(spec.network.clone(), endpoint)])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        self.block(self.docker.create_container(Some(opts), body))
            .map_err(|e| api(&format!("creating container {}", spec.name), e))?;
        Ok(())
    }

    /// Starts a created or stopped container.
    pub fn start(&self, name: &str) -> Result<(), HarnessError> {
        self.block(self.docker.start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        ))
        .map_err(|e| api(&format!("starting {name}"), e))
    }

    /// SIGTERM, then SIGKILL after `timeout` (the engine does both).
    pub fn stop(&self, name: &str, timeout: Duration) -> Result<(), HarnessError> {
        let opts = StopContainerOptionsBuilder::new()
            .t(timeout.as_secs().max(1) as i32)
            .build();
        self.block(self.docker.stop_container(name, Some(opts)))
            .map_err(|e| api(&format!("stopping {name}"), e))
    }

    /// Sends a signal to the container's main process (through its init).
    pub fn kill(&self, name: &str, signal: &str) -> Result<(), HarnessError> {
        let opts = KillContainerOptionsBuilder::new().signal(signal).build();
        match self.block(self.docker.kill_container(name, Some(opts))) {
            Ok(()) => Ok(()),
            // "is not running": nothing to signal
            Err(e) if e.to_string().contains("is not running") => Ok(()),
            Err(e) => Err(api(&format!("{signal} to {name}"), e)),
        }
    }

    /// Freezes every process of the container (cgroup freezer).
    pub fn pause(&self, name: &str) -> Result<(), HarnessError> {
        self.block(self.docker.pause_container(name))
            .map_err(|e| api(&format!("pausing {name}"), e))
    }

    /// Thaws a paused container.
    pub fn unpause(&self, name: &str) -> Result<(), HarnessError> {
        self.block(self.docker.unpause_container(name))
            .map_err(|e| api(&format!("unpausing {name}"), e))
    }

    /// Removes a container, running or not (absent is fine).
    pub fn remove(&self, name: &str) -> Result<(), HarnessError> {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.block(self.docker.remove_container(name, Some(opts))) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(&format!("removing {name}"), e)),
        }
    }

    /// The container's state (`None`: no such container).
    pub fn status(&self, name: &str) -> Result<Option<ContainerStatus>, HarnessError> {
        match self.block(
            self.docker
                .inspect_container(name, None::<InspectContainerOptions>),
        ) {
            Ok(info) => {
                let st = info.state.unwrap_or_default();
                let status = st.status.map(|s| s.to_string()).unwrap_or_default();
                Ok(Some(ContainerStatus {
                    running: st.running.unwrap_or(false),
                    paused: st.paused.unwrap_or(false),
                    exit_code: (status == "exited" || status == "dead")
                        .then_some(st.exit_code)
                        .flatten(),
                    status,
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(&format!("inspecting {name}"), e)),
        }
    }

    /// Waits up to `timeout` for the container to stop; its exit code, or `None` when it
    /// still runs.
    pub fn wait_exit(&self, name: &str, timeout: Duration) -> Result<Option<i64>, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.status(name)? {
                Some(s) if s.running => {}
                Some(s) => return Ok(Some(s.exit_code.unwrap_or(-1))),
                None => return Ok(Some(-1)),
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a command inside a running container and waits for it: exit code and output
    /// (stdout and stderr together).
    pub fn exec(&self, name: &str, argv: &[&str]) -> Result<(i64, String), HarnessError> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        self.block(async {
            let exec = self
                .docker
                .create_exec(
                    name,
                    CreateExecOptions {
                        cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await?;
            let mut out = String::new();
            if let StartExecResults::Attached { mut output, .. } =
                self.docker.start_exec(&exec.id, None).await?
            {
                while let Some(chunk) = output.next().await {
                    out.push_str(&chunk?.to_string());
                }
            }
            let code = self
                .docker
                .inspect_exec(&exec.id)
                .await?
                .exit_code
                .unwrap_or(-1);
            Ok::<_, bollard::errors::Error>((code, out))
        })
        .map_err(|e| api(&format!("exec `{}` in {name}", argv.join(" ")), e))
    }

    /// Copies files into a container (running or not) under `dir`: `(relative path,
    /// content)`; directories on the way are made.
    pub fn upload(
        &self,
        name: &str,
        dir: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<(), HarnessError> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            );
            tar.append_data(&mut h, path, data.as_slice())?;
        }
        let bytes = tar.into_inner()?;
        let opts = UploadToContainerOptionsBuilder::new().path(dir).build();
        self.block(self.docker.upload_to_container(
            name,
            Some(opts),
            bollard::body_full(bytes.into()),
        ))
        .map_err(|e| api(&format!("copying files into {name}:{dir}"), e))
    }

    /// Copies one file out of a container (running or stopped) to `dest`. `Ok(false)` when
    /// the container has no such file.
    pub fn download(&self, name: &str, path: &str, dest: &Path) -> Result<bool, HarnessError> {
        let bytes = match self.block(fetch_archive(&self.docker, name, path)) {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(api(&format!("copying {name}:{path} out"), e)),
        };
        extract_single(&bytes, dest)
            .map_err(|e| api(&format!("unpacking {name}:{path}"), e))
            .map(|()| true)
    }

    /// Everything the container printed so far, into `stdout` and `stderr` files
    /// (overwritten).
    pub fn save_output(
        &self,
        name: &str,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<(), HarnessError> {
        let opts = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
        let (out, err) = self
            .block(collect_logs(self.docker.logs(name, Some(opts))))
            .map_err(|e| api(&format!("reading the output of {name}"), e))?;
        std::fs::write(stdout, out)?;
        std::fs::write(stderr, err)?;
        Ok(())
    }

    /// In the background: follows the container's output into `stdout` and `stderr` (as
    /// it comes, so status lines can be read during the run), and once the container has
    /// exited copies each `(path inside, destination)` file out. The handle finishes when
    /// all of that is done.
    pub fn follow(
        self: &Arc<Self>,
        name: &str,
        stdout: PathBuf,
        stderr: PathBuf,
        on_exit: Vec<(String, PathBuf)>,
    ) -> tokio::task::JoinHandle<()> {
        let docker = self.docker.clone();
        let name = name.to_string();
        self.rt.spawn(async move {
            let opts = LogsOptionsBuilder::new()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .build();
            let mut stream = docker.logs(&name, Some(opts));
            let (mut out, mut err) = match (
                std::fs::File::create(&stdout),
                std::fs::File::create(&stderr),
            ) {
                (Ok(o), Ok(e)) => (o, e),
                _ => return,
            };
            while let Some(Ok(chunk)) = stream.next().await {
                use std::io::Write;
                let _ = match chunk {
                    bollard::container::LogOutput::StdErr { message } => err.write_all(&message),
                    other => out.write_all(&other.into_bytes()),
                };
            }
            // the output ends when the container stops; make sure it has
            let mut wait = docker.wait_container(&name, None::<WaitContainerOptions>);
            let _ = wait.next().await;
            for (inside, dest) in on_exit {
                if let Ok(bytes) = fetch_archive(&docker, &name, &inside).await {
                    let _ = extract_single(&bytes, &dest);
                }
            }
        })
    }

    /// Waits for a background task of this engine.
    pub fn join(&self, handle: tokio::task::JoinHandle<()>, timeout: Duration) {
        let _ = self.block(async move { tokio::time::timeout(timeout, handle).await });
    }

    /// Containers (any state) carrying `label=value` (`value` `None`: the label at all).
    pub fn containers_labelled(
        &self,
        label: &str,
        value: Option<&str>,
    ) -> Result<Vec<Labelled>, HarnessError> {
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&label_filter(label, value))
            .build();
        let list = self
            .block(self.docker.list_containers(Some(opts)))
            .map_err(|e| api("listing containers", e))?;
        Ok(list
            .into_iter()
            .map(|c| Labelled {
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                labels: c.labels.unwrap_or_default(),
            })
            .collect())
    }

    /// Networks carrying `label=value` (`value` `None`: the label at all).
    pub fn networks_labelled(
        &self,
        label: &str,
        value: Option<&str>,
    ) -> Result<Vec<Labelled>, HarnessError> {
        let opts = ListNetworksOptionsBuilder::new()
            .filters(&label_filter(label, value))
            .build();
        let list = self
            .block(self.docker.list_networks(Some(opts)))
            .map_err(|e| api("listing networks", e))?;
        Ok(list
            .into_iter()
            .map(|n| Labelled {
                name: n.name.unwrap_or_default(),
                labels: n.labels.unwrap_or_default(),
            })
            .collect())
    }

    /// The labels of an image (`None`: no such image).
    pub fn image_labels(
        &self,
        image: &str,
    ) -> Result<Option<HashMap<String, String>>, HarnessError> {
        match self.block(self.docker.inspect_image(image)) {
            Ok(i) => Ok(Some(i.config.and_then(|c| c.labels).unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(&format!("inspecting image {image}"), e)),
        }
    }

    /// Builds an image from a tar build context (`Dockerfile` at its root).
    pub fn build_image(
        &self,
        context: Vec<u8>,
        tag: &str,
        build_args: HashMap<String, String>,
        labels: HashMap<String, String>,
    ) -> Result<(), HarnessError> {
        use bollard::query_parameters::BuildImageOptionsBuilder;
        let opts = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .buildargs(&build_args)
            .labels(&labels)
            .build();
        self.block(async {
            let mut stream =
                self.docker
                    .build_image(opts, None, Some(bollard::body_full(context.into())));
            let mut log = String::new();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| format!("{e}\n{log}"))?;
                if let Some(s) = info.stream {
                    log.push_str(&s);
                }
                if let Some(e) = info.error {
                    return Err(format!("{e}\n{log}"));
                }
            }
            Ok(())
        })
        .map_err(|e| api(&format!("building {tag}"), e))
    }

    /// `docker import`: makes an image of a root file system given as a tar stream (read
    /// from `tar`, e.g. a `tar -c` child's stdout).
    pub fn import_image(
        &self,
        mut tar: impl Read + Send + 'static,
        repo: &str,
        tag: &str,
    ) -> Result<(), HarnessError> {
        use bollard::query_parameters::CreateImageOptionsBuilder;
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
        let reader = std::thread::spawn(move || -> std::io::Result<()> {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = tar.read(&mut buf)?;
                if n == 0
                    || tx
                        .blocking_send(bytes::Bytes::copy_from_slice(&buf[..n]))
                        .is_err()
                {
                    return Ok(());
                }
            }
        });
        let body =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        let opts = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .build();
        let result = self.block(async {
            let mut stream =
                self.docker
                    .create_image(Some(opts), Some(bollard::body_stream(body)), None);
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok::<_, bollard::errors::Error>(())
        });
        let read = reader.join();
        result.map_err(|e| api(&format!("importing {repo}:{tag}"), e))?;
        match read {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(api("reading the root file system", e)),
            Err(_) => Err(api("reading the root file system", "reader panicked")),
        }
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

async fn fetch_archive(
    docker: &Docker,
    name: &str,
    path: &str,
) -> Result<Vec<u8>, bollard::errors::Error> {
    let opts = DownloadFromContainerOptionsBuilder::new()
        .path(path)
        .build();
    let mut stream = docker.download_from_container(name, Some(opts));
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

async fn collect_logs(
    mut stream: impl futures::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
        + Unpin,
) -> Result<(Vec<u8>, Vec<u8>), bollard::errors::Error> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        match chunk? {
            bollard::container::LogOutput::StdErr { message } => err.extend_from_slice(&message),
            other => out.extend_from_slice(&other.into_bytes()),
        }
    }
    Ok((out, err))
}

/// Writes the first regular file of a tar archive to `dest` (through a temporary file, so
/// a reader never sees half of it).
fn extract_single(archive: &[u8], dest: &Path) -> std::io::Result<()> {
    let mut ar = tar::Archive::new(archive);
    for entry in ar.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = dest.with_extension("part");
            let mut f = std::fs::File::create(&tmp)?;
            std::io::copy(&mut entry, &mut f)?;
            std::fs::rename(&tmp, dest)?;
            return Ok(());
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "no file in the archive",
    ))
}

/// The engine's list filter for `label=value`, or for the label with any value.
fn label_filter(label: &str, value: Option<&str>) -> HashMap<String, Vec<String>> {
    let filter = match value {
        Some(v) => format!("{label}={v}"),
        None => label.to_string(),
    };
    HashMap::from([("label".to_string(), vec![filter])])
}
