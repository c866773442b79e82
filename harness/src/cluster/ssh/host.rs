//! SSH hosts on the host seam (`cluster::host`): a node is a JVM started on its host under
//! a small wrapper that records its pid and, when it ends, its exit status (files in the
//! node's directory there), so that signals, liveness and exit codes work over SSH as they
//! do on a child process. Configuration is written in the run directory here and copied
//! over before each start, as for containers; logs come back when the node is stopped and
//! at the end. A worker runs in the foreground of its own session: its status lines stream
//! into the run directory as it prints them, and its log is copied back when it ends.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clock::Clocks;
use super::{quote, Remote, RemoteChild};
use crate::cluster::host::{
    DiscoveryCopy, HostShell, NodeHost, NodeProcess, Signal, WorkerExit, WorkerHost, WorkerLaunch,
    WorkerRunner,
};
use crate::cluster::Distribution;
use crate::error::{HarnessError, NetworkError, SshError, WorkersError};

/// The files a node's start needs on its host (written here by `Node`).
const CONFIG_FILES: &[&str] = &[
    "zoo.cfg",
    "server.properties",
    "log4j.properties",
    "log4j2.properties",
    "data/myid",
];

/// Where a node will run: its host, and where its files and the distribution are there.
pub struct SshNodeHost {
    /// The host.
    pub remote: Arc<Remote>,
    /// The run's directory on the host.
    pub run_dir: String,
    /// The distribution on the host.
    pub dist_home: String,
    /// `java` on the host.
    pub java: String,
    /// The class data sharing archives the host has for the distribution (`cluster::cds`
    /// kinds).
    pub archives: Vec<&'static str>,
}

impl SshNodeHost {
    fn node_dir(&self, local: &Path) -> PathBuf {
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        PathBuf::from(format!("{}/nodes/{name}", self.run_dir))
    }
}

impl NodeHost for SshNodeHost {
    fn view(&self, dir: &Path, _dist: &Distribution) -> (PathBuf, String) {
        (self.node_dir(dir), format!("{}/libs/*", self.dist_home))
    }

    fn class_archive_flags(
        &self,
        _dir: &Path,
        _dist: &Distribution,
        kind: &str,
        _run_id: &str,
    ) -> Vec<String> {
        if self.archives.contains(&kind) {
            let archive = crate::cluster::cds::host_archive(&self.dist_home, kind);
            vec![format!("-XX:SharedArchiveFile={archive}")]
        } else {
            Vec::new()
        }
    }

    fn process(
        self: Box<Self>,
        run_id: &str,
        node: &str,
        _address: Ipv4Addr,
        mut jvm: Vec<String>,
    ) -> Result<Box<dyn NodeProcess>, HarnessError> {
        if jvm.first().is_some_and(|j| j == "java") {
            jvm[0] = self.java.clone();
        }
        let dir = format!("{}/nodes/{node}", self.run_dir);
        // the wrapper: the JVM in the background, its pid, then its exit status once it
        // ends (a SIGSTOPped JVM is still running to `wait`)
        let script = format!(
            "#!/bin/sh\n# started by the harness: kmh.run={run_id} node={node}\ncd {d} || exit 1\n{} &\necho $! > pid.part && mv pid.part pid\nwait $!\necho $? > exit.part && mv exit.part exit\n",
            jvm.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "),
            d = quote(&dir)
        );
        Ok(Box::new(SshProcess {
            remote: self.remote,
            node: node.to_string(),
            run_id: run_id.to_string(),
            dir,
            script,
            started: false,
        }))
    }
}

/// A node's JVM on its host.
struct SshProcess {
    remote: Arc<Remote>,
    node: String,
    run_id: String,
    /// Its directory on the host.
    dir: String,
    /// The wrapper script (`run.sh` there).
    script: String,
    /// Started at least once.
    started: bool,
}

impl SshProcess {
    fn err(&self, e: SshError) -> HarnessError {
        HarnessError::Cluster(format!("{}: {e}", self.node))
    }
}

impl NodeProcess for SshProcess {
    fn start(&mut self, dir: &Path) -> Result<(), HarnessError> {
        for f in CONFIG_FILES {
            if let Ok(data) = std::fs::read(dir.join(f)) {
                self.remote
                    .put(&data, &format!("{}/{f}", self.dir))
                    .map_err(|e| self.err(e))?;
            }
        }
        self.remote
            .put(self.script.as_bytes(), &format!("{}/run.sh", self.dir))
            .map_err(|e| self.err(e))?;
        let d = quote(&self.dir);
        // detached (its own session, every descriptor on a file): the SSH session returns
        // at once and the node outlives it
        self.remote
            .sh(&format!(
                "cd {d} && mkdir -p data && rm -f pid exit && \
                 (setsid sh run.sh kmh.run={id} >>console.log 2>&1 </dev/null &) && \
                 i=0; while [ ! -s pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; test -s pid",
                id = quote(&self.run_id)
            ))
            .map_err(|e| self.err(e))?;
        self.started = true;
        Ok(())
    }

    fn install(&self, files: &[(String, Vec<u8>)]) -> Result<(), HarnessError> {
        for (f, data) in files {
            self.remote
                .put(data, &format!("{}/{f}", self.dir))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn is_running(&mut self) -> bool {
        self.started
            && self
                .remote
                .run(&format!(
                    "cd {} && [ ! -e exit ] && kill -0 \"$(cat pid)\" 2>/dev/null",
                    quote(&self.dir)
                ))
                .is_ok_and(|o| o.code == Some(0))
    }

    fn exit_status(&mut self) -> Result<Option<String>, HarnessError> {
        if !self.started {
            return Ok(None);
        }
        let o = self
            .remote
            .run(&format!("cat {}/exit 2>/dev/null", quote(&self.dir)))
            .map_err(|e| self.err(e))?;
        Ok(match o.stdout.trim() {
            "" => None,
            code => Some(format!("exit status {code} on {}", self.remote.address)),
        })
    }

    fn signal(&mut self, sig: Signal) -> Result<(), HarnessError> {
        let name = match sig {
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
        };
        self.remote
            .sh(&format!("kill -{name} \"$(cat {}/pid)\"", quote(&self.dir)))
            .map_err(|e| self.err(e))
            .map(drop)
    }

    fn kill(&mut self) -> Result<(), HarnessError> {
        if !self.started {
            return Ok(());
        }
        self.remote
            .sh(&format!(
                "cd {} && p=$(cat pid 2>/dev/null) || exit 0; kill -CONT $p 2>/dev/null; kill -KILL $p 2>/dev/null; \
                 i=0; while kill -0 $p 2>/dev/null && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; true",
                quote(&self.dir)
            ))
            .map_err(|e| self.err(e))
            .map(drop)
    }

    fn save_logs(&self, dir: &Path) {
        for f in ["server.log", "console.log"] {
            if let Err(e) = self.remote.get(&format!("{}/{f}", self.dir), &dir.join(f)) {
                tracing::warn!("copying {f} of {} back: {e}", self.node);
            }
        }
    }

    fn dispose(&mut self, dir: &Path) {
        let _ = self.kill();
        if self.started {
            self.save_logs(dir);
        }
        // once: its host's session goes with the run's teardown
        self.started = false;
    }
}

/// A host's network context over SSH: fault rules and qdiscs are set on the host itself.
pub struct SshShell {
    /// The host.
    pub remote: Arc<Remote>,
}

impl HostShell for SshShell {
    fn exec(&self, argv: &[&str]) -> Result<String, NetworkError> {
        let line = argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        self.remote.sh(&line).map_err(|e| NetworkError::Command {
            command: argv.join(" "),
            host: Some(self.remote.login.clone()),
            output: e.to_string(),
        })
    }

    fn is_up(&self) -> bool {
        true
    }

    fn network_outlives_process(&self) -> bool {
        true
    }

    fn far_end(&self) -> Option<&str> {
        None
    }
}

/// Worker processes on worker hosts, placed as `[workload] placement` says.
pub struct SshWorkers {
    /// The worker hosts.
    pub hosts: Vec<Arc<Remote>>,
    /// How worker processes spread over them.
    pub placement: crate::scenario::Placement,
    /// The run's directory on them.
    pub run_dir: String,
    /// The worker binary on them.
    pub binary: String,
    /// The run's discovery file here (each worker gets its own copy there).
    pub discovery: PathBuf,
    /// Which worker runs where, recorded for the checker (`clocks.json`).
    pub clocks: Arc<Mutex<Clocks>>,
    /// The run directory here (where `clocks.json` goes).
    pub local_run_dir: PathBuf,
}

/// Which of `hosts` worker hosts a worker goes to. `Split` puts producers on the first
/// half (rounded up) and the rest on the others, each group round-robin by the worker's
/// own index (`producer-3` → 3), so that a second start of one worker lands where the
/// first did.
pub fn place(
    placement: crate::scenario::Placement,
    hosts: usize,
    name: &str,
    command: &str,
    ordinal: usize,
) -> Result<usize, HarnessError> {
    use crate::scenario::Placement;
    match placement {
        Placement::RoundRobin => Ok(ordinal % hosts),
        Placement::Split => {
            if let Some(why) = placement.unfit(hosts) {
                return Err(HarnessError::BadInput(why));
            }
            let index = name
                .rsplit_once('-')
                .and_then(|(_, n)| n.parse::<usize>().ok())
                .unwrap_or(ordinal);
            let producers = hosts.div_ceil(2);
            Ok(if command == "produce" {
                index % producers
            } else {
                producers + index % (hosts - producers)
            })
        }
    }
}

impl WorkerHost for SshWorkers {
    fn launch(&self, w: &WorkerLaunch<'_>) -> Result<Box<dyn WorkerRunner>, HarnessError> {
        let at = place(
            self.placement,
            self.hosts.len(),
            w.name,
            w.command,
            w.ordinal,
        )?;
        let remote = self.hosts[at].clone();
        let base = format!("{}/workers/{}", self.run_dir, w.name);
        let mut there = w.config.clone();
        there.log_path = PathBuf::from(format!("{base}.log"));
        there.bootstrap_file = w
            .config
            .bootstrap_file
            .as_ref()
            .map(|_| PathBuf::from(format!("{base}.bootstrap")));
        let json = serde_json::to_vec_pretty(&there).map_err(anyhow::Error::from)?;
        // the run directory records the config as the worker is given it
        std::fs::write(w.config_path, &json)?;
        let start = |e: SshError| WorkersError::Start {
            worker: format!("{} on {}", w.name, remote.login),
            source: std::io::Error::other(e.to_string()),
        };
        remote.put(&json, &format!("{base}.json")).map_err(start)?;
        if w.config.bootstrap_file.is_some() {
            remote
                .put(
                    &std::fs::read(&self.discovery)?,
                    &format!("{base}.bootstrap"),
                )
                .map_err(start)?;
        }
        {
            let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
            clocks.workers.insert(w.name.to_string(), remote.address);
            clocks.save(&self.local_run_dir)?;
        }
        let script = format!(
            "echo $$ > {b}.pid && exec {bin} {cmd} --config {b}.json --tag kmh.run={id}",
            b = quote(&base),
            bin = quote(&self.binary),
            cmd = quote(w.command),
            id = quote(w.run_id)
        );
        let child = remote
            .spawn(
                &script,
                std::fs::File::create(w.out_path)?,
                std::fs::File::create(w.err_path)?,
                Some((format!("{base}.log"), w.config.log_path.clone())),
            )
            .map_err(start)?;
        Ok(Box::new(SshWorker {
            remote,
            base,
            child,
            collected: false,
        }))
    }
}

/// A worker process on its host.
struct SshWorker {
    remote: Arc<Remote>,
    /// Its files there, without extension.
    base: String,
    child: RemoteChild,
    collected: bool,
}

impl SshWorker {
    fn send(&self, sig: &str) {
        let _ = self.remote.run(&format!(
            "kill -{sig} \"$(cat {}.pid)\" 2>/dev/null",
            quote(&self.base)
        ));
    }
}

impl WorkerRunner for SshWorker {
    fn ended(&mut self) -> Option<WorkerExit> {
        Some(match self.child.ended()? {
            Ok(st) if st.success() => WorkerExit::Clean,
            Ok(st) => WorkerExit::Failed(format!("exited with {st} on {}", self.remote.address)),
            Err(e) => WorkerExit::Failed(format!("its session broke: {e}")),
        })
    }

    fn terminate(&mut self) {
        if self.child.ended().is_none() {
            self.send("TERM");
        }
    }

    fn kill(&mut self) {
        if self.child.ended().is_none() {
            self.send("KILL");
            let _ = self.child.wait(Duration::from_secs(10));
        }
    }

    fn collect(&mut self, log_path: &Path) {
        if self.collected {
            return;
        }
        match self.remote.get(&format!("{}.log", self.base), log_path) {
            Ok(true) => self.collected = self.child.ended().is_some(),
            Ok(false) => tracing::warn!("{}: no log at {}.log", self.remote.login, self.base),
            Err(e) => tracing::warn!("copying the log {}.log back: {e}", self.base),
        }
    }

    fn refresh_log(&self, log_path: &Path) {
        let _ = self.remote.get(&format!("{}.log", self.base), log_path);
    }

    fn discovery(&self) -> Option<Arc<dyn DiscoveryCopy>> {
        Some(Arc::new(SshDiscovery {
            remote: self.remote.clone(),
            path: format!("{}.bootstrap", self.base),
        }))
    }

    fn dispose(&mut self, log_path: &Path) {
        if self.child.ended().is_none() {
            self.send("TERM");
            if self.child.wait(Duration::from_secs(5)).is_none() {
                self.kill();
            }
        }
        self.collect(log_path);
    }
}

/// A worker's discovery copy on its host.
struct SshDiscovery {
    remote: Arc<Remote>,
    path: String,
}

impl DiscoveryCopy for SshDiscovery {
    fn write(&self, bootstrap: &str) -> Result<(), HarnessError> {
        self.remote
            .put(bootstrap.as_bytes(), &self.path)
            .map_err(|e| {
                WorkersError::Discovery {
                    container: self.remote.login.clone(),
                    output: e.to_string(),
                }
                .into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::place;
    use crate::scenario::Placement;

    #[test]
    fn round_robin_follows_start_order_and_split_keeps_producers_apart() {
        let rr: Vec<usize> = (0..5)
            .map(|i| place(Placement::RoundRobin, 2, "x", "consume", i).unwrap())
            .collect();
        assert_eq!(rr, vec![0, 1, 0, 1, 0]);
        // three hosts: producers on 0 and 1, consumers and the final read on 2
        let at = |name: &str, command: &str| place(Placement::Split, 3, name, command, 9).unwrap();
        assert_eq!(
            ["producer-0", "producer-1", "producer-2"].map(|n| at(n, "produce")),
            [0, 1, 0]
        );
        assert_eq!(at("consumer-0", "consume"), 2);
        assert_eq!(at("consumer-1", "consume"), 2);
        assert_eq!(at("final-read-0", "final-read"), 2);
        // four hosts: two and two
        let four =
            |name: &str, command: &str| place(Placement::Split, 4, name, command, 0).unwrap();
        assert_eq!(four("consumer-1", "consume"), 3);
        assert_eq!(four("producer-1", "produce"), 1);
        let one = place(Placement::Split, 1, "producer-0", "produce", 0).unwrap_err();
        assert!(one.to_string().contains("needs two worker hosts"), "{one}");
    }
}
