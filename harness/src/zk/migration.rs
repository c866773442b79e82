//! What a ZooKeeper→KRaft migration leaves in ZooKeeper: the cluster id the ZooKeeper-mode
//! brokers wrote (`/cluster/id`, which the migration's controllers must be formatted
//! with), and the controllers' migration record (`/migration`); and who the ZooKeeper-mode
//! controller is (`/controller`), which a failover's measure reads.
//!
//! `/migration` is Kafka's `MigrationZNode`: the active KRaft controller writes it when it
//! takes over as the ZooKeeper-mode brokers' controller, with the metadata log offset up
//! to which ZooKeeper's data is in KRaft. Kafka itself decides "the initial migration is
//! done" by that offset being positive (`ZkMigrationLeadershipState
//! .initialZkMigrationComplete`); from then on the controllers write every change to both
//! (dual-write) until they are restarted without the migration flag.

use serde::{Deserialize, Serialize};

/// The `/migration` znode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationZnode {
    /// The KRaft controller that wrote it (the quorum's leader then).
    pub kraft_controller_id: i32,
    /// That controller's epoch.
    pub kraft_controller_epoch: i32,
    /// The metadata log offset ZooKeeper's data is migrated up to (-1: not migrated yet).
    pub kraft_metadata_offset: i64,
    /// The metadata log epoch at that offset.
    pub kraft_metadata_epoch: i32,
}

impl MigrationZnode {
    /// True once the controllers copied ZooKeeper's metadata into the metadata log (Kafka's
    /// own test: a positive offset); the cluster is then in dual-write.
    pub fn migrated(&self) -> bool {
        self.kraft_metadata_offset > 0
    }
}

#[derive(Deserialize)]
struct ClusterIdZnode {
    id: String,
}

async fn read(servers: &str, path: &str) -> Result<Option<Vec<u8>>, String> {
    let c = super::tree::connect(servers)
        .await
        .map_err(|e| format!("cannot connect to {servers}: {e}"))?;
    match c.get_data(path).await {
        Ok((d, _)) => Ok(Some(d)),
        Err(zookeeper_client::Error::NoNode) => Ok(None),
        Err(e) => Err(format!("reading {path} from {servers}: {e}")),
    }
}

/// The cluster id under `root` of the ensemble `servers` (`host:port,…`).
pub async fn cluster_id(servers: &str, root: &str) -> Result<String, String> {
    let path = format!("{root}/cluster/id");
    let raw = read(servers, &path)
        .await?
        .ok_or_else(|| format!("{path} is missing: no broker has started on this ensemble yet"))?;
    serde_json::from_slice::<ClusterIdZnode>(&raw)
        .map(|z| z.id)
        .map_err(|e| format!("{path} holds {:?}: {e}", String::from_utf8_lossy(&raw)))
}

/// The broker id `/controller` under `root` names: ZooKeeper mode's active controller
/// (`None` while there is none — between the old one's session expiry and the election).
pub async fn controller(servers: &str, root: &str) -> Result<Option<i32>, String> {
    let path = format!("{root}/controller");
    let Some(raw) = read(servers, &path).await? else {
        return Ok(None);
    };
    serde_json::from_slice::<super::metadata::ControllerZnode>(&raw)
        .map(|z| Some(z.brokerid))
        .map_err(|e| format!("{path} holds {:?}: {e}", String::from_utf8_lossy(&raw)))
}

/// The migration record under `root` of the ensemble `servers` (`None`: no controller has
/// written one yet).
pub async fn state(servers: &str, root: &str) -> Result<Option<MigrationZnode>, String> {
    let path = format!("{root}/migration");
    let Some(raw) = read(servers, &path).await? else {
        return Ok(None);
    };
    parse_migration(&raw)
        .map(Some)
        .map_err(|e| format!("{path} holds {:?}: {e}", String::from_utf8_lossy(&raw)))
}

fn parse_migration(raw: &[u8]) -> Result<MigrationZnode, serde_json::Error> {
    serde_json::from_slice(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migration_znode_reads_as_kafka_writes_it() {
        // MigrationZNode.encode in Kafka 3.9 (kafka.zk.ZkData)
        let raw = br#"{"version":0,"kraft_controller_id":101,"kraft_controller_epoch":2,"kraft_metadata_offset":412,"kraft_metadata_epoch":2}"#;
        let z = parse_migration(raw).unwrap();
        assert_eq!(z.kraft_controller_id, 101);
        assert!(z.migrated());
        let fresh = br#"{"version":0,"kraft_controller_id":-1,"kraft_controller_epoch":-1,"kraft_metadata_offset":-1,"kraft_metadata_epoch":-1}"#;
        assert!(!parse_migration(fresh).unwrap().migrated());
        assert!(parse_migration(b"{}").is_err());
    }
}
