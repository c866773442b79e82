//! The EC2 API side of the backend (cargo feature `ec2`): launching, waiting, finding by
//! tag, terminating, reaping.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::DisplayErrorContext;
use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ec2::types::{
    Filter, InstanceStateName, InstanceType, ResourceType, Tag, TagSpecification,
};

use super::{Ec2Record, Ec2Spec, Instance, LaunchPlan, Planned, Reuse};
use crate::error::HarnessError;
use crate::scenario::ClusterSpec;

/// A client of the EC2 API on a runtime of its own (the harness is synchronous).
pub struct Api {
    rt: Arc<tokio::runtime::Runtime>,
    client: aws_sdk_ec2::Client,
}

/// An EC2 request failed.
fn api_error(call: &str, e: impl std::error::Error) -> HarnessError {
    HarnessError::Cluster(format!(
        "ec2 {call}: {}\n  hint: credentials, region and endpoint come from the AWS chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL…)",
        DisplayErrorContext(e)
    ))
}

impl Api {
    /// A client from the standard AWS chain (`region` overrides its region).
    pub fn connect(region: Option<&str>) -> Result<Api, HarnessError> {
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .thread_name("kmh-ec2")
                .build()?,
        );
        // rustls on ring: the SDK's default TLS stack (aws-lc) builds a C library with
        // cmake and costs minutes of build; ring is already light and enough here
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        let conf = rt.block_on(loader.load());
        if conf.region().is_none() {
            return Err(HarnessError::Missing {
                what: "no AWS region for the ec2 backend".into(),
                hint: "set AWS_REGION (or a profile's region), or region = \"…\" in [cluster.ec2]"
                    .into(),
            });
        }
        let client = aws_sdk_ec2::Client::new(&conf);
        Ok(Api { rt, client })
    }

    /// Launches one instance with its tags; its id.
    fn launch_one(
        &self,
        ec2: &Ec2Spec,
        p: &Planned,
        tags: &[(String, String)],
    ) -> Result<String, HarnessError> {
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build();
        let req = self
            .client
            .run_instances()
            .set_image_id(ec2.ami.clone())
            .instance_type(InstanceType::from(p.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .set_subnet_id(ec2.subnet.clone())
            .set_security_group_ids(
                (!ec2.security_groups.is_empty()).then(|| ec2.security_groups.clone()),
            )
            .set_key_name(ec2.key_name.clone())
            .tag_specifications(spec);
        let out = self
            .rt
            .block_on(req.send())
            .map_err(|e| api_error("RunInstances", e))?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_string)
            .ok_or_else(|| {
                HarnessError::Cluster("ec2 RunInstances: no instance in the answer".into())
            })
    }

    /// Instances matching `filters` that are not terminated: (id, state, private address,
    /// tags).
    pub fn describe(
        &self,
        filters: Vec<Filter>,
        ids: &[String],
    ) -> Result<Vec<Described>, HarnessError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let req = self
                .client
                .describe_instances()
                .set_filters((!filters.is_empty()).then(|| filters.clone()))
                .set_instance_ids((!ids.is_empty()).then(|| ids.to_vec()))
                .set_next_token(token.take());
            let page = self
                .rt
                .block_on(req.send())
                .map_err(|e| api_error("DescribeInstances", e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    let state = i
                        .state()
                        .and_then(|s| s.name())
                        .cloned()
                        .unwrap_or(InstanceStateName::Pending);
                    out.push(Described {
                        id: i.instance_id().unwrap_or_default().to_string(),
                        state: state.as_str().to_string(),
                        address: i.private_ip_address().and_then(|a| a.parse().ok()),
                        tags: i
                            .tags()
                            .iter()
                            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                            .collect(),
                    });
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Terminates instances (none: nothing).
    pub fn terminate(&self, ids: &[String]) -> Result<(), HarnessError> {
        if ids.is_empty() {
            return Ok(());
        }
        let req = self
            .client
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()));
        self.rt
            .block_on(req.send())
            .map(drop)
            .map_err(|e| api_error("TerminateInstances", e))
    }
}

/// An instance as DescribeInstances tells it.
#[derive(Debug, Clone)]
pub struct Described {
    /// `i-…`.
    pub id: String,
    /// `pending`, `running`, `shutting-down`, `terminated`, `stopping`, `stopped`.
    pub state: String,
    /// Private address.
    pub address: Option<Ipv4Addr>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A tag filter from `Key=Value` or `Key`.
fn tag_filter(tag: &str) -> Filter {
    match tag.split_once('=') {
        Some((k, v)) => Filter::builder().name(format!("tag:{k}")).values(v).build(),
        None => Filter::builder().name("tag-key").values(tag).build(),
    }
}

fn state_filter(states: &[&str]) -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
        .build()
}

/// The run's instances: launched (terminated when the fleet is dropped) or reused.
pub struct Fleet {
    api: Api,
    /// The run id.
    pub run_id: String,
    /// Every instance of the run, nodes first, then worker hosts.
    pub instances: Vec<Instance>,
    /// Whether this run launched them (else they were found by `reuse` and stay).
    pub launched: bool,
    /// The region asked for.
    region: Option<String>,
    terminated: bool,
}

/// `now + ttl` as RFC 3339 (UTC, seconds).
pub fn expiry(ttl: Duration) -> String {
    let at = std::time::SystemTime::now() + ttl;
    DateTime::from(at)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default()
}

impl Fleet {
    /// Launches (or finds) the run's instances, waits until every one is running with a
    /// private address. Whatever was launched is terminated if this fails.
    pub fn start(spec: &ClusterSpec, ec2: &Ec2Spec, run_id: &str) -> Result<Fleet, HarnessError> {
        let plan = LaunchPlan::of(spec, ec2)?;
        let api = Api::connect(ec2.region.as_deref())?;
        let mut fleet = Fleet {
            api,
            run_id: run_id.to_string(),
            instances: Vec::new(),
            launched: ec2.reuse.is_none(),
            region: ec2.region.clone(),
            terminated: false,
        };
        if let Some(reuse) = &ec2.reuse {
            fleet.instances = fleet.find(&plan, reuse)?;
            return Ok(fleet);
        }
        let owner = ec2
            .owner
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".into());
        let expires = expiry(ec2.ttl());
        let started = Instant::now();
        for p in &plan.instances {
            let tags = vec![
                ("Name".to_string(), format!("kmh-{run_id}-{}", p.name)),
                ("kmh.run".to_string(), run_id.to_string()),
                ("kmh.role".to_string(), p.role.to_string()),
                ("kmh.node".to_string(), p.name.clone()),
                ("kmh.owner".to_string(), owner.clone()),
                ("kmh.expires-at".to_string(), expires.clone()),
            ];
            // on an error, the drop of `fleet` terminates what is already launched
            let id = fleet.api.launch_one(ec2, p, &tags)?;
            fleet.instances.push(Instance {
                id,
                name: p.name.clone(),
                address: None,
            });
        }
        fleet.wait_running(ec2.boot_timeout())?;
        eprintln!(
            "harness: {} ec2 instance(s) running in {:.1}s ({})",
            fleet.instances.len(),
            started.elapsed().as_secs_f64(),
            fleet
                .instances
                .iter()
                .map(|i| format!("{} {}", i.name, i.id))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(fleet)
    }

    /// Running instances found by the reuse tag, placed on the plan's names.
    fn find(&self, plan: &LaunchPlan, reuse: &Reuse) -> Result<Vec<Instance>, HarnessError> {
        let mut found = self.api.describe(
            vec![tag_filter(&reuse.tag), state_filter(&["running"])],
            &[],
        )?;
        found.retain(|d| d.address.is_some());
        found.sort_by_key(|d| d.address);
        if found.len() < plan.instances.len() {
            return Err(HarnessError::BadInput(format!(
                "[cluster.ec2] reuse = {{ tag = \"{}\" }}: {} running instance(s) carry it, this run needs {}\n  hint: tag more instances, or make the cluster smaller",
                reuse.tag,
                found.len(),
                plan.instances.len()
            )));
        }
        // by their kmh.node tag first, the rest in address order
        let mut out = Vec::new();
        let mut free: Vec<Described> = Vec::new();
        let mut named: BTreeMap<String, Described> = BTreeMap::new();
        for d in found {
            match d.tags.get("kmh.node") {
                Some(n)
                    if plan.instances.iter().any(|p| &p.name == n) && !named.contains_key(n) =>
                {
                    named.insert(n.clone(), d);
                }
                _ => free.push(d),
            }
        }
        let mut free = free.into_iter();
        for p in &plan.instances {
            let d = named
                .remove(&p.name)
                .or_else(|| free.next())
                .expect("counted above");
            out.push(Instance {
                id: d.id,
                name: p.name.clone(),
                address: d.address,
            });
        }
        Ok(out)
    }

    /// Polls until every instance runs and has a private address.
    fn wait_running(&mut self, limit: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + limit;
        let ids: Vec<String> = self.instances.iter().map(|i| i.id.clone()).collect();
        loop {
            let seen = self.api.describe(Vec::new(), &ids)?;
            let mut waiting = Vec::new();
            for i in &mut self.instances {
                match seen.iter().find(|d| d.id == i.id) {
                    Some(d) if d.state == "running" && d.address.is_some() => i.address = d.address,
                    Some(d)
                        if ["shutting-down", "terminated", "stopping", "stopped"]
                            .contains(&d.state.as_str()) =>
                    {
                        return Err(HarnessError::Cluster(format!(
                            "ec2 instance {} ({}) is {} before it ever ran\n  hint: its console output (aws ec2 get-console-output --instance-id {}) says why",
                            i.id, i.name, d.state, i.id
                        )));
                    }
                    Some(d) => waiting.push(format!("{} {}", i.name, d.state)),
                    None => waiting.push(format!("{} not listed yet", i.name)),
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Cluster(format!(
                    "ec2 instances not running after {:?}: {}\n  hint: boot_timeout in [cluster.ec2]",
                    limit,
                    waiting.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// The ssh backend's inventory of these instances: one per node, the worker hosts,
    /// a known_hosts file of the run's own (instance addresses are reused: a new instance
    /// on an old address has a new host key).
    pub fn inventory(&self, ec2: &Ec2Spec, known_hosts: PathBuf) -> crate::cluster::ssh::Inventory {
        let addr = |i: &Instance| i.address.expect("a running instance has an address");
        crate::cluster::ssh::Inventory {
            user: Some(ec2.user.clone()),
            key: ec2.key.clone(),
            port: 22,
            dir: ec2.dir.clone(),
            known_hosts: Some(known_hosts),
            java: ec2.java.clone(),
            hosts: Vec::new(),
            nodes: self
                .instances
                .iter()
                .filter(|i| !i.name.starts_with("worker-"))
                .map(|i| (i.name.clone(), addr(i)))
                .collect(),
            workers: self
                .instances
                .iter()
                .filter(|i| i.name.starts_with("worker-"))
                .map(addr)
                .collect(),
            env: BTreeMap::new(),
        }
    }

    /// As run.json records it.
    pub fn record(&self) -> Ec2Record {
        Ec2Record {
            region: self.region.clone(),
            launched: self.launched,
            instances: self.instances.clone(),
        }
    }

    /// Terminates what this run launched (nothing for reused instances). Idempotent.
    pub fn terminate(&mut self) -> Result<(), HarnessError> {
        if !self.launched || self.terminated || self.instances.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = self.instances.iter().map(|i| i.id.clone()).collect();
        self.api.terminate(&ids)?;
        self.terminated = true;
        eprintln!(
            "harness: terminated {} ec2 instance(s): {}",
            ids.len(),
            ids.join(" ")
        );
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            eprintln!(
                "harness: terminating the run's ec2 instances failed: {e}\n  hint: `harness cleanup --ec2 --run {}` tries again",
                self.run_id
            );
        }
    }
}

/// What `harness cleanup --ec2` terminated: (id, why).
pub fn reap(
    run: Option<&str>,
    dead_runs: &[String],
    region: Option<&str>,
) -> Result<Vec<(String, String)>, HarnessError> {
    let api = Api::connect(region)?;
    let live = state_filter(&["pending", "running", "stopping", "stopped"]);
    let mut filters = vec![
        live,
        Filter::builder().name("tag-key").values("kmh.run").build(),
    ];
    if let Some(r) = run {
        filters.push(Filter::builder().name("tag:kmh.run").values(r).build());
    }
    let now = DateTime::from(std::time::SystemTime::now());
    let mut doomed = Vec::new();
    for d in api.describe(filters, &[])? {
        let run_of = d.tags.get("kmh.run").cloned().unwrap_or_default();
        let why = if run.is_some() {
            Some(format!("run {run_of}"))
        } else if dead_runs.contains(&run_of) {
            Some(format!("run {run_of}, whose coordinator is gone"))
        } else {
            match d.tags.get("kmh.expires-at") {
                Some(at) => match DateTime::from_str(at, DateTimeFormat::DateTime) {
                    Ok(t) if t < now => Some(format!("run {run_of}, expired at {at}")),
                    Ok(_) => None,
                    Err(_) => Some(format!("run {run_of}, unreadable kmh.expires-at {at:?}")),
                },
                None => None,
            }
        };
        if let Some(why) = why {
            doomed.push((d.id, why));
        }
    }
    let ids: Vec<String> = doomed.iter().map(|(i, _)| i.clone()).collect();
    api.terminate(&ids)?;
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_rfc3339_and_in_the_future() {
        let at = expiry(Duration::from_secs(3600));
        let t = DateTime::from_str(&at, DateTimeFormat::DateTime).unwrap();
        assert!(t > DateTime::from(std::time::SystemTime::now()));
        assert!(at.ends_with('Z') && at.contains('T'), "{at}");
    }
}
