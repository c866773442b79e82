//! `harness run --kraft VERSION`: a ZooKeeper-mode scenario run unchanged on a KRaft
//! cluster of Kafka VERSION (4.x, or 3.9 in KRaft mode), to show a broker procedure is as
//! safe there: the ensemble is replaced by three dedicated controllers, the brokers, the
//! workload, the steps and the expectations stay as written.
//!
//! A scenario whose procedure involves ZooKeeper (a ZooKeeper step, a ZooKeeper node or
//! ensemble named in any step, the ZooKeeper smoke test) has no KRaft equivalent and is
//! refused with what ties it to ZooKeeper.

use super::{Backend, Scenario};
use crate::error::HarnessError;

/// Why a cluster with controllers cannot run on `backend`, if it cannot: a static KRaft
/// quorum runs on every backend (off the local one each node is formatted here and its
/// storage copied over); a ZooKeeper→KRaft migration and a dynamic quorum on the local
/// backend only, where they are tested.
pub fn kraft_backend_refusal(backend: Backend, migration: bool, dynamic: bool) -> Option<String> {
    let what = if migration {
        "a ZooKeeper→KRaft migration"
    } else if dynamic {
        "a dynamic quorum"
    } else {
        return None;
    };
    (backend != Backend::Local).then(|| {
        format!(
            "{what} runs on the local backend only in this version, not `{}`",
            backend.name()
        )
    })
}

/// What `--backend` may not move a loaded scenario to, by the loader's own rules for the
/// file's backend: its KRaft cluster's, and the upgrade steps (`kafka-version` changes a
/// node's binaries, which only the local backend can: a container's or a host's are fixed
/// when it is made; `update-features` goes with it).
pub fn backend_override_refusal(scenario: &Scenario) -> Option<String> {
    let c = &scenario.cluster;
    if c.has_controllers() {
        if let Some(why) = kraft_backend_refusal(c.backend, c.is_migration(), c.dynamic_quorum) {
            return Some(why);
        }
    }
    if c.backend == Backend::Local {
        return None;
    }
    scenario.steps.iter().find_map(|s| match &s.action {
        super::Action::Kraft(
            a @ (super::KraftAction::KafkaVersion { .. } | super::KraftAction::UpdateFeatures { .. }),
        ) => Some(format!(
            "step `{}` (`{}`) runs on the local backend only, not `{}`: a node's binaries are fixed off it",
            s.name,
            a.keyword(),
            c.backend.name()
        )),
        _ => None,
    })
}

/// The dedicated controllers a converted cluster gets: three, the production shape.
const CONTROLLERS: [&str; 3] = ["ctl1", "ctl2", "ctl3"];

/// Rewrites `scenario`'s cluster as a KRaft cluster of Kafka `version` (as `kafka = "…"`
/// takes it); the reason it cannot when the procedure involves ZooKeeper.
pub fn on_kraft(scenario: &mut Scenario, version: &str) -> Result<(), HarnessError> {
    let file = scenario.file.display().to_string();
    let refuse = |why: String, hint: &str| {
        Err(HarnessError::BadInput(format!(
            "{file}: --kraft {version}: {why}\n  hint: {hint}"
        )))
    };
    let Some(exact) = super::load::kafka_release(version) else {
        return refuse(
            format!("Kafka `{version}` is not supported"),
            "a 4.x release (\"4.0\" … \"4.4\", or exact like \"4.1.1\"), or \"3.9\" for 3.9.1 in KRaft mode",
        );
    };
    let c = &scenario.cluster;
    if c.is_kraft() {
        return refuse(
            "the scenario's cluster is KRaft already".into(),
            "set kafka = \"…\" in the scenario instead",
        );
    }
    if c.is_migration() {
        return refuse(
            "the scenario is a ZooKeeper→KRaft migration: its cluster starts on ZooKeeper".into(),
            "run it as written",
        );
    }
    if let Some(why) = kraft_backend_refusal(c.backend, false, false) {
        return refuse(why, "drop --backend, or run the scenario as written");
    }
    if c.target.is_some() {
        return refuse(
            "the scenario has a second cluster ([cluster.target]) on a ZooKeeper ensemble of its own".into(),
            "two clusters run in ZooKeeper mode in this version; run it as written",
        );
    }
    if scenario.check.zookeeper_smoke {
        return refuse(
            "the scenario runs the ZooKeeper smoke test".into(),
            "a procedure that involves ZooKeeper has no KRaft equivalent; run it as written",
        );
    }
    if let Some(n) = CONTROLLERS
        .iter()
        .find(|n| c.all_nodes().iter().any(|m| m == *n))
    {
        return refuse(
            format!("the scenario has a node named `{n}`, the name of a controller it would get"),
            "rename that node",
        );
    }
    // any step that names a ZooKeeper node or ensemble, or is a ZooKeeper action
    let zookeeper_names: Vec<&String> = c.zookeeper.iter().chain(c.ensembles.keys()).collect();
    for step in &scenario.steps {
        if matches!(step.action, super::Action::ZooKeeper(_)) {
            return refuse(
                format!(
                    "step `{}` is a ZooKeeper action ({})",
                    step.name,
                    step.action.keyword()
                ),
                "a procedure that involves ZooKeeper has no KRaft equivalent; run it as written",
            );
        }
        let action = serde_json::to_value(&step.action).unwrap_or_default();
        let mut strings = Vec::new();
        collect_strings(&action, &mut strings);
        if let Some(z) = zookeeper_names.iter().find(|z| strings.contains(z)) {
            return refuse(
                format!("step `{}` names ZooKeeper's `{z}`", step.name),
                "a procedure that involves ZooKeeper has no KRaft equivalent; run it as written",
            );
        }
    }
    let c = &mut scenario.cluster;
    c.kafka_version = exact;
    c.dormant.retain(|n| !c.zookeeper.contains(n));
    c.zookeeper.clear();
    c.ensembles.clear();
    c.kafka_ensemble.clear();
    c.zookeeper_config.clear();
    // ZooKeeper-mode broker settings a KRaft node refuses or ignores
    c.broker_config.retain(|k, _| !k.starts_with("zookeeper."));
    c.controllers = CONTROLLERS.iter().map(|s| s.to_string()).collect();
    Ok(())
}

fn collect_strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a String>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str) -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(name);
        crate::scenario::load(&path).unwrap()
    }

    #[test]
    fn a_broker_procedure_keeps_its_brokers_steps_and_expectations_on_kraft() {
        let mut s = scenario("rf-increase-repair.toml");
        let (brokers, steps) = (s.cluster.brokers.clone(), s.steps.len());
        on_kraft(&mut s, "4.1").unwrap();
        assert_eq!(s.cluster.kafka_version, "4.1.2");
        assert!(s.cluster.zookeeper.is_empty() && s.cluster.ensembles.is_empty());
        assert_eq!(s.cluster.controllers, ["ctl1", "ctl2", "ctl3"]);
        assert_eq!(s.cluster.brokers, brokers);
        assert_eq!(s.steps.len(), steps);
        assert_eq!(s.cluster.controller_id("ctl2"), Some(102));
    }

    #[test]
    fn a_procedure_that_involves_zookeeper_is_refused_with_what_ties_it() {
        let mut s = scenario("zk-mitosis.toml");
        let e = on_kraft(&mut s, "4.1").unwrap_err().to_string();
        assert!(
            e.contains("zk-mitosis.toml") && e.contains("--kraft 4.1"),
            "{e}"
        );
        assert!(e.contains("smoke test"), "{e}");
        // without the smoke test, its first ZooKeeper step is named
        s.check.zookeeper_smoke = false;
        let e = on_kraft(&mut s, "4.1").unwrap_err().to_string();
        assert!(e.contains("is a ZooKeeper action"), "{e}");
        // a node step that names a ZooKeeper node, found in the step's serialized form
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../scenarios/rolling-restart.toml"),
        )
        .unwrap()
        .replace(
            "nodes = [\"kafka1\", \"kafka2\", \"kafka3\"]",
            "nodes = [\"kafka1\", \"zk2\"]",
        );
        let mut s = crate::scenario::parse(std::path::Path::new("r.toml"), &text).unwrap();
        let e = on_kraft(&mut s, "4.1").unwrap_err().to_string();
        assert!(
            e.contains("step `roll the brokers` names ZooKeeper's `zk2`"),
            "{e}"
        );
        let mut s = scenario("rolling-restart.toml");
        let e = on_kraft(&mut s, "5.0").unwrap_err().to_string();
        assert!(e.contains("`5.0` is not supported"), "{e}");
    }
}
