//! Metadata that must survive a migration beyond topics and partitions: topic configs,
//! client quotas, SCRAM credentials and ACLs. A `create-metadata` step creates a known set
//! through the admin API ([`MetadataSet::standard`]); at the end of the run the same items
//! are read back (DescribeConfigs, DescribeClientQuotas, DescribeUserScramCredentials,
//! DescribeAcls over kafka-protocol) and compared ([`compare`]) — what ZooKeeper held must
//! be what the KRaft quorum serves after a ZooKeeper→KRaft migration, for example.
//!
//! SCRAM credentials are compared by mechanism and iteration count, what Kafka discloses
//! (never the salted password); each is created with a random salt and the salted password
//! computed as the SASL client computes it ([`super::security::salted_password`]), as
//! `kafka-configs --add-config 'SCRAM-SHA-256=[password=…]'` does.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterUserScramCredentialsRequest, CreateAclsRequest,
    DescribeAclsRequest, DescribeClientQuotasRequest, DescribeConfigsRequest,
    DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use super::protocol::AdminError;
use super::ClusterAdmin;

/// The topic the standard set's configs are on (created by the step).
pub const TOPIC: &str = "kmh-metadata";

/// One client quota: its entity (`user`, `client-id` → name) and values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    /// Entity type → name.
    pub entity: BTreeMap<String, String>,
    /// Quota key → value (`producer_byte_rate`, …).
    pub values: BTreeMap<String, f64>,
}

/// One ACL binding, in the words Kafka's tools print.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Acl {
    /// `topic`, `group`, `cluster`, `transactional-id`.
    pub resource: String,
    /// The resource's name (or prefix).
    pub name: String,
    /// `literal` or `prefixed`.
    pub pattern: String,
    /// `User:NAME`.
    pub principal: String,
    /// `*` or an address.
    pub host: String,
    /// `read`, `write`, `describe`, …
    pub operation: String,
    /// `allow` or `deny`.
    pub permission: String,
}

/// A set of metadata items: what a step created, or what was found of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataSet {
    /// Topic → config overrides.
    pub topic_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas.
    pub quotas: Vec<Quota>,
    /// SCRAM user → mechanism (`SCRAM-SHA-256`) → iterations.
    pub scram: BTreeMap<String, BTreeMap<String, i32>>,
    /// ACL bindings (sorted).
    pub acls: Vec<Acl>,
}

/// What the end-of-run check found, as `metadata-survival.json` holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SurvivalCheck {
    /// What the `create-metadata` step created.
    pub created: MetadataSet,
    /// What was read back of it at the end (`None`: the check could not read).
    pub found: Option<MetadataSet>,
    /// Every item missing or different, in words (empty: intact).
    pub differences: Vec<String>,
    /// When the check itself could not run: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SurvivalCheck {
    /// True when the check ran and found every item as created.
    pub fn intact(&self) -> bool {
        self.error.is_none() && self.differences.is_empty()
    }
}

const QUOTA_USER: &str = "kmh-quota-user";
const QUOTA_CLIENT: &str = "kmh-quota-client";
const SCRAM_USER: &str = "kmh-scram-user";
const ACL_USER: &str = "User:kmh-acl-user";

impl MetadataSet {
    /// The set a `create-metadata` step creates: configs on [`TOPIC`], a user quota, a
    /// client-id quota and a user+client-id one, a SCRAM user with both mechanisms (and
    /// non-default iteration counts), and — with `acls` — literal and prefixed ACLs on
    /// topics, a group and the cluster.
    pub fn standard(acls: bool) -> MetadataSet {
        let s = |a: &str| a.to_string();
        let mut set = MetadataSet::default();
        set.topic_configs.insert(
            s(TOPIC),
            [
                (s("retention.ms"), s("604800000")),
                (s("max.message.bytes"), s("2097152")),
                (s("cleanup.policy"), s("compact,delete")),
            ]
            .into(),
        );
        set.quotas = vec![
            Quota {
                entity: [(s("user"), s(QUOTA_USER))].into(),
                values: [
                    (s("producer_byte_rate"), 1_048_576.0),
                    (s("consumer_byte_rate"), 2_097_152.0),
                ]
                .into(),
            },
            Quota {
                entity: [(s("client-id"), s(QUOTA_CLIENT))].into(),
                values: [(s("request_percentage"), 50.0)].into(),
            },
            Quota {
                entity: [
                    (s("user"), s(QUOTA_USER)),
                    (s("client-id"), s(QUOTA_CLIENT)),
                ]
                .into(),
                values: [(s("producer_byte_rate"), 524_288.0)].into(),
            },
        ];
        set.quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
        set.scram.insert(
            s(SCRAM_USER),
            [(s("SCRAM-SHA-256"), 8192), (s("SCRAM-SHA-512"), 4096)].into(),
        );
        if acls {
            let acl =
                |resource: &str, name: &str, pattern: &str, operation: &str, permission: &str| {
                    Acl {
                        resource: s(resource),
                        name: s(name),
                        pattern: s(pattern),
                        principal: s(ACL_USER),
                        host: s("*"),
                        operation: s(operation),
                        permission: s(permission),
                    }
                };
            set.acls = vec![
                acl("topic", TOPIC, "literal", "read", "allow"),
                acl("topic", TOPIC, "literal", "write", "allow"),
                acl("topic", "kmh-acl-", "prefixed", "describe", "allow"),
                acl("group", "kmh-acl-group", "literal", "read", "allow"),
                acl("topic", TOPIC, "literal", "delete", "deny"),
                acl(
                    "cluster",
                    "kafka-cluster",
                    "literal",
                    "describe-configs",
                    "allow",
                ),
            ];
            set.acls.sort();
        }
        set
    }
}

// Kafka's enum codes (org.apache.kafka.common.resource / acl).
const RESOURCES: &[(&str, i8)] = &[
    ("topic", 2),
    ("group", 3),
    ("cluster", 4),
    ("transactional-id", 5),
];
const PATTERNS: &[(&str, i8)] = &[("literal", 3), ("prefixed", 4)];
const OPERATIONS: &[(&str, i8)] = &[
    ("all", 2),
    ("read", 3),
    ("write", 4),
    ("create", 5),
    ("delete", 6),
    ("alter", 7),
    ("describe", 8),
    ("cluster-action", 9),
    ("describe-configs", 10),
    ("alter-configs", 11),
    ("idempotent-write", 12),
];
const PERMISSIONS: &[(&str, i8)] = &[("deny", 2), ("allow", 3)];
const ANY: i8 = 1;
const MECHANISMS: &[(&str, i8)] = &[("SCRAM-SHA-256", 1), ("SCRAM-SHA-512", 2)];
const RESOURCE_TOPIC: i8 = 2;

fn code(table: &[(&str, i8)], word: &str) -> i8 {
    table
        .iter()
        .find(|(w, _)| *w == word)
        .map_or(0, |(_, c)| *c)
}

fn word(table: &[(&str, i8)], c: i8) -> String {
    table
        .iter()
        .find(|(_, k)| *k == c)
        .map_or_else(|| format!("code {c}"), |(w, _)| w.to_string())
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn check(what: &str, code: i16, message: Option<&StrBytes>) -> Result<(), AdminError> {
    match AdminError::from_code(what, code, message) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl ClusterAdmin {
    /// Creates `set`'s quotas, SCRAM credentials and ACLs (its topic configs are given when
    /// its topic is created).
    pub fn create_metadata(&mut self, set: &MetadataSet) -> Result<(), AdminError> {
        let entries: Vec<EntryData> = set
            .quotas
            .iter()
            .map(|q| {
                EntryData::default()
                    .with_entity(
                        q.entity
                            .iter()
                            .map(|(t, n)| {
                                EntityData::default()
                                    .with_entity_type(text(t))
                                    .with_entity_name(Some(text(n)))
                            })
                            .collect(),
                    )
                    .with_ops(
                        q.values
                            .iter()
                            .map(|(k, v)| OpData::default().with_key(text(k)).with_value(*v))
                            .collect(),
                    )
            })
            .collect();
        if !entries.is_empty() {
            let resp = self.call_any(&AlterClientQuotasRequest::default().with_entries(entries))?;
            for e in &resp.entries {
                check("AlterClientQuotas", e.error_code, e.error_message.as_ref())?;
            }
        }
        let mut upsertions = Vec::new();
        for (user, mechanisms) in &set.scram {
            for (mechanism, iterations) in mechanisms {
                let mut salt = [0u8; 16];
                openssl::rand::rand_bytes(&mut salt).map_err(|e| AdminError::Protocol {
                    what: "SCRAM salt".into(),
                    message: e.to_string(),
                })?;
                upsertions.push(
                    ScramCredentialUpsertion::default()
                        .with_name(text(user))
                        .with_mechanism(code(MECHANISMS, mechanism))
                        .with_iterations(*iterations)
                        .with_salt(salt.to_vec().into())
                        .with_salted_password(
                            super::security::salted_password(
                                if mechanism == "SCRAM-SHA-512" {
                                    openssl::hash::MessageDigest::sha512()
                                } else {
                                    openssl::hash::MessageDigest::sha256()
                                },
                                &format!("{user}-secret"),
                                &salt,
                                *iterations as usize,
                            )
                            .map_err(|message| AdminError::Protocol {
                                what: "SCRAM salted password".into(),
                                message,
                            })?
                            .into(),
                        ),
                );
            }
        }
        if !upsertions.is_empty() {
            // ZooKeeper mode: only the controller takes them (KRaft brokers forward)
            let resp = self.call_controller(
                &AlterUserScramCredentialsRequest::default().with_upsertions(upsertions),
                |r| {
                    r.results
                        .iter()
                        .map(|x| x.error_code)
                        .find(|c| *c != 0)
                        .unwrap_or(0)
                },
            )?;
            for r in &resp.results {
                check(
                    "AlterUserScramCredentials",
                    r.error_code,
                    r.error_message.as_ref(),
                )?;
            }
        }
        if !set.acls.is_empty() {
            let creations = set
                .acls
                .iter()
                .map(|a| {
                    AclCreation::default()
                        .with_resource_type(code(RESOURCES, &a.resource))
                        .with_resource_name(text(&a.name))
                        .with_resource_pattern_type(code(PATTERNS, &a.pattern))
                        .with_principal(text(&a.principal))
                        .with_host(text(&a.host))
                        .with_operation(code(OPERATIONS, &a.operation))
                        .with_permission_type(code(PERMISSIONS, &a.permission))
                })
                .collect();
            let resp = self.call_any(&CreateAclsRequest::default().with_creations(creations))?;
            for r in &resp.results {
                check("CreateAcls", r.error_code, r.error_message.as_ref())?;
            }
        }
        Ok(())
    }

    /// Reads back what the cluster holds of the items in `created`: the same topics' config
    /// overrides of the same keys (set on the topic itself), every quota of the same entities, the
    /// same users' SCRAM credentials, and every ACL of the same principals.
    pub fn read_metadata(&mut self, created: &MetadataSet) -> Result<MetadataSet, AdminError> {
        let mut found = MetadataSet::default();
        if !created.topic_configs.is_empty() {
            let resources = created
                .topic_configs
                .keys()
                .map(|t| {
                    DescribeConfigsResource::default()
                        .with_resource_type(RESOURCE_TOPIC)
                        .with_resource_name(text(t))
                })
                .collect();
            let resp =
                self.call_any(&DescribeConfigsRequest::default().with_resources(resources))?;
            for r in &resp.results {
                if r.error_code == 3 {
                    continue; // UNKNOWN_TOPIC_OR_PARTITION: the topic is gone
                }
                check("DescribeConfigs", r.error_code, r.error_message.as_ref())?;
                // config_source 1: TOPIC_CONFIG, an override on the topic itself; only the
                // keys created (the topic's creation adds min.insync.replicas of its own)
                let wanted = created.topic_configs.get(r.resource_name.as_str());
                let overrides: BTreeMap<String, String> = r
                    .configs
                    .iter()
                    .filter(|c| c.config_source == 1)
                    .filter(|c| wanted.is_some_and(|w| w.contains_key(c.name.as_str())))
                    .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                    .collect();
                found
                    .topic_configs
                    .insert(r.resource_name.to_string(), overrides);
            }
        }
        if !created.quotas.is_empty() {
            // no component, not strict: every quota there is (the created entities are
            // picked out below)
            let resp = self.call_any(
                &DescribeClientQuotasRequest::default()
                    .with_components(Vec::new())
                    .with_strict(false),
            )?;
            check(
                "DescribeClientQuotas",
                resp.error_code,
                resp.error_message.as_ref(),
            )?;
            for e in resp.entries.iter().flatten() {
                let entity: BTreeMap<String, String> = e
                    .entity
                    .iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name
                                .as_ref()
                                .map_or_else(|| "<default>".into(), |n| n.to_string()),
                        )
                    })
                    .collect();
                if created.quotas.iter().any(|q| q.entity == entity) {
                    found.quotas.push(Quota {
                        entity,
                        values: e
                            .values
                            .iter()
                            .map(|v| (v.key.to_string(), v.value))
                            .collect(),
                    });
                }
            }
        }
        found.quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
        if !created.scram.is_empty() {
            let resp =
                self.call_any(&DescribeUserScramCredentialsRequest::default().with_users(None))?;
            check(
                "DescribeUserScramCredentials",
                resp.error_code,
                resp.error_message.as_ref(),
            )?;
            for r in &resp.results {
                let user = r.user.to_string();
                if !created.scram.contains_key(&user) || r.error_code != 0 {
                    continue;
                }
                found.scram.insert(
                    user,
                    r.credential_infos
                        .iter()
                        .map(|c| (word(MECHANISMS, c.mechanism), c.iterations))
                        .collect(),
                );
            }
        }
        if !created.acls.is_empty() {
            let resp = self.call_any(
                // (the generated defaults of the optional filters are empty strings, which
                // match nothing: None matches any)
                &DescribeAclsRequest::default()
                    .with_resource_name_filter(None)
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_resource_type_filter(ANY)
                    .with_pattern_type_filter(ANY)
                    .with_operation(ANY)
                    .with_permission_type(ANY),
            )?;
            check("DescribeAcls", resp.error_code, resp.error_message.as_ref())?;
            for r in &resp.resources {
                for a in &r.acls {
                    let acl = Acl {
                        resource: word(RESOURCES, r.resource_type),
                        name: r.resource_name.to_string(),
                        pattern: word(PATTERNS, r.pattern_type),
                        principal: a.principal.to_string(),
                        host: a.host.to_string(),
                        operation: word(OPERATIONS, a.operation),
                        permission: word(PERMISSIONS, a.permission_type),
                    };
                    if created.acls.iter().any(|c| c.principal == acl.principal) {
                        found.acls.push(acl);
                    }
                }
            }
            found.acls.sort();
        }
        Ok(found)
    }
}

/// Every item of `created` missing or different in `found`, in words; items `found` has
/// beyond them (an ACL of the same principal nobody created) too.
pub fn compare(created: &MetadataSet, found: &MetadataSet) -> Vec<String> {
    let mut d = Vec::new();
    for (topic, configs) in &created.topic_configs {
        let Some(have) = found.topic_configs.get(topic) else {
            d.push(format!(
                "topic `{topic}` is gone, with its config overrides"
            ));
            continue;
        };
        for (k, v) in configs {
            match have.get(k) {
                None => d.push(format!("topic `{topic}`: config `{k}` = {v} is gone")),
                Some(h) if h != v => d.push(format!(
                    "topic `{topic}`: config `{k}` is {h}, was set to {v}"
                )),
                Some(_) => {}
            }
        }
    }
    for q in &created.quotas {
        match found.quotas.iter().find(|f| f.entity == q.entity) {
            None => d.push(format!("the quota of {:?} is gone", q.entity)),
            Some(f) if f.values != q.values => d.push(format!(
                "the quota of {:?} is {:?}, was set to {:?}",
                q.entity, f.values, q.values
            )),
            Some(_) => {}
        }
    }
    for (user, mechanisms) in &created.scram {
        match found.scram.get(user) {
            None => d.push(format!("SCRAM user `{user}` is gone")),
            Some(f) if f != mechanisms => d.push(format!(
                "SCRAM user `{user}` has {f:?}, was given {mechanisms:?}"
            )),
            Some(_) => {}
        }
    }
    for a in &created.acls {
        if !found.acls.contains(a) {
            d.push(format!("ACL {a:?} is gone"));
        }
    }
    for a in &found.acls {
        if !created.acls.contains(a) {
            d.push(format!("ACL {a:?} appeared"));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intact_set_compares_equal_and_every_loss_is_named() {
        let created = MetadataSet::standard(true);
        assert!(compare(&created, &created.clone()).is_empty());
        let mut found = created.clone();
        found
            .topic_configs
            .get_mut(TOPIC)
            .unwrap()
            .remove("retention.ms");
        // sorted by entity: client-id, client-id + user, user
        found.quotas[0]
            .values
            .insert("request_percentage".into(), 25.0);
        found.quotas.remove(2);
        found
            .scram
            .get_mut(SCRAM_USER)
            .unwrap()
            .remove("SCRAM-SHA-512");
        let gone = found.acls.remove(2);
        let mut extra = gone.clone();
        extra.operation = "alter".into();
        found.acls.push(extra);
        let d = compare(&created, &found);
        assert_eq!(d.len(), 6, "{d:#?}");
        assert!(d[0].contains("`retention.ms` = 604800000 is gone"), "{d:?}");
        assert!(
            d.iter()
                .any(|l| l.contains("kmh-quota-user") && l.contains("gone")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.contains("is {\"request_percentage\": 25.0}")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.contains("SCRAM user `kmh-scram-user` has")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.contains("kmh-acl-") && l.ends_with("is gone")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.contains("\"alter\"") && l.ends_with("appeared")),
            "{d:?}"
        );
        let no_topic = MetadataSet::default();
        assert!(compare(&created, &no_topic)[0].contains("topic `kmh-metadata` is gone"));
    }

    #[test]
    fn acl_words_and_codes_agree_with_kafka() {
        assert_eq!(code(OPERATIONS, "describe-configs"), 10);
        assert_eq!(word(OPERATIONS, 12), "idempotent-write");
        assert_eq!(code(RESOURCES, "cluster"), 4);
        assert_eq!(word(PATTERNS, 4), "prefixed");
        assert_eq!(word(PERMISSIONS, 2), "deny");
        for a in MetadataSet::standard(true).acls {
            assert!(code(RESOURCES, &a.resource) > 0 && code(OPERATIONS, &a.operation) > 0);
        }
    }
}
