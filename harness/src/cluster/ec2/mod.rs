//! The ec2 backend: instances the harness launches with aws-sdk-ec2 (or finds by a tag,
//! seed 000's tagged temporary clusters), then exactly the ssh backend on their private
//! addresses. Credentials, region and endpoint come from the standard AWS chain
//! (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`…); `region` in `[cluster.ec2]` wins.
//!
//! Every instance it launches is tagged, at launch (no untagged moment):
//!
//! ```text
//! kmh.run         the run id                 what `harness cleanup --ec2 --run ID` terminates
//! kmh.role        zookeeper | broker | controller | worker
//! kmh.node        the node's name, or worker-N
//! kmh.owner       [cluster.ec2] owner, else $USER
//! kmh.expires-at  launch time + ttl (RFC 3339, UTC): what `harness cleanup --ec2` reaps
//! Name            kmh-<run id>-<node>
//! ```
//!
//! What a run launched is terminated at teardown, when anything fails after the launch, and
//! on Ctrl-C (all three drop the [`Fleet`]); instances found by `reuse` never are. A
//! coordinator killed outright leaves its instances to `harness cleanup --ec2`: by run, or
//! once their expiry has passed.
//!
//! The AWS SDK is the cargo feature `ec2`, on by default (~7 minutes of build here,
//! unoptimised): without it, this module still reads `[cluster.ec2]` and plans (`harness
//! plan`), and a run or an EC2 cleanup says how to build the backend in.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::scenario::ClusterSpec;
pub use crate::scenario::{Ec2Spec, Reuse};

/// One instance of a launch plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    /// `zookeeper`, `broker`, `controller` or `worker`.
    pub role: &'static str,
    /// The node it runs, or `worker-N`.
    pub name: String,
    /// Its instance type.
    pub instance_type: String,
}

/// What a run would launch (`harness plan`), checked against the cost guard.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchPlan {
    /// Instance by instance: the ZooKeeper nodes (a target cluster's ensemble among them),
    /// the brokers (dormant ones too: they need a host when they start), the target
    /// cluster's brokers, the dedicated KRaft controllers, then the worker hosts.
    pub instances: Vec<Planned>,
    /// The guard.
    pub max_instances: usize,
    /// Instances are found by this tag instead (nothing is launched).
    pub reuse: Option<String>,
}

impl LaunchPlan {
    /// The plan of a cluster on the ec2 backend; more instances than the guard allows is
    /// bad input.
    pub fn of(spec: &ClusterSpec, ec2: &Ec2Spec) -> Result<LaunchPlan, HarnessError> {
        let mut instances = Vec::new();
        for n in &spec.zookeeper {
            instances.push(Planned {
                role: "zookeeper",
                name: n.clone(),
                instance_type: ec2
                    .zookeeper_type
                    .clone()
                    .unwrap_or(ec2.instance_type.clone()),
            });
        }
        for n in &spec.brokers {
            instances.push(Planned {
                role: "broker",
                name: n.clone(),
                instance_type: ec2.instance_type.clone(),
            });
        }
        // MirrorMaker 2's target ([cluster.target]): its brokers are nodes of the run like
        // the others, each on an instance of its own (MirrorMaker runs on the coordinator's
        // host, as on the ssh backend)
        for n in spec.target_brokers() {
            instances.push(Planned {
                role: "target-broker",
                name: n.clone(),
                instance_type: ec2.instance_type.clone(),
            });
        }
        // a KRaft cluster's dedicated controllers (combined nodes are among the brokers)
        for n in spec.dedicated_controllers() {
            instances.push(Planned {
                role: "controller",
                name: n.clone(),
                instance_type: ec2.instance_type.clone(),
            });
        }
        for i in 0..ec2.workers {
            instances.push(Planned {
                role: "worker",
                name: format!("worker-{i}"),
                instance_type: ec2.worker_type.clone().unwrap_or(ec2.instance_type.clone()),
            });
        }
        if instances.len() > ec2.max_instances {
            return Err(HarnessError::BadInput(format!(
                "[cluster.ec2]: this run needs {} instances ({} ZooKeeper, {} brokers, {} KRaft controllers, {} worker hosts) and max_instances = {}\n  hint: raise max_instances if the cost is meant, or make the cluster smaller; `harness plan SCENARIO` prints what would be launched",
                instances.len(),
                spec.zookeeper.len(),
                spec.brokers.len() + spec.target_brokers().count(),
                spec.dedicated_controllers().count(),
                ec2.workers,
                ec2.max_instances
            )));
        }
        Ok(LaunchPlan {
            instances,
            max_instances: ec2.max_instances,
            reuse: ec2.reuse.as_ref().map(|r| r.tag.clone()),
        })
    }
}

/// An instance of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// `i-…`.
    pub id: String,
    /// The node it runs, or `worker-N`.
    pub name: String,
    /// Its private address, once it has one.
    pub address: Option<Ipv4Addr>,
}

/// What run.json records of a run's instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ec2Record {
    /// `[cluster.ec2] region`, when given (else the AWS chain's, as at the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Whether the run launched them (else they were reused and stay).
    pub launched: bool,
    /// The instances.
    pub instances: Vec<Instance>,
}

#[cfg(feature = "ec2")]
mod aws;
#[cfg(feature = "ec2")]
pub use aws::{expiry, reap, Api, Described, Fleet};

#[cfg(not(feature = "ec2"))]
mod disabled;
#[cfg(not(feature = "ec2"))]
pub use disabled::{reap, Fleet};

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClusterSpec {
        let mut s = ClusterSpec::live();
        s.zookeeper = vec!["zk1".into()];
        s.brokers = vec!["kafka1".into(), "kafka2".into()];
        s
    }

    fn ec2() -> Ec2Spec {
        toml::from_str("ami = \"ami-1\"\nworkers = 1\nzookeeper_type = \"t3.small\"").unwrap()
    }

    /// Each planned instance's role and node.
    fn roles(p: &LaunchPlan) -> Vec<(&str, &str)> {
        p.instances
            .iter()
            .map(|i| (i.role, i.name.as_str()))
            .collect()
    }

    #[test]
    fn a_plan_lists_every_instance_by_role_with_its_type() {
        let p = LaunchPlan::of(&spec(), &ec2()).unwrap();
        let got: Vec<(&str, &str, &str)> = p
            .instances
            .iter()
            .map(|i| (i.role, i.name.as_str(), i.instance_type.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("zookeeper", "zk1", "t3.small"),
                ("broker", "kafka1", "m6i.large"),
                ("broker", "kafka2", "m6i.large"),
                ("worker", "worker-0", "m6i.large"),
            ]
        );
    }

    #[test]
    fn a_kraft_clusters_plan_gives_each_dedicated_controller_an_instance() {
        let mut s = spec();
        s.zookeeper.clear();
        s.controllers = vec!["ctl1".into(), "ctl2".into(), "kafka2".into()];
        let p = LaunchPlan::of(&s, &ec2()).unwrap();
        assert_eq!(
            roles(&p),
            vec![
                ("broker", "kafka1"),
                ("broker", "kafka2"),
                ("controller", "ctl1"),
                ("controller", "ctl2"),
                ("worker", "worker-0"),
            ]
        );
    }

    #[test]
    fn a_target_clusters_brokers_get_instances_of_their_own() {
        let mut s = spec();
        s.zookeeper.push("tzk1".into());
        s.target = Some(crate::scenario::TargetCluster {
            brokers: vec!["tkafka1".into(), "tkafka2".into()],
            ensemble: "target".into(),
        });
        let p = LaunchPlan::of(&s, &ec2()).unwrap();
        assert_eq!(
            roles(&p),
            vec![
                ("zookeeper", "zk1"),
                ("zookeeper", "tzk1"),
                ("broker", "kafka1"),
                ("broker", "kafka2"),
                ("target-broker", "tkafka1"),
                ("target-broker", "tkafka2"),
                ("worker", "worker-0"),
            ]
        );
        let mut e = ec2();
        e.max_instances = 6;
        let err = LaunchPlan::of(&s, &e).unwrap_err().to_string();
        assert!(
            err.contains("needs 7 instances (2 ZooKeeper, 4 brokers"),
            "{err}"
        );
    }

    #[test]
    fn more_instances_than_the_guard_is_bad_input() {
        let mut e = ec2();
        e.max_instances = 3;
        let err = LaunchPlan::of(&spec(), &e).unwrap_err();
        assert!(matches!(err, HarnessError::BadInput(_)));
        assert!(err.to_string().contains("needs 4 instances"), "{err}");
        assert!(err.to_string().contains("max_instances = 3"), "{err}");
    }
}
