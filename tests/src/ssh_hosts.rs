//! A test's own SSH hosts: network namespaces on a bridge of their own, each with a real
//! OpenSSH server (Debian's `openssh-server`) on its address, host and user keys made for
//! the test — so that the ssh backend runs for real: SSH, copies, JVMs, faults, logs. The
//! namespaces share this machine's disk and process table; every host is nevertheless
//! reached only over SSH by the harness. Root's login shell there is `/bin/sh` (an `/etc`
//! overlay of the namespace: [`passwd_with_plain_root_shell`] says why). All of it goes away
//! on drop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A set of SSH hosts made for one test.
pub struct SshHosts {
    /// Keys, sshd config, the inventory.
    pub dir: PathBuf,
    /// Node hosts' addresses (in order).
    pub nodes: Vec<Ipv4Addr>,
    /// Worker hosts' addresses.
    pub workers: Vec<Ipv4Addr>,
    /// The user key.
    pub key: PathBuf,
    /// The inventory file written for them.
    pub inventory: PathBuf,
    tag: String,
    bridge: String,
    made: Vec<Host>,
    forward_rule: Vec<String>,
    subnet: u8,
}

/// One host: its namespace, its end of the bridge, its sshd.
struct Host {
    ns: String,
    veth: String,
    sshd: Option<Child>,
}

impl Host {
    /// Takes the host away: its sshd, everything running in it (a session's shell, a JVM),
    /// its link, its namespace and its `/etc` overlay.
    fn take_down(&mut self) {
        if let Some(c) = &mut self.sshd {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(pids) = run(&["ip", "netns", "pids", &self.ns]) {
            for p in pids.split_whitespace() {
                let _ = run(&["kill", "-9", p]);
            }
        }
        let _ = run(&["ip", "link", "del", &self.veth]);
        let _ = run(&["ip", "netns", "del", &self.ns]);
        let _ = std::fs::remove_dir_all(etc_overlay(&self.ns));
    }
}

/// The files `ip netns exec NS` puts over this machine's `/etc` for what runs in the
/// namespace (iproute2's per-namespace configuration).
fn etc_overlay(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// This machine's `/etc/passwd` with root's login shell made `/bin/sh`, for the hosts.
///
/// Why: sshd runs every command through the user's login shell, and bash run by sshd reads
/// `~/.bashrc` even for `bash -c` — on this machine, root's runs pyenv's init: 140 ms of
/// each of the hundreds of commands a run sends a host (measured 2026-12: 150 ms a command
/// with bash, 15 ms with sh; the KRaft roll on SSH hosts took twice the local one's time).
/// A host's service account with a plain shell is what the harness expects anyway: it
/// runs its scripts under `sh -c` itself and needs nothing from a login shell.
fn passwd_with_plain_root_shell() -> Result<String, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    Ok(passwd
        .lines()
        .map(
            |l| match l.strip_prefix("root:").and_then(|r| r.rsplit_once(':')) {
                Some((fields, _shell)) => format!("root:{fields}:/bin/sh"),
                None => l.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The libfaketime preload library (Debian `faketime`): a worker host whose clock is ahead.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

impl SshHosts {
    /// Makes `nodes` node hosts and `workers` worker hosts; `env` adds environment per
    /// worker host index (the inventory's `env`), e.g. libfaketime to skew its clock.
    /// Without root, sshd or ssh-keygen the test is NOT RUN (it fails saying so).
    pub fn start(nodes: usize, workers: usize, env: &[(usize, &[(&str, &str)])]) -> SshHosts {
        crate::require_root();
        for (tool, pkg) in [
            ("/usr/sbin/sshd", "openssh-server"),
            ("/usr/bin/ssh-keygen", "openssh-client"),
        ] {
            assert!(
                Path::new(tool).exists(),
                "NOT RUN: no {tool} (apt-get install {pkg})"
            );
        }
        // two tests of one binary may make hosts at once (two cluster slots): the tag, the
        // directory and the subnet's seed differ per set, not only per process
        static SETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let set = SETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{:04x}", pid.wrapping_mul(16).wrapping_add(set) & 0xffff);
        let dir = std::env::temp_dir().join(format!("kmh-ssh-hosts-{pid}-{set}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut hosts = SshHosts {
            dir: dir.clone(),
            nodes: Vec::new(),
            workers: Vec::new(),
            key: dir.join("id_ed25519"),
            inventory: dir.join("hosts.toml"),
            tag: tag.clone(),
            bridge: format!("kmhs{tag}"),
            made: Vec::new(),
            forward_rule: Vec::new(),
            subnet: 0,
        };
        // on failure, drop() removes what was made
        hosts.build(nodes, workers, env).unwrap_or_else(|e| {
            panic!("making the test's SSH hosts: {e}");
        });
        hosts
    }

    fn build(
        &mut self,
        nodes: usize,
        workers: usize,
        env: &[(usize, &[(&str, &str)])],
    ) -> Result<(), String> {
        let b = self.bridge_up()?;
        for i in 0..nodes + workers {
            let addr = Ipv4Addr::new(10, 251, b, 20 + i as u8);
            self.add_host(addr)?;
            if i < nodes {
                self.nodes.push(addr);
            } else {
                self.workers.push(addr);
            }
        }
        let env: BTreeMap<Ipv4Addr, Vec<(String, String)>> = env
            .iter()
            .map(|(i, kv)| {
                (
                    self.workers[*i],
                    kv.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect();
        self.write_inventory(&env);
        Ok(())
    }

    /// The /24 the hosts live in, `10.251.B.0/24`.
    pub fn cidr(&self) -> String {
        format!("10.251.{}.0/24", self.subnet)
    }

    fn bridge_up(&mut self) -> Result<u8, String> {
        let dir = self.dir.clone();
        let d = |f: &str| dir.join(f).display().to_string();
        for key in ["id_ed25519", "host_key"] {
            run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", &d(key)])?;
        }
        std::fs::copy(dir.join("id_ed25519.pub"), dir.join("authorized_keys"))
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all("/run/sshd").map_err(|e| e.to_string())?;
        // a /24 no route of this machine uses
        let routes =
            run(&["ip", "-4", "route", "show", "table", "all"])? + &run(&["ip", "-4", "addr"])?;
        let seed = u32::from_str_radix(&self.tag, 16).unwrap_or(0);
        let b = (0..250u32)
            .map(|i| ((seed + i * 37) % 250) as u8)
            .find(|b| !routes.contains(&format!("10.251.{b}.")))
            .ok_or("no free 10.251.x.0/24")?;
        self.subnet = b;
        let gateway = format!("10.251.{b}.1");
        run(&["ip", "link", "add", &self.bridge, "type", "bridge"])?;
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{gateway}/24"),
            "dev",
            &self.bridge,
        ])?;
        run(&["ip", "link", "set", &self.bridge, "up"])?;
        // bridged traffic may meet the FORWARD chain (dockerd drops it by default)
        let comment = format!("kmh-ssh-hosts-{}", self.tag);
        self.forward_rule = [
            "FORWARD",
            "-i",
            &self.bridge,
            "-o",
            &self.bridge,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            "ACCEPT",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut insert = vec!["iptables", "-w", "-I"];
        insert.extend(self.forward_rule.iter().map(String::as_str));
        run(&insert)?;
        Ok(b)
    }

    /// A host at `addr` (in this set's /24): a namespace on the bridge, sshd on the address,
    /// answering when this returns.
    pub fn add_host(&mut self, addr: Ipv4Addr) -> Result<(), String> {
        let dir = self.dir.clone();
        let d = |f: &str| dir.join(f).display().to_string();
        let i = self.made.len();
        let ns = format!("kmhssh-{}-{i}", self.tag);
        let veth = format!("kmhs{}v{i:02}", self.tag);
        run(&["ip", "netns", "add", &ns])?;
        self.made.push(Host {
            ns: ns.clone(),
            veth: veth.clone(),
            sshd: None,
        });
        let overlay = etc_overlay(&ns);
        std::fs::create_dir_all(&overlay).map_err(|e| format!("{}: {e}", overlay.display()))?;
        std::fs::write(overlay.join("passwd"), passwd_with_plain_root_shell()?)
            .map_err(|e| format!("{}/passwd: {e}", overlay.display()))?;
        run(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        run(&["ip", "link", "set", &veth, "master", &self.bridge])?;
        run(&["ip", "link", "set", &veth, "up"])?;
        let inns = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", ns.as_str()];
            v.extend_from_slice(args);
            run(&v)
        };
        let root = inns(&["getent", "passwd", "root"])?;
        if !root.trim_end().ends_with(":/bin/sh") {
            return Err(format!(
                "{ns}: root's login shell is not /bin/sh through {} ({})",
                overlay.display(),
                root.trim()
            ));
        }
        inns(&["ip", "link", "set", "lo", "up"])?;
        inns(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        inns(&["ip", "link", "set", "eth0", "up"])?;
        let log =
            std::fs::File::create(dir.join(format!("sshd-{i}.log"))).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
                "/dev/null",
            ])
            .args(["-h", &d("host_key")])
            .args(["-o", &format!("ListenAddress={addr}")])
            .args(["-o", "PidFile=none"])
            .args([
                "-o",
                &format!("AuthorizedKeysFile={}", d("authorized_keys")),
            ])
            .args(["-o", "StrictModes=no"])
            .args(["-o", "UsePAM=no"])
            .args(["-o", "PermitRootLogin=prohibit-password"])
            .args(["-o", "PasswordAuthentication=no"])
            .args(["-o", "MaxSessions=100"])
            .args(["-o", "MaxStartups=100"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("sshd: {e}"))?;
        self.made.last_mut().expect("pushed above").sshd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&(addr, 22).into(), Duration::from_millis(200))
            .is_err()
        {
            if Instant::now() > deadline {
                return Err(format!(
                    "sshd on {addr} does not answer; see {}",
                    dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn write_inventory(&self, env: &BTreeMap<Ipv4Addr, Vec<(String, String)>>) {
        let list = |v: &[Ipv4Addr]| {
            v.iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // a host directory that outlives the test: a second run copies nothing
        let cache = crate::repo().join("target").join("kmh-ssh-hosts");
        let mut text = format!(
            "# made by the test's SSH host realiser\nuser = \"root\"\nkey = \"id_ed25519\"\nknown_hosts = \"known_hosts\"\ndir = \"{}\"\nhosts = [{}]\nworkers = [{}]\n",
            cache.display(),
            list(&self.nodes),
            list(&self.workers)
        );
        if !env.is_empty() {
            text.push_str("\n[env]\n");
            for (a, kv) in env {
                let pairs: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = \"{v}\"")).collect();
                let _ = writeln!(text, "\"{a}\" = {{ {} }}", pairs.join(", "));
            }
        }
        std::fs::write(&self.inventory, text).unwrap();
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        for h in &mut self.made {
            h.take_down();
        }
        let _ = run(&["ip", "link", "del", &self.bridge]);
        if !self.forward_rule.is_empty() {
            let mut args = vec!["iptables", "-w", "-D"];
            args.extend(self.forward_rule.iter().map(String::as_str));
            let _ = run(&args);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl SshHosts {
    /// The tag in its namespaces' names.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}
