//! `zk copy` and `zk diff` against real ZooKeeper servers: a tree with data and ACLs,
//! ephemeral nodes skipped, transactions that split the tree at batch boundaries, a node
//! too big to share a transaction, the modification-time filter of the catch-up pass, and
//! a diff that names each kind of difference. Needs Java and the Kafka distribution (the
//! ZooKeeper jars): without them it fails with `NOT RUN:`.

use std::path::Path;

mod common;

use harness::cluster::Cluster;
use harness::zk::tree::{self, CopyOptions, Difference};
use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Permission};

/// A one-server ZooKeeper "ensemble" on its own loopback address.
fn ensemble(dir: &Path, name: &str) -> (Cluster, String) {
    let run_id = format!("zktree-{name}-{}", std::process::id());
    let c = common::zookeeper_cluster(&dir.join(name), &run_id, &["zk1"]);
    let connect = c.zookeeper_connect();
    (c, connect)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn put(c: &Client, path: &str, data: &[u8]) {
    c.create(
        path,
        data,
        &CreateMode::Persistent.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// 50 persistent nodes under /kafka (with /kafka), 3 ephemeral ones held by a second
/// session, which the caller keeps alive.
async fn kafka_like_tree(c: &Client, connect: &str) -> Client {
    put(c, "/kafka", b"").await;
    put(c, "/kafka/config", b"").await;
    put(c, "/kafka/config/topics", b"").await;
    for i in 0..40 {
        put(
            c,
            &format!("/kafka/config/topics/t{i:02}"),
            format!("{{\"version\":1,\"config\":{{\"n\":{i}}}}}").as_bytes(),
        )
        .await;
    }
    put(c, "/kafka/a", b"a").await;
    put(c, "/kafka/a/b", b"b").await;
    put(c, "/kafka/a/b/c", b"c").await;
    put(c, "/kafka/a/b/c/d", &(0u8..=255).collect::<Vec<u8>>()).await; // every byte value
    let read_only = [Acl::new(Permission::READ, AuthId::new("world", "anyone"))];
    c.create(
        "/kafka/sealed",
        b"do not touch",
        &CreateMode::Persistent.with_acls(Acls::new(&read_only)),
    )
    .await
    .unwrap();
    put(c, "/kafka/brokers", b"").await;
    // ephemerals belong to a session of the source: a second client, kept alive
    let session = tree::connect(connect).await.unwrap();
    put(&session, "/kafka/brokers/ids", b"").await;
    for id in 1..=3 {
        session
            .create(
                &format!("/kafka/brokers/ids/{id}"),
                b"{}",
                &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
            )
            .await
            .unwrap();
    }
    session
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn copy_diff_and_the_catch_up_pass_on_real_zookeeper() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let (_src_cluster, src_connect) = ensemble(dir.path(), "src");
    let (_dst_cluster, dst_connect) = ensemble(dir.path(), "dst");
    rt().block_on(async {
        let src = tree::connect(&src_connect).await.unwrap();
        let dst = tree::connect(&dst_connect).await.unwrap();
        let _session = kafka_like_tree(&src, &src_connect).await;
        // /kafka, config, topics, 40 topics, a/b/c/d, sealed, brokers, brokers/ids
        let persistent = 1 + 1 + 1 + 40 + 4 + 1 + 1 + 1;

        // first pass, 7 operations per transaction: parents and children straddle batches
        let r = tree::copy(
            &src,
            &dst,
            "/kafka",
            &CopyOptions {
                batch: 7,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(r.created, persistent, "{r:?}");
        assert_eq!(r.ephemerals_skipped, 3, "{r:?}");
        assert_eq!(r.transactions, persistent.div_ceil(7), "{r:?}");
        assert!(tree::diff(&src, &dst, "/kafka", true)
            .await
            .unwrap()
            .is_empty());
        let with_ephemerals = tree::diff(&src, &dst, "/kafka", false).await.unwrap();
        assert_eq!(
            with_ephemerals,
            (1..=3)
                .map(|i| Difference::OnlyInFirst {
                    path: format!("/kafka/brokers/ids/{i}")
                })
                .collect::<Vec<_>>()
        );
        // data byte for byte, and the ACL
        assert_eq!(
            dst.get_data("/kafka/a/b/c/d").await.unwrap().0,
            (0u8..=255).collect::<Vec<u8>>()
        );
        let (acl, _) = dst.get_acl("/kafka/sealed").await.unwrap();
        assert_eq!(
            acl,
            vec![Acl::new(Permission::READ, AuthId::new("world", "anyone"))]
        );

        // catch-up: change 3 nodes and add 3 after T; only those are written
        std::thread::sleep(std::time::Duration::from_millis(20));
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        std::thread::sleep(std::time::Duration::from_millis(20));
        for i in [3, 17, 29] {
            src.set_data(&format!("/kafka/config/topics/t{i:02}"), b"changed", None)
                .await
                .unwrap();
        }
        put(&src, "/kafka/new", b"n").await;
        put(&src, "/kafka/new/x", b"x").await;
        put(&src, "/kafka/config/topics/t99", b"late").await;
        assert_eq!(
            tree::diff(&src, &dst, "/kafka", true).await.unwrap().len(),
            3 + 2,
            "3 data differences, /kafka/new only in first (its child is not compared)"
        );
        let r = tree::copy(
            &src,
            &dst,
            "/kafka",
            &CopyOptions {
                batch: 100,
                mtime_after: Some(t),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!((r.created, r.updated), (3, 3), "{r:?}");
        assert_eq!(
            r.unchanged,
            r.visited - 6 - 3,
            "everything else left alone: {r:?}"
        );
        assert!(tree::diff(&src, &dst, "/kafka", true)
            .await
            .unwrap()
            .is_empty());
    });
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_node_too_big_to_share_a_transaction_gets_its_own() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let (_s, src_connect) = ensemble(dir.path(), "bsrc");
    let (_d, dst_connect) = ensemble(dir.path(), "bdst");
    rt().block_on(async {
        let src = tree::connect(&src_connect).await.unwrap();
        let dst = tree::connect(&dst_connect).await.unwrap();
        put(&src, "/big", b"").await;
        // two 600 KiB nodes: together over the server's 1 MiB request limit
        for i in 0..2 {
            put(&src, &format!("/big/n{i}"), &vec![b'x'; 600 * 1024]).await;
        }
        put(&src, "/big/small", b"s").await;
        let r = tree::copy(&src, &dst, "/big", &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.created, 4);
        // 512 KiB per transaction: each 600 KiB node travels alone (after /big, before
        // /big/small) although the count limit (100) would allow one transaction
        assert_eq!(r.transactions, 4, "split by bytes, not by count: {r:?}");
        assert!(tree::diff(&src, &dst, "/big", true)
            .await
            .unwrap()
            .is_empty());
    });
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn prune_deletes_what_the_source_no_longer_has_but_not_live_ephemerals() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let (_s, src_connect) = ensemble(dir.path(), "psrc");
    let (_d, dst_connect) = ensemble(dir.path(), "pdst");
    rt().block_on(async {
        let src = tree::connect(&src_connect).await.unwrap();
        let dst = tree::connect(&dst_connect).await.unwrap();
        put(&src, "/kafka", b"").await;
        for t in ["a", "b", "gone"] {
            put(&src, &format!("/kafka/{t}"), b"x").await;
            put(&src, &format!("/kafka/{t}/p0"), b"y").await;
        }
        tree::copy(&src, &dst, "/kafka", &CopyOptions::default())
            .await
            .unwrap();
        // on the source a subtree is deleted after the first copy (a topic deleted);
        // on the target a broker registered (ephemeral) under a node the source lacks
        src.delete("/kafka/gone/p0", None).await.unwrap();
        src.delete("/kafka/gone", None).await.unwrap();
        put(&dst, "/kafka/ids", b"").await;
        let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        dst.create("/kafka/ids/1", b"broker", &ephemeral)
            .await
            .unwrap();
        // without prune the catch-up leaves the deleted topic on the target
        let r = tree::copy(&src, &dst, "/kafka", &CopyOptions::default())
            .await
            .unwrap();
        assert_eq!(r.deleted, 0);
        assert!(dst.check_stat("/kafka/gone/p0").await.unwrap().is_some());
        let r = tree::copy(
            &src,
            &dst,
            "/kafka",
            &CopyOptions {
                prune: true,
                batch: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(r.deleted, 2, "the subtree, children first: {r:?}");
        assert!(dst.check_stat("/kafka/gone").await.unwrap().is_none());
        // the live ephemeral and its parent stay
        assert!(dst.check_stat("/kafka/ids/1").await.unwrap().is_some());
        assert_eq!(
            tree::diff(&src, &dst, "/kafka", true).await.unwrap(),
            vec![tree::Difference::OnlyInSecond {
                path: "/kafka/ids".into()
            }]
        );
    });
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn diff_names_every_kind_of_difference() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let (_a, a_connect) = ensemble(dir.path(), "da");
    let (_b, b_connect) = ensemble(dir.path(), "db");
    rt().block_on(async {
        let a = tree::connect(&a_connect).await.unwrap();
        let b = tree::connect(&b_connect).await.unwrap();
        for c in [&a, &b] {
            put(c, "/t", b"").await;
            put(c, "/t/same", b"1").await;
        }
        put(&a, "/t/data", b"one").await;
        put(&b, "/t/data", b"three").await;
        put(&a, "/t/only-a", b"").await;
        put(&b, "/t/only-b", b"").await;
        put(&a, "/t/acl", b"").await;
        b.create(
            "/t/acl",
            b"",
            &CreateMode::Persistent.with_acls(Acls::anyone_read()),
        )
        .await
        .unwrap();
        let d = tree::diff(&a, &b, "/t", true).await.unwrap();
        assert_eq!(
            d,
            vec![
                Difference::OnlyInFirst {
                    path: "/t/only-a".into()
                },
                Difference::OnlyInSecond {
                    path: "/t/only-b".into()
                },
                Difference::Data {
                    path: "/t/data".into(),
                    first_len: 3,
                    second_len: 5
                },
                Difference::Acl {
                    path: "/t/acl".into()
                },
            ]
        );
    });
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_zk_commands_copy_and_compare() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let (_a, a_connect) = ensemble(dir.path(), "ca");
    let (_b, b_connect) = ensemble(dir.path(), "cb");
    rt().block_on(async {
        let a = tree::connect(&a_connect).await.unwrap();
        put(&a, "/app", b"root").await;
        for i in 0..5 {
            put(&a, &format!("/app/n{i}"), b"v").await;
        }
    });
    let harness = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(args)
            .output()
            .unwrap()
    };
    let before = harness(&["zk", "diff", &a_connect, &b_connect, "/app"]);
    assert_eq!(before.status.code(), Some(1), "differences: exit 1");
    assert!(String::from_utf8_lossy(&before.stdout)
        .contains("\"kind\":\"only_in_first\",\"path\":\"/app\""));
    let copy = harness(&["zk", "copy", &a_connect, &b_connect, "/app", "--batch", "2"]);
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    assert!(
        String::from_utf8_lossy(&copy.stdout).contains("6 created"),
        "{}",
        String::from_utf8_lossy(&copy.stdout)
    );
    assert!(String::from_utf8_lossy(&copy.stdout).contains("3 transactions"));
    let after = harness(&["zk", "diff", &a_connect, &b_connect, "/app"]);
    assert_eq!(
        after.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    let bad = harness(&["zk", "copy", &a_connect, &b_connect, "/app", "--batch", "0"]);
    assert_eq!(bad.status.code(), Some(2));
}
