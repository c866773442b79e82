//! The `[cluster]` table: backend, hosts, Kafka version, nodes, ensembles, node configs.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use toml::Spanned;

use super::{config_map, Problems};
use crate::scenario::model::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    #[serde(default)]
    backend: Option<Spanned<String>>,
    #[serde(default)]
    hosts: Option<Spanned<String>>,
    #[serde(default)]
    kafka: Option<Spanned<String>>,
    #[serde(default)]
    zookeeper: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    dormant: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    ensembles: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    #[serde(default)]
    kafka_ensemble: Option<Spanned<String>>,
    #[serde(default)]
    brokers: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    controllers: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    quorum: Option<Spanned<String>>,
    #[serde(default)]
    broker_config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    zookeeper_config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    broker_heap_mb: Option<u32>,
    #[serde(default)]
    zookeeper_heap_mb: Option<u32>,
    #[serde(default)]
    controller_heap_mb: Option<u32>,
    #[serde(default)]
    inventory: Option<Spanned<String>>,
    #[serde(default)]
    ec2: Option<Spanned<crate::scenario::Ec2Spec>>,
    #[serde(default)]
    target: Option<Spanned<RawTarget>>,
}

/// `[cluster.target]`: a second Kafka cluster (MirrorMaker 2's target).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    brokers: Spanned<Vec<String>>,
    ensemble: Spanned<String>,
}

/// Validates `[cluster]`.
pub(super) fn validate(p: &mut Problems<'_>, raw: &Spanned<RawCluster>) -> ClusterSpec {
    let table = raw.span();
    let rc = raw.get_ref();
    let backend = match rc.backend.as_ref().map(|b| b.get_ref().as_str()) {
        None | Some("local") => Backend::Local,
        Some("docker") => Backend::Docker,
        Some("ssh") => Backend::Ssh,
        Some("ec2") => Backend::Ec2,
        Some(other) => {
            let b = rc.backend.as_ref().unwrap();
            p.at(
                b.span(),
                "cluster.backend",
                format!("backend `{other}` is not available in this version"),
                "use backend = \"local\", \"docker\", \"ssh\" or \"ec2\"",
            );
            Backend::Local
        }
    };
    let kafka = p.required(
        rc.kafka.as_ref(),
        table.clone(),
        "cluster.kafka",
        "kafka = \"3.9\"",
    );
    let kafka_version = match kafka.map(|k| (k, k.get_ref().as_str())) {
        None => "3.9.1".to_string(),
        Some((k, v)) => match kafka_release(v) {
            Some(exact) => exact,
            None => {
                p.at(
                    k.span(),
                    "cluster.kafka",
                    format!("Kafka `{v}` is not supported"),
                    "use kafka = \"3.9\" (3.9.1: ZooKeeper or KRaft mode) or a 4.x release: \"4.0\" … \"4.4\" (newest patch) or an exact one like \"4.1.1\" (KRaft only)",
                );
                "3.9.1".to_string()
            }
        },
    };
    let kafka4 = !kafka_version.starts_with("3.");
    let controller_list = rc.controllers.as_ref();
    let controllers = controller_list
        .map(|c| c.get_ref().clone())
        .unwrap_or_default();
    let controllers_span = controller_list.map(|c| c.span()).unwrap_or(table.clone());
    // ZooKeeper mode needs an ensemble, KRaft mode a controller quorum; a cluster with both
    // is a ZooKeeper→KRaft migration: Kafka 3.9 brokers on ZooKeeper, and controllers that
    // join by the migration (dormant until a step formats and starts them)
    let migration = controller_list.is_some() && rc.zookeeper.is_some();
    let zookeeper_list = if migration {
        if kafka4 {
            p.at(
                rc.zookeeper.as_ref().map(|z| z.span()).unwrap_or(table.clone()),
                "cluster.zookeeper",
                format!("Kafka {kafka_version} has no ZooKeeper mode: a cluster with both a ZooKeeper ensemble and controllers is a ZooKeeper→KRaft migration, which runs on 3.9"),
                "kafka = \"3.9\" for the migration (then `upgrade` onto 4.x), or no `zookeeper` for a KRaft cluster",
            );
        }
        rc.zookeeper.as_ref()
    } else if controller_list.is_some() {
        None
    } else if kafka4 {
        p.at(
            rc.zookeeper.as_ref().map(|z| z.span()).unwrap_or(table.clone()),
            "cluster.controllers",
            format!("Kafka {kafka_version} has no ZooKeeper mode and this cluster names no controllers"),
            "controllers = [\"ctl1\", \"ctl2\", \"ctl3\"] (dedicated), or broker names for combined nodes; no `zookeeper`",
        );
        None
    } else {
        p.required(
            rc.zookeeper.as_ref(),
            table.clone(),
            "cluster.zookeeper",
            "zookeeper = [\"zk1\", \"zk2\", \"zk3\"] (ZooKeeper mode), or controllers = [\"ctl1\", \"ctl2\", \"ctl3\"] (KRaft)",
        )
    };
    let broker_list = p.required(
        rc.brokers.as_ref(),
        table.clone(),
        "cluster.brokers",
        "brokers = [\"kafka1\", \"kafka2\", \"kafka3\"]",
    );
    if controller_list.is_some() {
        if controllers.is_empty() {
            p.at(
                controllers_span.clone(),
                "cluster.controllers",
                "no controllers",
                "a KRaft quorum needs at least one controller; three is the production shape",
            );
        }
        if let Some(why) = super::super::kraft::kraft_backend_refusal(
            backend,
            rc.zookeeper.is_some(),
            rc.quorum.as_ref().is_some_and(|q| q.get_ref() == "dynamic"),
        ) {
            p.at(
                controllers_span.clone(),
                "cluster.controllers",
                why,
                "use backend = \"local\" (loopback or namespace hosts); off it, a static quorum",
            );
        }
    }
    let zookeeper = zookeeper_list
        .map(|z| z.get_ref().clone())
        .unwrap_or_default();
    let brokers = broker_list.map(|b| b.get_ref().clone()).unwrap_or_default();
    let zookeeper_span = zookeeper_list.map(|z| z.span()).unwrap_or(table.clone());
    let brokers_span = broker_list.map(|b| b.span()).unwrap_or(table.clone());
    if zookeeper_list.is_some() && zookeeper.is_empty() {
        p.at(
            zookeeper_span.clone(),
            "cluster.zookeeper",
            "no ZooKeeper nodes",
            "Kafka 3.9 in ZooKeeper mode needs an ensemble, e.g. [\"zk1\", \"zk2\", \"zk3\"]",
        );
    }
    if broker_list.is_some() && brokers.is_empty() {
        p.at(
            brokers_span.clone(),
            "cluster.brokers",
            "no brokers",
            "name at least one broker, e.g. [\"kafka1\", \"kafka2\", \"kafka3\"]",
        );
    }
    let mut seen = HashSet::new();
    for (n, span) in zookeeper
        .iter()
        .map(|n| (n, zookeeper_span.clone()))
        .chain(
            controllers
                .iter()
                .filter(|c| !brokers.contains(c))
                .map(|n| (n, controllers_span.clone())),
        )
        .chain(brokers.iter().map(|n| (n, brokers_span.clone())))
    {
        if !seen.insert(n.clone()) {
            p.at(
                span.clone(),
                "cluster",
                format!("node name `{n}` is used twice"),
                "every ZooKeeper node, controller and broker needs its own name (a broker listed among the controllers is one combined node)",
            );
        }
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || n.starts_with('@')
        {
            p.at(
                span,
                "cluster",
                format!("`{n}` is not a valid node name"),
                "use letters, digits, '-' and '_'",
            );
        }
    }
    let hosts = match rc.hosts.as_ref().map(|h| h.get_ref().as_str()) {
        None | Some("auto") => HostMode::Auto,
        Some("namespaces") => HostMode::Namespaces,
        Some("loopback") => HostMode::Loopback,
        Some(other) => {
            p.at(rc.hosts.as_ref().unwrap().span(), "cluster.hosts", format!("`{other}` is not a host mode"), "hosts = \"auto\" (namespaces when root, else loopback), \"namespaces\" or \"loopback\"");
            HostMode::Auto
        }
    };
    let dormant = rc
        .dormant
        .as_ref()
        .map(|d| d.get_ref().clone())
        .unwrap_or_default();
    if migration && !kafka4 {
        // Kafka migrates to dedicated controllers only, and they can be formatted only
        // with the cluster id the brokers wrote into ZooKeeper: they start by steps
        if let Some(c) = controllers.iter().find(|c| brokers.contains(c)) {
            p.at(
                controllers_span.clone(),
                "cluster.controllers",
                format!("broker `{c}` is among the controllers of a ZooKeeper→KRaft migration"),
                "Kafka migrates to dedicated controllers only: give the controllers names of their own",
            );
        }
        if let Some(c) = controllers.iter().find(|c| !dormant.contains(c)) {
            p.at(
                rc.dormant.as_ref().map(|d| d.span()).unwrap_or(controllers_span.clone()),
                "cluster.dormant",
                format!("controller `{c}` of a ZooKeeper→KRaft migration is not dormant"),
                format!(
                    "the controllers join by the migration: dormant = [{}], then steps `format-storage` (cluster_id = \"zookeeper\") and `start`",
                    controllers.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    let dynamic_quorum = match rc.quorum.as_ref().map(|q| (q, q.get_ref().as_str())) {
        None | Some((_, "static")) => false,
        Some((q, "dynamic")) => {
            if migration || controllers.is_empty() {
                p.at(
                    q.span(),
                    "cluster.quorum",
                    "a dynamic quorum is a KRaft cluster's",
                    if migration {
                        "a ZooKeeper→KRaft migration runs on a static quorum (Kafka does not migrate to a dynamic one): remove `quorum`"
                    } else {
                        "name the KRaft controllers (controllers = [\"ctl1\", \"ctl2\", \"ctl3\"]) and no `zookeeper`"
                    },
                );
            }
            true
        }
        Some((q, other)) => {
            p.at(
                q.span(),
                "cluster.quorum",
                format!("`{other}` is not a quorum kind"),
                "quorum = \"static\" (controller.quorum.voters, the default) or \"dynamic\" (KIP-853: controllers added and removed by steps)",
            );
            false
        }
    };
    if let Some(d) = &rc.dormant {
        for n in d.get_ref() {
            if controllers.contains(n) && migration {
                // the migration's controllers, above
            } else if controllers.contains(n) && dynamic_quorum {
                if brokers.contains(n) {
                    p.at(
                        d.span(),
                        "cluster.dormant",
                        format!("combined node `{n}` is dormant"),
                        "a controller that joins the quorum by `add-controller` is a dedicated one: give it a name of its own",
                    );
                }
            } else if controllers.contains(n) {
                p.at(
                    d.span(),
                    "cluster.dormant",
                    format!("controller `{n}` is dormant"),
                    "every controller of a static quorum starts with the cluster; one that joins later needs quorum = \"dynamic\" (KIP-853) and an `add-controller` step",
                );
            } else if !zookeeper.contains(n) && !brokers.contains(n) {
                p.at(
                    d.span(),
                    "cluster.dormant",
                    format!("`{n}` is not a node of this cluster"),
                    format!(
                        "ZooKeeper nodes: {}; brokers: {}",
                        zookeeper.join(", "),
                        brokers.join(", ")
                    ),
                );
            }
        }
        if dynamic_quorum && controllers.iter().all(|c| d.get_ref().contains(c)) {
            p.at(
                d.span(),
                "cluster.dormant",
                "every controller is dormant",
                "the controllers that start with the cluster are the quorum's first voters: keep at least one running",
            );
        }
        if !brokers.is_empty() && brokers.iter().all(|b| d.get_ref().contains(b)) {
            p.at(
                d.span(),
                "cluster.dormant",
                "every broker is dormant",
                "the workload needs running brokers at the start; new brokers a step adds are dormant, the old ones are not",
            );
        }
        if !zookeeper.is_empty() && zookeeper.iter().all(|z| d.get_ref().contains(z)) {
            p.at(
                d.span(),
                "cluster.dormant",
                "every ZooKeeper node is dormant",
                "the brokers need a running ensemble at the start; keep at least one group running",
            );
        }
    }
    let ensembles: BTreeMap<String, Vec<String>> = match &rc.ensembles {
        // a KRaft cluster has no ensemble
        None if zookeeper.is_empty() && !controllers.is_empty() => BTreeMap::new(),
        None => BTreeMap::from([("zookeeper".to_string(), zookeeper.clone())]),
        Some(e) => {
            let mut owner: HashMap<&str, &str> = HashMap::new();
            for (name, members) in e.get_ref() {
                if members.is_empty() {
                    p.at(
                        e.span(),
                        format!("cluster.ensembles.{name}"),
                        "an empty ensemble",
                        "list its ZooKeeper nodes, e.g. source = [\"zk1\", \"zk2\", \"zk3\"]",
                    );
                }
                if zookeeper.contains(name) || brokers.contains(name) {
                    p.at(
                        e.span(),
                        format!("cluster.ensembles.{name}"),
                        format!("`{name}` is also a node name"),
                        "steps accept both node and ensemble names: give the ensemble another name",
                    );
                }
                for m in members {
                    if !zookeeper.contains(m) {
                        p.at(
                            e.span(),
                            format!("cluster.ensembles.{name}"),
                            format!("`{m}` is not a ZooKeeper node"),
                            format!("ZooKeeper nodes: {}", zookeeper.join(", ")),
                        );
                    } else if let Some(other) = owner.insert(m, name) {
                        p.at(e.span(), format!("cluster.ensembles.{name}"), format!("`{m}` is in both `{other}` and `{name}`"), "each node starts in one ensemble; its zoo.cfg lists that ensemble's members");
                    }
                }
            }
            for z in &zookeeper {
                if !owner.contains_key(z.as_str()) {
                    p.at(e.span(), "cluster.ensembles", format!("`{z}` is in no ensemble"), "put every ZooKeeper node in one ensemble (its initial zoo.cfg lists that ensemble)");
                }
            }
            e.get_ref().clone()
        }
    };
    let kafka_ensemble = match &rc.kafka_ensemble {
        Some(k) => {
            if !ensembles.contains_key(k.get_ref()) {
                p.at(
                    k.span(),
                    "cluster.kafka_ensemble",
                    format!("no ensemble `{}`", k.get_ref()),
                    format!(
                        "ensembles: {}",
                        ensembles.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            } else if ensembles[k.get_ref()].iter().all(|m| dormant.contains(m)) {
                p.at(
                    k.span(),
                    "cluster.kafka_ensemble",
                    format!("every node of `{}` is dormant", k.get_ref()),
                    "the brokers need a running ensemble at the start",
                );
            }
            k.get_ref().clone()
        }
        None if ensembles.len() <= 1 => ensembles.keys().next().cloned().unwrap_or_default(),
        None => {
            p.at(
                zookeeper_span.clone(),
                "cluster.kafka_ensemble",
                "several ensembles and no `kafka_ensemble`",
                "say which ensemble the brokers use at the start, e.g. kafka_ensemble = \"source\"",
            );
            String::new()
        }
    };
    // an inventory names the ssh backend's hosts; relative to the scenario file
    let inventory = rc.inventory.as_ref().map(|i| {
        let rel = std::path::Path::new(i.get_ref());
        if backend != Backend::Ssh {
            p.at(
                i.span(),
                "cluster.inventory",
                format!(
                    "an inventory is for backend = \"ssh\", not `{}`",
                    backend.name()
                ),
                "remove it, or set backend = \"ssh\"",
            );
        }
        p.file
            .parent()
            .map(|d| d.join(rel))
            .unwrap_or_else(|| rel.to_path_buf())
    });
    let ec2 = validate_ec2(p, rc, backend, table.clone());
    let target = rc.target.as_ref().map(|t| {
        if !controllers.is_empty() {
            p.at(
                t.span(),
                "cluster.target",
                "a target cluster beside KRaft controllers is not built yet",
                "a run with two clusters runs both in ZooKeeper mode (Kafka 3.9) in this version",
            );
        }
        validate_target(p, t, &ensembles, &kafka_ensemble, &dormant, &mut seen)
    });
    ClusterSpec {
        target,
        inventory,
        ec2,
        backend,
        hosts,
        kafka_version,
        zookeeper: zookeeper.clone(),
        dormant,
        ensembles,
        kafka_ensemble,
        brokers: brokers.clone(),
        controllers,
        dynamic_quorum,
        broker_config: config_map(p, &rc.broker_config, table.clone(), "cluster.broker_config"),
        zookeeper_config: config_map(
            p,
            &rc.zookeeper_config,
            table.clone(),
            "cluster.zookeeper_config",
        ),
        broker_heap_mb: rc.broker_heap_mb.unwrap_or(384),
        zookeeper_heap_mb: rc.zookeeper_heap_mb.unwrap_or(96),
        controller_heap_mb: rc.controller_heap_mb.unwrap_or(256),
    }
}

/// Validates `[cluster.target]` against the nodes and ensembles of `[cluster]` (`seen`: the
/// node names taken so far).
fn validate_target(
    p: &mut Problems<'_>,
    raw: &Spanned<RawTarget>,
    ensembles: &BTreeMap<String, Vec<String>>,
    kafka_ensemble: &str,
    dormant: &[String],
    seen: &mut HashSet<String>,
) -> TargetCluster {
    let t = raw.get_ref();
    if t.brokers.get_ref().is_empty() {
        p.at(
            t.brokers.span(),
            "cluster.target.brokers",
            "no brokers",
            "name the target cluster's brokers, e.g. [\"tkafka1\", \"tkafka2\", \"tkafka3\"]",
        );
    }
    for b in t.brokers.get_ref() {
        if !seen.insert(b.clone()) {
            p.at(
                t.brokers.span(),
                "cluster.target.brokers",
                format!("node name `{b}` is used twice"),
                "the target cluster's brokers are nodes of their own: give them names of their own, e.g. tkafka1",
            );
        }
        if dormant.contains(b) {
            p.at(
                t.brokers.span(),
                "cluster.target.brokers",
                format!("`{b}` is dormant"),
                "the target cluster starts with the run; remove it from `dormant`",
            );
        }
    }
    let ensemble = t.ensemble.get_ref();
    match ensembles.get(ensemble) {
        None => p.at(
            t.ensemble.span(),
            "cluster.target.ensemble",
            format!("no ensemble `{ensemble}`"),
            format!(
                "the target's brokers need a ZooKeeper ensemble of their own: add it to [cluster.ensembles] (ensembles: {})",
                ensembles.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ),
        Some(_) if ensemble == kafka_ensemble => p.at(
            t.ensemble.span(),
            "cluster.target.ensemble",
            format!("`{ensemble}` is the first cluster's ensemble too"),
            "two clusters under one chroot would be one cluster: give the target an ensemble of its own",
        ),
        Some(members) if members.iter().all(|m| dormant.contains(m)) => p.at(
            t.ensemble.span(),
            "cluster.target.ensemble",
            format!("every node of `{ensemble}` is dormant"),
            "the target cluster starts with the run, on a running ensemble",
        ),
        Some(_) => {}
    }
    TargetCluster {
        brokers: t.brokers.get_ref().clone(),
        ensemble: ensemble.clone(),
    }
}

/// The exact release a `kafka = "…"` names: a minor version means its newest patch
/// release on Maven Central (as of this version of the harness); an exact 3.9.x or 4.x.y
/// release is taken as written.
pub(crate) fn kafka_release(v: &str) -> Option<String> {
    let exact = match v {
        "3.9" => "3.9.1",
        "4.0" => "4.0.2",
        "4.1" => "4.1.2",
        "4.2" => "4.2.2",
        "4.3" => "4.3.2",
        "4.4" => "4.4.0",
        _ => {
            let parts: Vec<&str> = v.split('.').collect();
            let numeric = parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            let known = matches!(parts.first(), Some(&"4")) || parts.get(..2) == Some(&["3", "9"]);
            return (numeric && known).then(|| v.to_string());
        }
    };
    Some(exact.to_string())
}

/// `[cluster.ec2]`: present exactly when backend = "ec2"; an image unless `reuse`; its
/// durations readable; its key file relative to the scenario.
fn validate_ec2(
    p: &mut Problems<'_>,
    rc: &RawCluster,
    backend: Backend,
    table: std::ops::Range<usize>,
) -> Option<crate::scenario::Ec2Spec> {
    let Some(raw) = &rc.ec2 else {
        if backend == Backend::Ec2 {
            p.at(
                table,
                "cluster.ec2",
                "backend = \"ec2\" and no [cluster.ec2]",
                "[cluster.ec2] with ami, instance_type, subnet, security_groups, key_name, key and user (README, \"EC2 instances\")",
            );
        }
        return None;
    };
    if backend != Backend::Ec2 {
        p.at(
            raw.span(),
            "cluster.ec2",
            format!(
                "[cluster.ec2] is for backend = \"ec2\", not `{}`",
                backend.name()
            ),
            "remove it, or set backend = \"ec2\"",
        );
    }
    let mut ec2 = raw.get_ref().clone();
    if ec2.ami.is_none() && ec2.reuse.is_none() {
        p.at(
            raw.span(),
            "cluster.ec2.ami",
            "no image to launch",
            "ami = \"ami-…\" (Java 17+, sshd, iptables), or reuse = { tag = \"Key=Value\" } to take running instances",
        );
    }
    for (field, value) in [("ttl", &ec2.ttl), ("boot_timeout", &ec2.boot_timeout)] {
        if crate::scenario::units::parse_duration(value).is_none() {
            p.at(
                raw.span(),
                format!("cluster.ec2.{field}"),
                format!("`{value}` is not a duration"),
                "a number and a unit: \"90s\", \"10m\", \"4h\"",
            );
        }
    }
    if ec2.max_instances == 0 {
        p.at(
            raw.span(),
            "cluster.ec2.max_instances",
            "0 instances allowed",
            "the guard counts every node and worker host: max_instances = 16",
        );
    }
    if !ec2.dir.starts_with('/') || ec2.dir.contains(['\'', '\n']) {
        p.at(
            raw.span(),
            "cluster.ec2.dir",
            format!("dir = {:?}: an absolute path without quotes", ec2.dir),
            "dir = \"/var/tmp/kmh\"",
        );
    }
    if let Some(k) = &mut ec2.key {
        if k.is_relative() {
            if let Some(d) = p.file.parent() {
                *k = d.join(&*k);
            }
        }
    }
    Some(ec2)
}
