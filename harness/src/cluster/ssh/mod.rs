//! The ssh backend: hosts the operator already has (Jepsen's model). An inventory names
//! them (address, user, key); the harness checks each before anything starts, copies the
//! Kafka distribution and the worker binary once per host (by content hash: a second run
//! copies nothing), then runs nodes and workers there through real OpenSSH — one control
//! master per host (the `openssh` crate), every command a session on it.
//!
//! On a host, everything lives under the inventory's `dir`:
//!
//! ```text
//! DIR/dist/<sha256>/libs/*.jar      the distribution, made atomically (tmp dir, rename)
//! DIR/bin/<sha256>/worker           the worker binary
//! DIR/runs/<run id>/nodes/<node>/   a node's config, data, logs, pid and exit files
//! DIR/runs/<run id>/workers/        workers' configs, logs, pid files, discovery copies
//! ```
//!
//! Processes started there carry `kmh.run=ID` on their command line, as local ones do, so
//! `harness cleanup` finds them over SSH (`pkill -f`). Network faults are the same
//! iptables/tc rules as on namespace hosts, run on the host ([`host::SshShell`]).

pub mod clock;
pub mod host;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::cluster::cds;
use crate::cluster::Distribution;
use crate::error::{HarnessError, SshError};

/// The ssh backend's hosts: an inventory file (`--hosts FILE`, or `inventory = "…"` in
/// `[cluster]`), recorded in run.json so that `harness cleanup` can reach the hosts after
/// a crash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Login user on every host (default: ssh's own choice — `~/.ssh/config`, then the
    /// current user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Private key file (default: ssh's own — the agent, `~/.ssh/id_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// sshd's port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Where the harness keeps its files on each host.
    #[serde(default = "default_dir")]
    pub dir: String,
    /// The known_hosts file (default `~/.ssh/known_hosts`): a host seen for the first time
    /// is added, a changed host key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<PathBuf>,
    /// `java` on the hosts (a full path where it is not on the login PATH).
    #[serde(default = "default_java")]
    pub java: String,
    /// Node hosts, in the scenario's node order: its ZooKeeper nodes, then its brokers
    /// (dormant ones included). One node per host: every node listens on the same ports.
    #[serde(default)]
    pub hosts: Vec<Ipv4Addr>,
    /// Placement by name, over the order of `hosts`: node name → address.
    #[serde(default)]
    pub nodes: BTreeMap<String, Ipv4Addr>,
    /// Where worker processes run, round-robin (empty: on this machine).
    #[serde(default)]
    pub workers: Vec<Ipv4Addr>,
    /// Environment for every command run on a host, by address (`JAVA_HOME`, say).
    #[serde(default)]
    pub env: BTreeMap<Ipv4Addr, BTreeMap<String, String>>,
}

fn default_port() -> u16 {
    22
}
fn default_dir() -> String {
    "/var/tmp/kmh".into()
}
fn default_java() -> String {
    "java".into()
}

impl Inventory {
    /// Reads an inventory file; errors name the file, the line and the field.
    pub fn load(path: &Path) -> Result<Inventory, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            HarnessError::BadInput(format!(
                "{}: {e}\n  hint: --hosts names the ssh backend's inventory (see README, \"SSH hosts\")",
                path.display()
            ))
        })?;
        let inv: Inventory = toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!(":{line}")
                })
                .unwrap_or_default();
            HarnessError::BadInput(format!(
                "{}{at}: {}\n  hint: fields are user, key, port, dir, known_hosts, java, hosts, nodes, workers, env; addresses are IPv4",
                path.display(),
                e.message()
            ))
        })?;
        let mut inv = inv;
        // files the inventory names are relative to it
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut inv.key, &mut inv.known_hosts].into_iter().flatten() {
            if f.is_relative() {
                *f = std::path::absolute(base.join(&*f)).unwrap_or_else(|_| base.join(&*f));
            }
        }
        if !inv.dir.starts_with('/') || inv.dir.contains(['\'', '\n']) {
            return Err(HarnessError::BadInput(format!(
                "{}: dir = {:?}: an absolute path without quotes\n  hint: dir = \"/var/tmp/kmh\"",
                path.display(),
                inv.dir
            )));
        }
        Ok(inv)
    }

    /// Which host each node runs on: named placement first, then `hosts` in order. Every
    /// node must have a host of its own.
    pub fn place(
        &self,
        nodes: &[String],
        source: &str,
    ) -> Result<BTreeMap<String, Ipv4Addr>, HarnessError> {
        let mut free = self
            .hosts
            .iter()
            .filter(|a| !self.nodes.values().any(|n| n == *a));
        let mut out = BTreeMap::new();
        for n in nodes {
            let addr = match self.nodes.get(n) {
                Some(a) => *a,
                None => *free.next().ok_or_else(|| {
                    HarnessError::BadInput(format!(
                        "{source}: no host for node `{n}` ({} nodes, {} in `hosts`, {} placed by name)\n  hint: add an address to `hosts`, or `{n} = \"ADDRESS\"` under [nodes]",
                        nodes.len(),
                        self.hosts.len(),
                        self.nodes.len()
                    ))
                })?,
            };
            if let Some((other, _)) = out.iter().find(|(_, a)| **a == addr) {
                return Err(HarnessError::BadInput(format!(
                    "{source}: nodes `{other}` and `{n}` are both on {addr}; every node listens on the same ports\n  hint: one node per host"
                )));
            }
            out.insert(n.clone(), addr);
        }
        for name in self.nodes.keys() {
            if !nodes.contains(name) {
                return Err(HarnessError::BadInput(format!(
                    "{source}: [nodes] places `{name}`, which is not a node of the scenario (nodes: {})",
                    nodes.join(", ")
                )));
            }
        }
        Ok(out)
    }

    /// `user@address` (for messages).
    pub fn login(&self, address: Ipv4Addr) -> String {
        match &self.user {
            Some(u) => format!("{u}@{address}:{}", self.port),
            None => format!("{address}:{}", self.port),
        }
    }
}

/// Quotes a word for a POSIX shell.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Where the control masters' sockets go: a name carrying the run's tag, so that
/// `harness cleanup` finds a killed coordinator's masters as it finds its other processes
/// (`/tmp`: a socket path must stay under 108 bytes).
pub fn control_dir(run_id: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/kmh.run={run_id}"))
}

/// One host: a control master and the commands run on it. Blocking calls on a private
/// runtime shared by every host of the run.
pub struct Remote {
    /// The host's address.
    pub address: Ipv4Addr,
    /// `user@address:port`, for messages.
    pub login: String,
    /// The inventory's `dir` on it.
    pub base: String,
    /// `KEY=VALUE` words every command runs under (`env …`).
    env: Vec<String>,
    session: Arc<Session>,
    rt: Arc<tokio::runtime::Runtime>,
}

/// A command's outcome on a host.
pub struct Output {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Remote {
    /// Connects (a control master per host, in `control`), with the inventory's user, key,
    /// port and known_hosts.
    pub fn connect(
        inv: &Inventory,
        address: Ipv4Addr,
        control: &Path,
        rt: Arc<tokio::runtime::Runtime>,
    ) -> Result<Remote, SshError> {
        let login = inv.login(address);
        std::fs::create_dir_all(control).map_err(|e| SshError::Connect {
            host: login.clone(),
            source: Box::new(e),
        })?;
        let mut b = SessionBuilder::default();
        b.port(inv.port)
            .known_hosts_check(KnownHosts::Add)
            .connect_timeout(Duration::from_secs(10))
            .server_alive_interval(Duration::from_secs(5))
            .control_directory(control);
        if let Some(u) = &inv.user {
            b.user(u.clone());
        }
        if let Some(k) = &inv.key {
            b.keyfile(k);
        }
        if let Some(k) = &inv.known_hosts {
            b.user_known_hosts_file(k);
        }
        let session =
            rt.block_on(b.connect(address.to_string()))
                .map_err(|e| SshError::Connect {
                    host: login.clone(),
                    source: Box::new(e),
                })?;
        let env = inv
            .env
            .get(&address)
            .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        Ok(Remote {
            address,
            login,
            base: inv.dir.clone(),
            env,
            session: Arc::new(session),
            rt,
        })
    }

    fn command(&self, script: &str) -> openssh::OwningCommand<Arc<Session>> {
        let mut c = self.session.clone().arc_command("env");
        c.args(&self.env).arg("sh").arg("-c").arg(script);
        c
    }

    fn failed(&self, script: &str, what: String) -> SshError {
        SshError::Command {
            host: self.login.clone(),
            command: script.lines().next().unwrap_or_default().to_string(),
            output: what,
        }
    }

    /// Runs a shell script to its end, whatever its exit code.
    pub fn run(&self, script: &str) -> Result<Output, SshError> {
        let o = self
            .rt
            .block_on(self.command(script).stdin(Stdio::null()).output())
            .map_err(|e| self.failed(script, e.to_string()))?;
        Ok(Output {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        })
    }

    /// Runs a shell script; its stdout, or an error with its exit code and stderr.
    pub fn sh(&self, script: &str) -> Result<String, SshError> {
        let o = self.run(script)?;
        if o.code == Some(0) {
            Ok(o.stdout)
        } else {
            Err(self.failed(
                script,
                format!(
                    "exit {}: {}",
                    o.code.map_or("by a signal".into(), |c| c.to_string()),
                    o.stderr.trim()
                ),
            ))
        }
    }

    /// Writes `data` to `path` on the host, whole or not at all (a temporary file renamed).
    pub fn put(&self, data: &[u8], path: &str) -> Result<(), SshError> {
        let script = format!(
            "mkdir -p \"$(dirname {p})\" && t={p}.part.$$ && cat > \"$t\" && mv -f \"$t\" {p}",
            p = quote(path)
        );
        let r: Result<ExitStatus, String> = self.rt.block_on(async {
            let mut child = self
                .command(&script)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .await
                .map_err(|e| e.to_string())?;
            let mut stdin = child.stdin().take().ok_or("no stdin")?;
            stdin.write_all(data).await.map_err(|e| e.to_string())?;
            stdin.shutdown().await.map_err(|e| e.to_string())?;
            drop(stdin);
            child.wait().await.map_err(|e| e.to_string())
        });
        match r {
            Ok(st) if st.success() => Ok(()),
            Ok(st) => Err(self.failed(&script, format!("{st}"))),
            Err(e) => Err(self.failed(&script, e)),
        }
    }

    /// Copies the directory `local` but its top-level directories `skip` to `path` on the
    /// host unless it is there already (`path` names its content); made in a temporary
    /// directory and renamed, so a copy cut short is never taken for a whole one. Returns
    /// true when it copied.
    pub fn put_tree(&self, local: &Path, skip: &[&str], path: &str) -> Result<bool, SshError> {
        if self.run(&format!("test -d {}", quote(path)))?.code == Some(0) {
            return Ok(false);
        }
        let tar = std::process::Command::new("tar")
            .arg("-C")
            .arg(local)
            .args(skip.iter().map(|s| format!("--exclude=./{s}")))
            .args(["-cf", "-", "."])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| self.failed("tar", e.to_string()))?;
        let mut tar = KillOnDrop(tar);
        let stdout = tar.0.stdout.take().expect("piped");
        let p = quote(path);
        let script = format!(
            "t={p}.part.$$; rm -rf \"$t\"; mkdir -p \"$t\" && tar -C \"$t\" -xf - && {{ mv -T \"$t\" {p} 2>/dev/null || {{ rm -rf \"$t\"; test -d {p}; }}; }}"
        );
        let st = self
            .rt
            .block_on(async {
                self.command(&script)
                    .stdin(Stdio::from(stdout))
                    .stdout(Stdio::null())
                    .status()
                    .await
            })
            .map_err(|e| self.failed(&script, e.to_string()))?;
        let local_ok = tar.0.wait().map(|s| s.success()).unwrap_or(false);
        if !st.success() || !local_ok {
            return Err(self.failed(
                &script,
                format!("copy of {} ended with {st}", local.display()),
            ));
        }
        Ok(true)
    }

    /// Copies `path` on the host to `local` (replaced whole); false when it is not there.
    pub fn get(&self, path: &str, local: &Path) -> Result<bool, SshError> {
        self.rt
            .block_on(fetch(
                self.session.clone(),
                self.env.clone(),
                path.to_string(),
                local.to_path_buf(),
            ))
            .map_err(|e| self.failed(&format!("cat {path}"), e))
    }

    /// Starts a script whose stdout and stderr go to local files, for as long as it runs
    /// (a worker in the foreground of its session). When it ends, `copy_back` (a file on
    /// the host, its place here) is copied before the end is reported: a worker that dies
    /// has its log here at once.
    pub fn spawn(
        &self,
        script: &str,
        stdout: File,
        stderr: File,
        copy_back: Option<(String, PathBuf)>,
    ) -> Result<RemoteChild, SshError> {
        let child = self
            .rt
            .block_on(async {
                self.command(script)
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(stdout))
                    .stderr(Stdio::from(stderr))
                    .spawn()
                    .await
            })
            .map_err(|e| self.failed(script, e.to_string()))?;
        let ended: Arc<Mutex<Option<Result<ExitStatus, String>>>> = Arc::default();
        let slot = ended.clone();
        let (session, env) = (self.session.clone(), self.env.clone());
        self.rt.spawn(async move {
            let r = child.wait().await.map_err(|e| e.to_string());
            if let Some((path, local)) = copy_back {
                if let Err(e) = fetch(session, env, path.clone(), local).await {
                    tracing::warn!("copying {path} back at its worker's end: {e}");
                }
            }
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        });
        Ok(RemoteChild { ended })
    }

    /// Closes the control master.
    pub fn close(self) {
        match Arc::try_unwrap(self.session) {
            Ok(session) => {
                let _ = self.rt.block_on(session.close());
            }
            Err(shared) => Remote::exit_master(&shared),
        }
    }

    /// Ends the control master whoever still holds this host: `ssh -O exit` on its socket
    /// (`Session::close` needs the only handle, and node and worker handles outlive the
    /// teardown). Commands still running on it end with it.
    pub fn end_master(&self) {
        Remote::exit_master(&self.session);
    }

    fn exit_master(session: &Session) {
        let _ = std::process::Command::new("ssh")
            .arg("-S")
            .arg(session.control_socket())
            .args(["-O", "exit", "kmh-master"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A script running on a host with its session open.
pub struct RemoteChild {
    ended: Arc<Mutex<Option<Result<ExitStatus, String>>>>,
}

impl RemoteChild {
    /// How it ended (`None` while it runs): its exit status as the host reported it, or why
    /// the session broke.
    pub fn ended(&self) -> Option<Result<ExitStatus, String>> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits up to `limit` for it to end.
    pub fn wait(&self, limit: Duration) -> Option<Result<ExitStatus, String>> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(r) = self.ended() {
                return Some(r);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Copies `path` on a host to `local` through a temporary file of its own (two copies of
/// one log may run at once: at a worker's end and at collection); false when it is not
/// there.
async fn fetch(
    session: Arc<Session>,
    env: Vec<String>,
    path: String,
    local: PathBuf,
) -> Result<bool, String> {
    static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let part = local.with_extension(format!("part{n}"));
    let file = File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
    let script = format!("test -f {p} || exit 3; cat {p}", p = quote(&path));
    let mut c = session.arc_command("env");
    c.args(&env).arg("sh").arg("-c").arg(&script);
    let st = c
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::null())
        .status()
        .await;
    let r = match st {
        Ok(st) if st.code() == Some(0) => std::fs::rename(&part, &local)
            .map(|_| true)
            .map_err(|e| e.to_string()),
        Ok(st) if st.code() == Some(3) => Ok(false),
        Ok(st) => Err(format!("{st}")),
        Err(e) => Err(e.to_string()),
    };
    let _ = std::fs::remove_file(&part);
    r
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The SHA-256 of a directory's files (names and contents, in name order) but those under
/// the top-level directories `skip`, hex: the name of its copy on every host.
pub fn tree_hash(dir: &Path, skip: &[&str]) -> std::io::Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if d == dir && skip.iter().any(|s| e.file_name() == *s) {
                continue;
            }
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let mut h = openssl::sha::Sha256::new();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update(&[0]);
        h.update(&std::fs::read(&f)?);
    }
    Ok(hex(&h.finish()))
}

/// The SHA-256 of one file, hex.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut h = openssl::sha::Sha256::new();
    h.update(&std::fs::read(path)?);
    Ok(hex(&h.finish()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every host of a run, connected: node hosts and worker hosts.
pub struct Hosts {
    /// The inventory they came from.
    pub inventory: Inventory,
    /// By address.
    pub by_address: BTreeMap<Ipv4Addr, Arc<Remote>>,
    /// Node name → host.
    pub placement: BTreeMap<String, Ipv4Addr>,
    /// The run id.
    pub run_id: String,
    /// Where the distribution is on every host (`DIR/dist/<hash>`), once installed.
    pub dist_home: String,
    /// The worker binary on every worker host, once installed.
    pub worker_binary: String,
    /// Seconds each host took to get the distribution and the worker (0 when it had them).
    pub copy_secs: BTreeMap<Ipv4Addr, f64>,
    /// The class data sharing archives (`cluster::cds` kinds) each node host has for the
    /// distribution, once made ([`Hosts::make_class_archives`]).
    pub archives: BTreeMap<Ipv4Addr, Vec<&'static str>>,
}

impl Hosts {
    /// Connects to every host of the placement and of `inv.workers`, in parallel.
    pub fn connect(
        inv: &Inventory,
        placement: BTreeMap<String, Ipv4Addr>,
        run_id: &str,
    ) -> Result<Hosts, HarnessError> {
        Hosts::connect_within(inv, placement, run_id, Duration::ZERO)
    }

    /// [`Hosts::connect`], trying each host again until `boot` has passed: instances just
    /// launched answer SSH a while after they are running (the ec2 backend).
    pub fn connect_within(
        inv: &Inventory,
        placement: BTreeMap<String, Ipv4Addr>,
        run_id: &str,
        boot: Duration,
    ) -> Result<Hosts, HarnessError> {
        let deadline = std::time::Instant::now() + boot;
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("kmh-ssh")
                .build()?,
        );
        let mut addresses: Vec<Ipv4Addr> = placement.values().copied().collect();
        addresses.extend(inv.workers.iter().copied());
        addresses.sort();
        addresses.dedup();
        let control = control_dir(run_id);
        let results: Vec<Result<Remote, SshError>> = std::thread::scope(|s| {
            let handles: Vec<_> = addresses
                .iter()
                .map(|a| {
                    let rt = rt.clone();
                    let control = &control;
                    s.spawn(move || loop {
                        match Remote::connect(inv, *a, control, rt.clone()) {
                            Err(_) if std::time::Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_secs(2))
                            }
                            r => break r,
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("connecting does not panic"))
                .collect()
        });
        let mut by_address = BTreeMap::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(remote) => {
                    by_address.insert(remote.address, Arc::new(remote));
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(SshError::NotReady(errors).into());
        }
        Ok(Hosts {
            inventory: inv.clone(),
            by_address,
            placement,
            run_id: run_id.to_string(),
            dist_home: String::new(),
            worker_binary: String::new(),
            copy_secs: BTreeMap::new(),
            archives: BTreeMap::new(),
        })
    }

    /// The host of a node.
    pub fn of(&self, node: &str) -> Option<&Arc<Remote>> {
        self.placement
            .get(node)
            .and_then(|a| self.by_address.get(a))
    }

    /// The worker hosts, in the inventory's order.
    pub fn worker_hosts(&self) -> Vec<Arc<Remote>> {
        self.inventory
            .workers
            .iter()
            .filter_map(|a| self.by_address.get(a).cloned())
            .collect()
    }

    /// The run's directory on a host.
    pub fn run_dir(&self) -> String {
        format!("{}/runs/{}", self.inventory.dir, self.run_id)
    }

    /// Checks every host before anything starts and says everything that is missing:
    /// java on node hosts, iptables and tc where the scenario has network faults, the
    /// ports nodes listen on free, room on disk for the distribution, the base directory
    /// writable.
    pub fn preflight(&self, network_faults: bool) -> Result<(), HarnessError> {
        let java = quote(&self.inventory.java);
        let dir = quote(&self.inventory.dir);
        let checks: Vec<(Ipv4Addr, String)> = self
            .by_address
            .keys()
            .map(|a| {
                let node = self.placement.iter().find(|(_, h)| *h == a).map(|(n, _)| n);
                let mut script = format!(
                    "mkdir -p {dir} 2>/dev/null && test -w {dir} || echo \"cannot write {}\"\n\
                     avail=$(df -Pk {dir} 2>/dev/null | awk 'NR==2 {{print $4}}'); \
                     [ \"${{avail:-0}}\" -ge 524288 ] || echo \"less than 512 MiB free under {}\"\n",
                    self.inventory.dir, self.inventory.dir
                );
                if node.is_some() {
                    script.push_str(&format!(
                        "command -v {java} >/dev/null 2>&1 || echo \"no {} (Java 17 or later)\"\n\
                         for p in 2181 2888 3888 9092; do \
                         if command -v ss >/dev/null 2>&1 && ss -Htln \"sport = :$p\" | grep -q .; then echo \"port $p is in use\"; fi; done\n",
                        self.inventory.java
                    ));
                    if network_faults {
                        script.push_str(
                            "command -v iptables >/dev/null 2>&1 || echo \"no iptables (network faults)\"\n\
                             command -v tc >/dev/null 2>&1 || echo \"no tc, iproute2 (network faults)\"\n\
                             [ \"$(id -u)\" = 0 ] || echo \"not root (network faults need iptables)\"\n",
                        );
                    }
                } else {
                    script.push_str(
                        "[ \"$(uname -m)\" = x86_64 ] || echo \"the worker binary is built for x86_64, not $(uname -m)\"\n",
                    );
                }
                (*a, script)
            })
            .collect();
        let mut problems = Vec::new();
        for (a, script) in checks {
            let remote = &self.by_address[&a];
            match remote.run(&script) {
                Ok(o) => {
                    for line in o.stdout.lines().filter(|l| !l.trim().is_empty()) {
                        problems.push(format!("{}: {line}", remote.login));
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SshError::NotReady(problems).into())
        }
    }

    /// Copies the distribution to the node hosts and the worker binary to the worker hosts,
    /// each only where that content is not there yet; makes the run's directories.
    pub fn install(&mut self, dist: &Path, worker: &Path) -> Result<(), HarnessError> {
        // the class archives are this machine's (its paths): each host makes its own
        let dist_hash = tree_hash(dist, &[cds::DIR])?;
        let worker_hash = file_hash(worker)?;
        self.dist_home = format!("{}/dist/{dist_hash}", self.inventory.dir);
        self.worker_binary = format!("{}/bin/{worker_hash}/worker", self.inventory.dir);
        let node_hosts: Vec<Ipv4Addr> = self.placement.values().copied().collect();
        let worker_hosts = self.inventory.workers.clone();
        let run_dir = self.run_dir();
        let results: Vec<(Ipv4Addr, Result<f64, SshError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .by_address
                .iter()
                .map(|(a, remote)| {
                    let (dist_home, worker_binary) = (&self.dist_home, &self.worker_binary);
                    let (nodes, workers, run_dir) = (&node_hosts, &worker_hosts, &run_dir);
                    s.spawn(move || {
                        let started = std::time::Instant::now();
                        let mut copied = false;
                        let r = (|| {
                            remote.sh(&format!(
                                "mkdir -p {}/nodes {}/workers",
                                quote(run_dir),
                                quote(run_dir)
                            ))?;
                            if nodes.contains(a) {
                                copied |= remote.put_tree(dist, &[cds::DIR], dist_home)?;
                            }
                            if workers.contains(a) {
                                let present = remote
                                    .run(&format!("test -x {}", quote(worker_binary)))?
                                    .code
                                    == Some(0);
                                if !present {
                                    let data = std::fs::read(worker).map_err(|e| {
                                        remote.failed("read the worker binary", e.to_string())
                                    })?;
                                    remote.put(&data, worker_binary)?;
                                    remote.sh(&format!("chmod 755 {}", quote(worker_binary)))?;
                                    copied = true;
                                }
                            }
                            Ok::<_, SshError>(())
                        })();
                        let secs = if copied {
                            started.elapsed().as_secs_f64()
                        } else {
                            0.0
                        };
                        (*a, r.map(|_| secs))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("installing does not panic"))
                .collect()
        });
        let mut errors = Vec::new();
        for (a, r) in results {
            match r {
                Ok(secs) => {
                    self.copy_secs.insert(a, secs);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(SshError::NotReady(errors).into());
        }
        Ok(())
    }

    /// Makes each node host's class data sharing archives for the installed distribution
    /// from the class lists this machine's archives were dumped from (`cluster::cds`), one
    /// host after another — hosts that share a disk find the first one's — and records
    /// which each host has. Returns what it made (`ADDRESS KIND SECONDS`). An archive that
    /// cannot be made is a warning: the nodes there start without one, only slower.
    ///
    /// Why: a JVM that maps one starts a node in about half the CPU time, and a JDK 17
    /// archive is valid only for the classpath it was dumped with, which differs on a host.
    pub fn make_class_archives(&mut self, dist: &Distribution) -> Vec<String> {
        let mut made = Vec::new();
        let node_hosts: std::collections::BTreeSet<Ipv4Addr> =
            self.placement.values().copied().collect();
        for a in node_hosts {
            let Some(remote) = self.by_address.get(&a) else {
                continue;
            };
            let mut kinds = Vec::new();
            for kind in cds::KINDS {
                let local = cds::ClassArchive::of(dist, kind);
                let Some(list) = local.kept_class_list() else {
                    continue;
                };
                let started = std::time::Instant::now();
                let made_here = (|| {
                    let archive = cds::host_archive(&self.dist_home, kind);
                    if remote.run(&format!("test -s {}", quote(&archive)))?.code == Some(0) {
                        return Ok(false);
                    }
                    let data = std::fs::read(list)
                        .map_err(|e| remote.failed("read the class list", e.to_string()))?;
                    remote.put(&data, &cds::host_class_list(&self.dist_home, kind))?;
                    remote.sh(&cds::host_dump_script(
                        &self.inventory.java,
                        &self.dist_home,
                        kind,
                    ))?;
                    Ok::<bool, SshError>(true)
                })();
                match made_here {
                    Ok(dumped) => {
                        kinds.push(kind);
                        if dumped {
                            made.push(format!(
                                "{a} {kind} {:.1}s",
                                started.elapsed().as_secs_f64()
                            ));
                        }
                    }
                    Err(e) => tracing::warn!(
                        "{}: no {kind} class archive (its nodes start without one): {e}",
                        remote.login
                    ),
                }
            }
            self.archives.insert(a, kinds);
        }
        made
    }

    /// Brings back what the run left on the hosts (node logs into `nodes/<node>/`, worker
    /// logs are the workers' own business), kills its processes there, removes its network
    /// chain and its directory, and closes the masters. Every step is tried on every host.
    pub fn teardown(&mut self, chain: Option<&str>) {
        for remote in self.by_address.values() {
            let _ = remote.run(&remove_script(&self.run_id, &self.run_dir(), chain));
        }
        // nodes and workers still hold their host (an `Arc` each) until they drop: the
        // masters are ended on their sockets, not by the last handle
        for (_, remote) in std::mem::take(&mut self.by_address) {
            remote.end_master();
        }
        let _ = std::fs::remove_dir_all(control_dir(&self.run_id));
    }
}

impl Drop for Hosts {
    /// A run that fails before its cluster exists (a host not ready, a copy cut short)
    /// still leaves nothing on its hosts nor control sockets here.
    fn drop(&mut self) {
        if !self.by_address.is_empty() {
            self.teardown(None);
        }
        let _ = std::fs::remove_dir_all(control_dir(&self.run_id));
    }
}

/// A `pgrep -f` pattern (POSIX ERE) for the run's processes on a host: the tag as a node
/// (`-Dkmh.run=ID`, `sh run.sh kmh.run=ID`) or a worker (`--tag kmh.run=ID`) carries it,
/// never after a `/`. Two things it must not match: the script holding it (`kmh[.]run`
/// is not its own text), so a `pkill` does not kill the shell it runs in; and this run's
/// own SSH control masters, whose socket paths are `/tmp/kmh.run=ID/…` — on a host that
/// is also the coordinator (a test's namespaces share one process table) a host-side
/// `pkill` would end them under the run's feet. They are ended by [`Remote::end_master`].
fn tag_pattern(run_id: &str) -> String {
    format!("[^/]{}", tag_word(run_id))
}

/// The tag as a pattern that does not match its own text.
fn tag_word(run_id: &str) -> String {
    format!("kmh[.]run={run_id}")
}

/// What removes a run from a host: its processes (by tag), its fault chain and qdiscs, its
/// directory.
pub fn remove_script(run_id: &str, run_dir: &str, chain: Option<&str>) -> String {
    let mut s = format!(
        "pkill -KILL -f {tag} 2>/dev/null; sleep 0.2; pkill -KILL -f {tag} 2>/dev/null; ",
        tag = quote(&tag_pattern(run_id))
    );
    if let Some(chain) = chain {
        let c = quote(chain);
        s.push_str(&format!(
            "if command -v iptables >/dev/null 2>&1; then \
             while iptables -w -S INPUT | grep -q -- \"-j {c}$\"; do iptables -w -S INPUT | grep -- \"-j {c}$\" | head -1 | sed 's/^-A/-D/' | xargs iptables -w; done; \
             while iptables -w -S OUTPUT | grep -q -- \"-j {c}$\"; do iptables -w -S OUTPUT | grep -- \"-j {c}$\" | head -1 | sed 's/^-A/-D/' | xargs iptables -w; done; \
             iptables -w -F {c} 2>/dev/null; iptables -w -X {c} 2>/dev/null; fi; "
        ));
    }
    // A node's wrapper shell writes its `exit` file when its JVM dies, and a killed JVM's
    // last writes may still land: a single `rm -rf` racing them fails on a directory that
    // filled again ("Directory not empty") and leaves the run's tree. Removed until gone.
    s.push_str(&format!(
        "for _ in 1 2 3 4 5 6 7 8 9 10; do rm -rf {d} 2>/dev/null; [ -e {d} ] || break; sleep 0.3; done; true",
        d = quote(run_dir)
    ));
    s
}

/// `harness cleanup` for a run on SSH hosts (its run.json keeps the inventory and the
/// node addresses): on every host, asks the run's workers to stop (they flush their logs),
/// copies back the worker and node logs, then kills what is left of the run, removes its
/// fault chain and its directory. Returns what it did, a line each.
pub fn cleanup(
    run_dir: &Path,
    run_id: &str,
    inv: &Inventory,
    node_addresses: &[Ipv4Addr],
) -> Result<Vec<String>, HarnessError> {
    let mut addresses = node_addresses.to_vec();
    addresses.extend(inv.workers.iter().copied());
    addresses.sort();
    addresses.dedup();
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?,
    );
    // a master of its own (the coordinator's may be gone with it)
    let own = format!("cleanup-{}", std::process::id());
    let control = control_dir(&own);
    let remote_run = format!("{}/runs/{run_id}", inv.dir);
    let chain = format!("KMH-{}", crate::cluster::netns::run_tag(run_id));
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for a in addresses {
        let remote = match Remote::connect(inv, a, &control, rt.clone()) {
            Ok(r) => r,
            Err(e) => {
                failed.push(e.to_string());
                continue;
            }
        };
        let workers = quote(&format!("--tag {}", tag_word(run_id)));
        let _ = remote.run(&format!(
            "pkill -TERM -f -- {workers} 2>/dev/null; i=0; while pgrep -f -- {workers} >/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done"
        ));
        let listing = remote
            .run(&format!(
                "cd {} 2>/dev/null && ls workers/*.log nodes/*/server.log nodes/*/console.log 2>/dev/null",
                quote(&remote_run)
            ))
            .map(|o| o.stdout)
            .unwrap_or_default();
        for rel in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let local = match rel.strip_prefix("workers/") {
                Some(log) => run_dir.join("logs").join(log),
                None => run_dir.join(rel),
            };
            if let Some(parent) = local.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            match remote.get(&format!("{remote_run}/{rel}"), &local) {
                Ok(true) => done.push(format!(
                    "copied {rel} from {} to {}",
                    remote.login,
                    local.display()
                )),
                Ok(false) => {}
                Err(e) => failed.push(e.to_string()),
            }
        }
        match remote.run(&remove_script(run_id, &remote_run, Some(&chain))) {
            Ok(_) => done.push(format!(
                "removed run {run_id} from {} (processes, fault rules, {remote_run})",
                remote.login
            )),
            Err(e) => failed.push(e.to_string()),
        }
        remote.close();
    }
    let _ = std::fs::remove_dir_all(&control);
    // the killed coordinator's control sockets (its masters die with its other processes)
    let _ = std::fs::remove_dir_all(control_dir(run_id));
    if failed.is_empty() {
        Ok(done)
    } else {
        Err(SshError::NotReady(failed).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `pgrep -f` would match (POSIX ERE, as grep -E reads it).
    fn matches(pattern: &str, command_line: &str) -> bool {
        let mut grep = std::process::Command::new("grep")
            .args(["-qE", "--", pattern])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("grep");
        std::io::Write::write_all(grep.stdin.as_mut().unwrap(), command_line.as_bytes()).unwrap();
        drop(grep.stdin.take());
        grep.wait().unwrap().success()
    }

    #[test]
    fn a_distributions_hash_is_its_content_but_not_its_class_archives() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("libs")).unwrap();
        std::fs::create_dir_all(d.path().join(cds::DIR)).unwrap();
        std::fs::write(d.path().join("libs/a.jar"), b"a").unwrap();
        let first = tree_hash(d.path(), &[cds::DIR]).unwrap();
        // an archive made here since: the hosts' copy stays the same
        std::fs::write(d.path().join(cds::DIR).join("broker.jsa"), b"archive").unwrap();
        assert_eq!(tree_hash(d.path(), &[cds::DIR]).unwrap(), first);
        assert_ne!(tree_hash(d.path(), &[]).unwrap(), first);
        // a jar changed: another copy
        std::fs::write(d.path().join("libs/a.jar"), b"b").unwrap();
        assert_ne!(tree_hash(d.path(), &[cds::DIR]).unwrap(), first);
        // only the top level's directory of that name is skipped
        std::fs::write(d.path().join("libs/a.jar"), b"a").unwrap();
        std::fs::create_dir_all(d.path().join("libs").join(cds::DIR)).unwrap();
        std::fs::write(d.path().join("libs").join(cds::DIR).join("x"), b"x").unwrap();
        assert_ne!(tree_hash(d.path(), &[cds::DIR]).unwrap(), first);
    }

    #[test]
    fn a_host_dumps_its_archive_once_from_the_kept_list_into_place() {
        let script = cds::host_dump_script("/opt/jdk 17/bin/java", "/var/kmh/dist/ab", "broker");
        assert!(
            script.starts_with("test -s /var/kmh/dist/ab/cds/broker.jsa && exit 0;"),
            "{script}"
        );
        assert!(
            script.contains("'/opt/jdk 17/bin/java' -Xshare:dump"),
            "{script}"
        );
        assert!(
            script.contains("-XX:SharedClassListFile=/var/kmh/dist/ab/cds/broker.classes"),
            "{script}"
        );
        assert!(script.contains("-cp '/var/kmh/dist/ab/libs/*'"), "{script}");
        assert!(
            script.contains("&& mv -f \"$t\" /var/kmh/dist/ab/cds/broker.jsa"),
            "{script}"
        );
    }

    #[test]
    fn the_host_side_tag_matches_nodes_and_workers_but_not_the_runs_own_masters() {
        let p = tag_pattern("r1");
        for ours in [
            "java -Xmx512m -Dkmh.run=r1 -cp libs/* kafka.Kafka server.properties",
            "sh run.sh kmh.run=r1",
            "/opt/kmh/bin/worker produce --config w.json --tag kmh.run=r1",
        ] {
            assert!(matches(&p, ours), "{ours}");
        }
        for not_ours in [
            // the coordinator's control master, on a host that is also the coordinator
            "ssh -E /tmp/kmh.run=r1/.ssh-connectionAbC/log -S /tmp/kmh.run=r1/.ssh-connectionAbC/master -M -f -N 10.1.0.2",
            // the removal script itself
            &remove_script("r1", "/srv/kmh/runs/r1", None),
            "java -Dkmh.run=r2 kafka.Kafka",
        ] {
            assert!(!matches(&p, not_ours), "{not_ours}");
        }
        let w = format!("--tag {}", tag_word("r1"));
        assert!(matches(
            &w,
            "worker consume --config c.json --tag kmh.run=r1"
        ));
        assert!(!matches(&w, &format!("sh -c pkill -f -- '{w}'")));
    }
}
