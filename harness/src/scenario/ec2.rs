//! `[cluster.ec2]` as a scenario gives it: the ec2 backend's instances, login and guard
//! (`cluster::ec2` launches them).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[cluster.ec2]`: what to launch, where, and how to log in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ec2Spec {
    /// The image (a Linux with Java 17 or later, sshd, and iptables/iproute2 for network
    /// faults). Required unless `reuse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    /// Instance type of every instance unless a role has its own.
    #[serde(default = "default_type")]
    pub instance_type: String,
    /// Instance type of ZooKeeper nodes (default `instance_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper_type: Option<String>,
    /// Instance type of worker hosts (default `instance_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_type: Option<String>,
    /// Subnet to launch into (default: the account's default subnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Security groups (ids); they must let this machine reach port 22 and the instances
    /// reach each other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// The EC2 key pair's name, installed for the login user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// The private key of that pair, on this machine (relative to the scenario file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Login user (the image's: `admin` on Debian, `ec2-user` on Amazon Linux, `ubuntu`).
    #[serde(default = "default_user")]
    pub user: String,
    /// Region (default: the AWS chain's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Worker hosts to launch (0: the workers run on this machine).
    #[serde(default)]
    pub workers: usize,
    /// The cost guard: more instances than this in one run is refused before any launch.
    #[serde(default = "default_max_instances")]
    pub max_instances: usize,
    /// How long an instance may live (`kmh.expires-at`), e.g. "4h".
    #[serde(default = "default_ttl")]
    pub ttl: String,
    /// `kmh.owner` (default: $USER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How long instances may take to be running and answer SSH, e.g. "10m".
    #[serde(default = "default_boot_timeout")]
    pub boot_timeout: String,
    /// Where the harness keeps its files on each instance.
    #[serde(default = "default_dir")]
    pub dir: String,
    /// `java` on the instances.
    #[serde(default = "default_java")]
    pub java: String,
    /// Take running instances found by a tag instead of launching: nodes by their
    /// `kmh.node` tag where they have one, else in order of private address (the
    /// ZooKeeper nodes, the brokers, then `workers` worker hosts). Never terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<Reuse>,
}

/// `reuse = { tag = "Key=Value" }` (or `tag = "Key"`: any value).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reuse {
    /// The tag filter.
    pub tag: String,
}

fn default_type() -> String {
    "m6i.large".into()
}
fn default_user() -> String {
    "admin".into()
}
fn default_max_instances() -> usize {
    16
}
fn default_ttl() -> String {
    "4h".into()
}
fn default_boot_timeout() -> String {
    "10m".into()
}
fn default_dir() -> String {
    "/var/tmp/kmh".into()
}
fn default_java() -> String {
    "java".into()
}

impl Ec2Spec {
    /// The ttl as a duration (validated with the scenario).
    pub fn ttl(&self) -> Duration {
        crate::scenario::units::parse_duration(&self.ttl).unwrap_or(Duration::from_secs(4 * 3600))
    }

    /// The boot timeout as a duration (validated with the scenario).
    pub fn boot_timeout(&self) -> Duration {
        crate::scenario::units::parse_duration(&self.boot_timeout)
            .unwrap_or(Duration::from_secs(600))
    }
}
