//! A test's own EC2: moto's server (PyPI `moto[server]`) on a free loopback port, seeded
//! with boto3 (a VPC, a subnet on the test's SSH host bridge, a security group, the test's
//! key pair), and a realiser that makes every instance launched there real: a namespace
//! host with its own sshd at the instance's private address ([`SshHosts::add_host`]), so
//! the ec2 backend launches, waits, SSHes, runs and terminates exactly as on AWS. A
//! terminated instance's host stays until the test ends (taking it away at once is not
//! done yet: on these hosts, which share the coordinator's process table, the harness's
//! removal script kills its own ssh session and finishes orphaned — see the closing note
//! of 2026-12-02).
//!
//! Network rule: the harness only ever reaches the endpoint on 127.0.0.1 and addresses in
//! the test's own /24 on its own bridge; the realiser refuses (the test fails) an instance
//! outside it. Every harness started by an ec2 test carries [`Moto::env`]: region, static
//! credentials, no instance metadata service, no shared config — the AWS chain can reach
//! nothing but moto.
//!
//! boto3 is also the test's independent view of EC2: the states and tags asserted are
//! what moto holds, not what the harness says it did. Without moto or boto3 the tests
//! fail with `NOT RUN:`.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ssh_hosts::SshHosts;

/// moto's server, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
}

impl Moto {
    /// Starts moto's server on a free loopback port and waits until it answers.
    pub fn start() -> Moto {
        let ok = Command::new("python3")
            .args(["-c", "import moto.server, boto3, flask"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "NOT RUN: no moto server for python3 (pip install 'moto[server]'; .ci/run does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("kmh-moto-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting moto's server");
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto's server did not answer in 30 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// What every process of the test that speaks to EC2 gets: the endpoint, a region,
    /// static credentials, and nothing else of the AWS chain (no metadata service at
    /// 169.254.169.254, no ~/.aws).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent/kmh-aws-config".into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/kmh-aws-credentials".into(),
            ),
        ]
    }

    /// Sets [`Self::env`] on this test process, so that every child (the harness, its
    /// cleanup in a `RunGuard`) speaks to this moto. Call it with the cluster lock held:
    /// the ec2 tests of a binary take turns.
    pub fn export(&self) {
        for (k, v) in self.env() {
            std::env::set_var(k, v);
        }
    }

    /// Runs `script` with `ec2` (a boto3 client of this moto) in scope; its stdout.
    pub fn python(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3, json, sys, datetime\nec2 = boto3.client('ec2', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n",
            self.endpoint
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(prelude + script)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "boto3 script failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The account as a scenario needs it: a VPC, a subnet on `cidr` (the SSH hosts'
    /// /24), a security group, the key pair `kmh-test` with `public_key`, and an image.
    pub fn seed(&self, cidr: &str, public_key: &str) -> Seeded {
        let out = self.python(&format!(
            r#"
vpc = ec2.create_vpc(CidrBlock='10.251.0.0/16')['Vpc']['VpcId']
sub = ec2.create_subnet(VpcId=vpc, CidrBlock='{cidr}')['Subnet']['SubnetId']
sg = ec2.create_security_group(GroupName='kmh-test', Description='kmh test', VpcId=vpc)['GroupId']
ec2.import_key_pair(KeyName='kmh-test', PublicKeyMaterial={public_key:?}.encode())
ami = ec2.describe_images(Owners=['amazon'])['Images'][0]['ImageId']
print(json.dumps(dict(subnet=sub, sg=sg, ami=ami)))
"#
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        Seeded {
            subnet: v["subnet"].as_str().unwrap().into(),
            security_group: v["sg"].as_str().unwrap().into(),
            ami: v["ami"].as_str().unwrap().into(),
        }
    }

    /// Every instance moto knows (terminated ones too): id → (state, tags).
    pub fn instances(&self) -> Vec<Described> {
        let out = self.python(
            r#"
out = []
for r in ec2.describe_instances()['Reservations']:
    for i in r['Instances']:
        out.append(dict(id=i['InstanceId'], state=i['State']['Name'], ip=i.get('PrivateIpAddress'), tags={t['Key']: t['Value'] for t in i.get('Tags', [])}))
print(json.dumps(out))
"#,
        );
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| Described {
                id: i["id"].as_str().unwrap().into(),
                state: i["state"].as_str().unwrap().into(),
                ip: i["ip"].as_str().map(str::to_string),
                tags: i["tags"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`Moto::seed`] made.
pub struct Seeded {
    /// `subnet-…` on the SSH hosts' /24.
    pub subnet: String,
    /// `sg-…`.
    pub security_group: String,
    /// `ami-…`.
    pub ami: String,
}

/// An instance as moto holds it.
#[derive(Debug, Clone)]
pub struct Described {
    /// `i-…`.
    pub id: String,
    /// `pending`, `running`, `terminated`…
    pub state: String,
    /// Its private address.
    pub ip: Option<String>,
    /// Its tags.
    pub tags: std::collections::BTreeMap<String, String>,
}

/// Makes each instance of moto a real SSH host, until dropped: a host at its private
/// address once it is pending or running.
pub struct Realiser {
    stop: Arc<AtomicBool>,
    watcher: Child,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Realiser {
    /// Watches moto and adds a host to `hosts` for each new instance; every address must be in the
    /// hosts' /24.
    pub fn start(moto: &Moto, hosts: Arc<Mutex<SshHosts>>) -> Realiser {
        let prefix = {
            let h = hosts.lock().unwrap();
            h.cidr().trim_end_matches("0/24").to_string()
        };
        // one line per new instance: its address
        let script = format!(
            r#"
import boto3, time, sys
ec2 = boto3.client('ec2', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')
seen = set()
while True:
    for r in ec2.describe_instances()['Reservations']:
        for i in r['Instances']:
            iid, ip = i['InstanceId'], i.get('PrivateIpAddress')
            if i['State']['Name'] in ('pending', 'running') and ip and iid not in seen:
                seen.add(iid)
                print(ip, flush=True)
    time.sleep(0.2)
"#,
            moto.endpoint
        );
        let mut watcher = Command::new("python3")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let stdout = watcher.stdout.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let ip = line.trim();
                if !ip.starts_with(&prefix) {
                    return Err(format!(
                        "moto gave an instance {ip}, outside the test's hosts ({prefix}0/24): not made, never reached"
                    ));
                }
                let addr: Ipv4Addr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
                hosts.lock().unwrap().add_host(addr)?;
            }
            Ok(())
        });
        Realiser {
            stop,
            watcher,
            thread: Some(thread),
        }
    }

    /// Stops watching; an instance it could not make real fails the test here.
    pub fn finish(mut self) {
        if let Err(e) = self.halt() {
            panic!("the instance realiser: {e}");
        }
    }

    fn halt(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.watcher.kill();
        let _ = self.watcher.wait();
        match self.thread.take() {
            Some(t) => t.join().unwrap_or(Err("panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Realiser {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}
