//! Subtree copy and diff between two ZooKeeper ensembles (seed 000's block-and-copy).
//!
//! **Copy** walks the source subtree in pre-order (a parent always before its children)
//! and writes it to the target in multi-op transactions of at most `batch` operations and
//! `max_batch_bytes` of data — kept under the server's request size limit (`jute.maxbuffer`,
//! 1 MiB by default). Ephemeral nodes belong to sessions of the source ensemble and are
//! skipped, with their (necessarily empty) subtrees. Data and ACLs are copied; a node that
//! exists on the target is updated only when its data differs. With `mtime_after`, only
//! nodes modified at or after that time are written — the catch-up pass after the first
//! copy; the walk still visits everything, since a changed node can sit under an unchanged
//! one. Deletions are not propagated: `diff` shows them.
//!
//! **Diff** walks both subtrees and names every path that is only on one side, or whose
//! data or ACL differ.

use std::time::{Duration, Instant};

use serde::Serialize;
use zookeeper_client::{Acl, Acls, Client, CreateMode, CreateOptions, MultiWriter};

/// Client errors, with the path they happened at.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct TreeError {
    /// Where.
    pub path: String,
    /// What the client said.
    #[source]
    pub source: zookeeper_client::Error,
}

impl From<TreeError> for crate::error::ZkError {
    fn from(e: TreeError) -> Self {
        crate::error::ZkError::Op {
            op: "ZooKeeper at",
            at: e.path,
            source: e.source,
        }
    }
}

fn at(path: &str) -> impl FnOnce(zookeeper_client::Error) -> TreeError + '_ {
    move |source| TreeError {
        path: path.to_string(),
        source,
    }
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Operations per transaction.
    pub batch: usize,
    /// Data bytes per transaction (keep well under `jute.maxbuffer`).
    pub max_batch_bytes: usize,
    /// Only write nodes modified at or after this time (ms since epoch, ZooKeeper's mtime).
    pub mtime_after: Option<i64>,
    /// Delete target nodes under the path that the source no longer has (a catch-up pass
    /// after deletions on the source); ephemeral target nodes are left alone.
    pub prune: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            batch: 100,
            max_batch_bytes: 512 * 1024,
            mtime_after: None,
            prune: false,
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CopyReport {
    /// Source nodes visited (ephemerals included).
    pub visited: u64,
    /// Nodes created on the target.
    pub created: u64,
    /// Existing target nodes whose data was replaced.
    pub updated: u64,
    /// Nodes already equal, or unchanged since `mtime_after`.
    pub unchanged: u64,
    /// Ephemeral nodes skipped.
    pub ephemerals_skipped: u64,
    /// Target nodes deleted (`prune`).
    pub deleted: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Wall time, ms.
    pub elapsed_ms: u64,
}

/// Joins a parent path and a child name.
fn child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// A pending write of a transaction.
enum Write {
    Create {
        path: String,
        data: Vec<u8>,
        acls: Vec<Acl>,
    },
    Set {
        path: String,
        data: Vec<u8>,
    },
    Delete {
        path: String,
    },
}

impl Write {
    fn path(&self) -> &str {
        match self {
            Write::Create { path, .. } | Write::Set { path, .. } | Write::Delete { path } => path,
        }
    }
}

struct Batcher<'a> {
    dst: &'a Client,
    opts: &'a CopyOptions,
    pending: Vec<Write>,
    bytes: usize,
    report: &'a mut CopyReport,
}

impl Batcher<'_> {
    async fn push(&mut self, w: Write) -> Result<(), TreeError> {
        let size = match &w {
            Write::Create { data, .. } | Write::Set { data, .. } => data.len(),
            Write::Delete { path } => path.len(),
        };
        if !self.pending.is_empty()
            && (self.pending.len() >= self.opts.batch
                || self.bytes + size > self.opts.max_batch_bytes)
        {
            self.flush().await?;
        }
        self.bytes += size;
        self.pending.push(w);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TreeError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let first = self.pending[0].path().to_string();
        let mut multi: MultiWriter<'_> = self.dst.new_multi_writer();
        for w in &self.pending {
            match w {
                Write::Create { path, data, acls } => {
                    let options: CreateOptions<'_> =
                        CreateMode::Persistent.with_acls(Acls::from(acls.as_slice()));
                    multi.add_create(path, data, &options).map_err(at(path))?;
                }
                Write::Set { path, data } => {
                    multi.add_set_data(path, data, None).map_err(at(path))?
                }
                Write::Delete { path } => multi.add_delete(path, None).map_err(at(path))?,
            }
        }
        multi.commit().await.map_err(|e| match e {
            // name the operation that failed, not just the transaction
            zookeeper_client::MultiWriteError::OperationFailed { index, source } => {
                let path = self.pending[index].path().to_string();
                TreeError { path, source }
            }
            other => TreeError {
                path: format!("transaction starting at {first}"),
                source: other.into(),
            },
        })?;
        self.report.transactions += 1;
        self.pending.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// Copies the subtree at `path` from `src` to `dst`.
pub async fn copy(
    src: &Client,
    dst: &Client,
    path: &str,
    opts: &CopyOptions,
) -> Result<CopyReport, TreeError> {
    let started = Instant::now();
    let mut report = CopyReport::default();
    {
        let mut batcher = Batcher {
            dst,
            opts,
            pending: Vec::new(),
            bytes: 0,
            report: &mut report,
        };
        // pre-order, children sorted: deterministic, and parents before children
        let mut stack = vec![path.to_string()];
        // the target's ancestors of `path` must exist
        let mut ancestor = String::new();
        for part in path
            .split('/')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, a)| a.to_vec())
            .unwrap_or_default()
        {
            ancestor = format!("{ancestor}/{part}");
            if dst
                .check_stat(&ancestor)
                .await
                .map_err(at(&ancestor))?
                .is_none()
            {
                batcher
                    .push(Write::Create {
                        path: ancestor.clone(),
                        data: Vec::new(),
                        acls: Acls::anyone_all().iter().cloned().collect(),
                    })
                    .await?;
            }
        }
        while let Some(p) = stack.pop() {
            let (data, stat) = match src.get_data(&p).await {
                Ok(v) => v,
                Err(zookeeper_client::Error::NoNode) => continue, // deleted while we walk
                Err(e) => return Err(at(&p)(e)),
            };
            batcher.report.visited += 1;
            if stat.ephemeral_owner != 0 {
                batcher.report.ephemerals_skipped += 1;
                continue;
            }
            let changed = opts.mtime_after.is_none_or(|t| stat.mtime >= t);
            if changed && p != "/" {
                let target = dst.check_stat(&p).await.map_err(at(&p))?;
                match target {
                    None => {
                        let (acls, _) = src.get_acl(&p).await.map_err(at(&p))?;
                        batcher.report.created += 1;
                        batcher
                            .push(Write::Create {
                                path: p.clone(),
                                data,
                                acls,
                            })
                            .await?;
                    }
                    Some(_) => {
                        let (existing, _) = dst.get_data(&p).await.map_err(at(&p))?;
                        if existing != data {
                            batcher.report.updated += 1;
                            batcher
                                .push(Write::Set {
                                    path: p.clone(),
                                    data,
                                })
                                .await?;
                        } else {
                            batcher.report.unchanged += 1;
                        }
                    }
                }
            } else {
                batcher.report.unchanged += 1;
            }
            let mut children = match src.list_children(&p).await {
                Ok(c) => c,
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(at(&p)(e)),
            };
            children.sort();
            // Zookeeper's own subtree is not Kafka's data
            children.retain(|c| !(p == "/" && c == "zookeeper"));
            if opts.prune {
                let extra: Vec<String> = match dst.list_children(&p).await {
                    Ok(c) => c
                        .into_iter()
                        .filter(|c| !(children.contains(c) || p == "/" && c == "zookeeper"))
                        .collect(),
                    Err(zookeeper_client::Error::NoNode) => Vec::new(),
                    Err(e) => return Err(at(&p)(e)),
                };
                for name in extra {
                    prune(dst, &child(&p, &name), &mut batcher).await?;
                }
            }
            for c in children.into_iter().rev() {
                stack.push(child(&p, &c));
            }
        }
        batcher.flush().await?;
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Deletes the target subtree at `path`, children first; ephemeral nodes (a live
/// session's, e.g. a broker already registered on the target) are kept, and so their
/// ancestors.
async fn prune(dst: &Client, path: &str, batcher: &mut Batcher<'_>) -> Result<bool, TreeError> {
    // iterative post-order: (path, children pushed?)
    let mut stack = vec![(path.to_string(), false)];
    let mut kept: std::collections::HashSet<String> = std::collections::HashSet::new();
    while let Some((p, expanded)) = stack.pop() {
        if !expanded {
            let stat = match dst.check_stat(&p).await.map_err(at(&p))? {
                Some(s) => s,
                None => continue,
            };
            if stat.ephemeral_owner != 0 {
                kept.insert(p.clone());
                continue;
            }
            stack.push((p.clone(), true));
            let names = match dst.list_children(&p).await {
                Ok(c) => c,
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(at(&p)(e)),
            };
            for n in names {
                stack.push((child(&p, &n), false));
            }
        } else if kept.iter().any(|k| k.starts_with(&format!("{p}/"))) {
            kept.insert(p);
        } else {
            batcher.report.deleted += 1;
            batcher.push(Write::Delete { path: p }).await?;
        }
    }
    Ok(!kept.contains(path))
}

/// How two subtrees differ at one path.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// Only in the first tree.
    OnlyInFirst {
        /// Path.
        path: String,
    },
    /// Only in the second tree.
    OnlyInSecond {
        /// Path.
        path: String,
    },
    /// Both have it, with different data.
    Data {
        /// Path.
        path: String,
        /// Bytes in the first.
        first_len: usize,
        /// Bytes in the second.
        second_len: usize,
    },
    /// Both have it, with different ACLs.
    Acl {
        /// Path.
        path: String,
    },
}

/// Compares the subtrees at `path`; ephemeral nodes are ignored when `skip_ephemerals`.
pub async fn diff(
    a: &Client,
    b: &Client,
    path: &str,
    skip_ephemerals: bool,
) -> Result<Vec<Difference>, TreeError> {
    let mut out = Vec::new();
    let mut stack = vec![path.to_string()];
    while let Some(p) = stack.pop() {
        let ra = node(a, &p, skip_ephemerals).await?;
        let rb = node(b, &p, skip_ephemerals).await?;
        let (na, nb) = match (ra, rb) {
            (None, None) => continue,
            (Some(_), None) => {
                out.push(Difference::OnlyInFirst { path: p });
                continue;
            }
            (None, Some(_)) => {
                out.push(Difference::OnlyInSecond { path: p });
                continue;
            }
            (Some(x), Some(y)) => (x, y),
        };
        if na.data != nb.data {
            out.push(Difference::Data {
                path: p.clone(),
                first_len: na.data.len(),
                second_len: nb.data.len(),
            });
        }
        if na.acl != nb.acl {
            out.push(Difference::Acl { path: p.clone() });
        }
        let mut names: Vec<String> = na.children.into_iter().chain(nb.children).collect();
        names.sort();
        names.dedup();
        names.retain(|c| !(p == "/" && c == "zookeeper"));
        for c in names.into_iter().rev() {
            stack.push(child(&p, &c));
        }
    }
    out.sort();
    Ok(out)
}

struct NodeView {
    data: Vec<u8>,
    acl: Vec<String>,
    children: Vec<String>,
}

async fn node(c: &Client, p: &str, skip_ephemerals: bool) -> Result<Option<NodeView>, TreeError> {
    let (data, stat) = match c.get_data(p).await {
        Ok(v) => v,
        Err(zookeeper_client::Error::NoNode) => return Ok(None),
        Err(e) => return Err(at(p)(e)),
    };
    if skip_ephemerals && stat.ephemeral_owner != 0 {
        return Ok(None);
    }
    let (acls, _) = c.get_acl(p).await.map_err(at(p))?;
    let mut acl: Vec<String> = acls.iter().map(|a| format!("{a:?}")).collect();
    acl.sort();
    let children = match c.list_children(p).await {
        Ok(v) => v,
        Err(zookeeper_client::Error::NoNode) => Vec::new(),
        Err(e) => return Err(at(p)(e)),
    };
    Ok(Some(NodeView {
        data,
        acl,
        children,
    }))
}

/// Connects to an ensemble (`host:port,host:port`), with a session timeout fit for copying.
pub async fn connect(ensemble: &str) -> Result<Client, TreeError> {
    Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(ensemble)
        .await
        .map_err(|e| TreeError {
            path: ensemble.to_string(),
            source: e,
        })
}
