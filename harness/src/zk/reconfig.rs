//! ZooKeeper dynamic reconfiguration (seed 001): the `reconfig -add ... -remove ...` of the
//! CLI, sent with the zookeeper-client crate, and the committed configuration read back.

use std::time::Duration;

use zookeeper_client::EnsembleUpdate;

use super::tree;
use crate::error::ZkError;

/// A committed configuration: `server.N=...` lines and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsembleConfig {
    /// `(id, role)` of each server (`participant` / `observer`).
    pub servers: Vec<(i32, String)>,
    /// `version=` (hex zxid of the reconfig that made it).
    pub version: String,
}

impl EnsembleConfig {
    /// Parses the data of `/zookeeper/config`.
    pub fn parse(data: &[u8]) -> EnsembleConfig {
        let text = String::from_utf8_lossy(data);
        let mut servers = Vec::new();
        let mut version = String::new();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("version=") {
                version = v.trim().to_string();
            } else if let Some(rest) = line.strip_prefix("server.") {
                let Some((id, spec)) = rest.split_once('=') else {
                    continue;
                };
                let Ok(id) = id.parse() else { continue };
                let addr = spec.split(';').next().unwrap_or("");
                let role = if addr.ends_with(":observer") {
                    "observer"
                } else {
                    "participant"
                };
                servers.push((id, role.to_string()));
            }
        }
        servers.sort();
        EnsembleConfig { servers, version }
    }

    /// Ids with a role.
    pub fn with_role(&self, role: &str) -> Vec<i32> {
        self.servers
            .iter()
            .filter(|(_, r)| r == role)
            .map(|(i, _)| *i)
            .collect()
    }
}

/// Reads `/zookeeper/config` through `servers`.
pub async fn current(servers: &str) -> Result<EnsembleConfig, ZkError> {
    let c = tree::connect(servers).await?;
    let (data, _) = tokio::time::timeout(Duration::from_secs(10), c.get_config())
        .await
        .map_err(|_| ZkError::NoAnswer {
            op: "reading /zookeeper/config",
            secs: 10,
        })?
        .map_err(|source| ZkError::Op {
            op: "reading",
            at: "/zookeeper/config".into(),
            source,
        })?;
    Ok(EnsembleConfig::parse(&data))
}

/// Sends one incremental reconfig: `joining` are `server.N=host:2888:3888:ROLE;host:2181`
/// strings, `leaving` are ids. Returns the new configuration.
pub async fn incremental(
    servers: &str,
    joining: &[String],
    leaving: &[i32],
) -> Result<EnsembleConfig, ZkError> {
    let c = tree::connect(servers).await?;
    let leaving: Vec<String> = leaving.iter().map(|i| i.to_string()).collect();
    let update = EnsembleUpdate::Incremental {
        joinings: joining.iter().map(String::as_str),
        leavings: leaving.iter().map(String::as_str),
    };
    let (data, _) = tokio::time::timeout(Duration::from_secs(30), c.update_ensemble(update, None))
        .await
        .map_err(|_| ZkError::NoAnswer {
            op: "the reconfig",
            secs: 30,
        })?
        .map_err(|e| match e {
            zookeeper_client::Error::ReconfigDisabled => ZkError::Refused(
                "dynamic reconfig is disabled on the servers (reconfigEnabled=true)",
            ),
            zookeeper_client::Error::NoAuth => {
                ZkError::Refused("not allowed: reconfig needs a super user or skipACL=yes")
            }
            source => ZkError::Op {
                op: "reconfig through",
                at: servers.to_string(),
                source,
            },
        })?;
    Ok(EnsembleConfig::parse(&data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dynamic_config() {
        let c = EnsembleConfig::parse(
            b"server.4=10.0.0.4:2888:3888:participant;10.0.0.4:2181\nserver.1=10.0.0.1:2888:3888;0.0.0.0:2181\nserver.6=10.0.0.6:2888:3888:observer;10.0.0.6:2181\nversion=200000010",
        );
        assert_eq!(c.version, "200000010");
        assert_eq!(c.with_role("participant"), vec![1, 4]);
        assert_eq!(c.with_role("observer"), vec![6]);
    }
}
