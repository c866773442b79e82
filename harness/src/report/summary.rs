//! The terminal summary a run ends with.

use std::path::Path;

use super::judge::is_partition_window;
use super::Report;
use crate::check::{Window, WindowKind, WindowSubject};

/// The terminal summary.
pub fn summary(report: &Report, run_dir: &Path) -> String {
    let p = &report.producers;
    let a = &report.anomalies;
    let mut s = String::new();
    s.push_str(&format!(
        "\n== {} — run {}\n",
        report.scenario, report.run_id
    ));
    s.push_str(&format!(
        "producers: sent {} acked {} failed {} indeterminate {} no-outcome {}\n",
        p.sent, p.acked, p.failed, p.indeterminate, p.no_outcome
    ));
    s.push_str(&format!(
        "consumers: received {} (distinct {}); final read {}/{} partitions, {} records\n",
        report.consumers.received,
        report.consumers.distinct,
        report.final_read.complete,
        report.final_read.partitions,
        report.final_read.records
    ));
    s.push_str(&format!(
        "anomalies: lost {} (read before loss {}) unverified {} duplicate {} reordered {} inconsistent-offset {} unexpected {} poll-gap {} poll-regression {} unconsumed {}\n",
        a.lost, a.lost_read_before, a.unverified, a.duplicate, a.reordered, a.inconsistent_offset, a.unexpected, a.poll_gap, a.poll_regression, a.unconsumed
    ));
    if a.expired + a.foreign + a.corrupt + a.silent_producers + a.dead_workers > 0 {
        s.push_str(&format!(
            "  expired {} (removed by retention: not lost, not verified) foreign {} corrupt {} silent-producers {} dead-workers {}\n",
            a.expired, a.foreign, a.corrupt, a.silent_producers, a.dead_workers
        ));
    }
    if let Some(t) = &report.transactions {
        s.push_str(&format!(
            "transactions: committed {} aborted {} (on purpose) aborted-after-error {} unknown {}; records aborted {}, without an end {}; aborted-read {} non-atomic-read {}; longest {} ms (in `{}`); write cycles (G0, allowed) {}\n",
            t.committed, t.aborted, t.aborted_after_error, t.unknown, p.aborted, t.records_without_end, a.aborted_read, a.non_atomic_read, t.longest_ms, t.longest_step, t.write_cycles
        ));
    }
    if let Some(c) = &report.copy {
        s.push_str(&format!(
            "pipeline {} → {}: {} input records, copied once {}, missing {}, duplicates {}, not in input {}; transactions committed {} aborted {} unknown {}; {}\n",
            c.from, c.to, c.input_records, c.copied_once, c.missing, c.duplicates, c.not_in_input,
            c.transactions.committed, c.transactions.aborted, c.transactions.unknown,
            if c.caught_up { "caught up".to_string() } else { format!("did not catch up: {}", c.catch_up_note) }
        ));
    }
    let st = &report.startup_ms;
    if let (Some(c), Some(t), Some(w)) = (st.cluster_up, st.topics_ready, st.workers_ready) {
        s.push_str(&format!(
            "start-up: cluster up {:.1} s, topics ready +{:.1} s, workers ready +{:.1} s ({:.1} s)\n",
            c as f64 / 1e3,
            t.saturating_sub(c) as f64 / 1e3,
            w.saturating_sub(t) as f64 / 1e3,
            w as f64 / 1e3
        ));
    }
    for (step, n) in &report.lost_by_step {
        s.push_str(&format!("  lost {n} in step `{step}`\n"));
    }
    for d in &report.dead_workers {
        let last = d.stderr.lines().last().unwrap_or("");
        s.push_str(&format!(
            "  worker {} {} (seen at t={}ms); last stderr line: {last}\n",
            d.worker, d.how, d.seen_ms
        ));
    }
    for c in &report.logs_cut_short_at {
        s.push_str(&format!(
            "  log {} cut short at byte {} after {} events: a worker killed mid-write, or \
             damage; nothing after it was checked\n",
            c.path, c.at_byte, c.events_before
        ));
    }
    for q in report.producer_silences.iter().take(10) {
        s.push_str(&format!(
            "  producer {} made no attempt to send from t={}ms to t={}ms{} (in `{}`)\n",
            q.producer,
            q.start_ms,
            q.end_ms,
            if q.until_stop {
                ", until the producers stopped"
            } else {
                ""
            },
            q.step
        ));
    }
    if a.duplicate_after_epoch_bump > 0 {
        s.push_str(&format!(
            "  {} of the {} duplicates were in flight when their producer's client bumped its \
             epoch (re-sent with new sequence numbers: librdkafka#4953)\n",
            a.duplicate_after_epoch_bump, a.duplicate
        ));
    }
    for r in report.client_renewals.iter().take(10) {
        s.push_str(&format!(
            "  producer {} {} at t={}ms in `{}` after {}, {} record(s) in flight\n",
            r.producer,
            if r.kind == workers::renewal::RenewalKind::EpochBump {
                format!("bumped its epoch to {}", r.epoch)
            } else {
                format!("took producer id {}", r.producer_id)
            },
            r.at_ms,
            r.step,
            r.reason,
            r.in_flight
        ));
    }
    if report.client_renewals.len() > 10 {
        s.push_str(&format!(
            "  … {} more client renewals in report.json\n",
            report.client_renewals.len() - 10
        ));
    }
    let windows: Vec<&Window> = report
        .unavailability
        .iter()
        .filter(|w| is_partition_window(w))
        .collect();
    s.push_str(&format!(
        "unavailability: {} partition windows, longest {} ms\n",
        windows.len(),
        report.max_unavailable_ms
    ));
    for w in report
        .unavailability
        .iter()
        .filter(|w| w.partition == WindowSubject::Cluster)
        .take(10)
    {
        s.push_str(&format!(
            "  cluster {} window {} ms at t={}ms in `{}`\n",
            w.kind, w.duration_ms, w.start_ms, w.step
        ));
    }
    s.push_str(&format!(
        "latency: ack p50 {} ms p99 {} ms max {} ms; e2e p50 {} ms p99 {} ms\n",
        report.latency_ms.ack.p50,
        report.latency_ms.ack.p99,
        report.latency_ms.ack.max,
        report.latency_ms.e2e.p50,
        report.latency_ms.e2e.p99
    ));
    if !report.zookeeper.is_empty() {
        let per: Vec<String> = report
            .zookeeper
            .iter()
            .map(|(n, z)| {
                format!(
                    "{n} {}/{} failed, p99 {} ms",
                    z.failures, z.operations, z.p99_ms
                )
            })
            .collect();
        s.push_str(&format!("zookeeper smoke test: {}\n", per.join("; ")));
        for w in report
            .unavailability
            .iter()
            .filter(|w| matches!(w.kind, WindowKind::Ensemble | WindowKind::ZooKeeper))
            .take(20)
        {
            s.push_str(&format!(
                "  {} unavailable {} ms at t={}ms in `{}`{}\n",
                w.partition,
                w.duration_ms,
                w.start_ms,
                w.step,
                if w.open { " (never recovered)" } else { "" }
            ));
        }
    }
    for w in report.zookeeper_splits.iter().take(10) {
        s.push_str(&format!(
            "  {} SPLIT BRAIN {} from t={}ms to t={}ms in `{}`\n",
            w.partition, w.kind, w.start_ms, w.end_ms, w.step
        ));
    }
    if let Some(m) = &report.kafka_metadata {
        s.push_str(&metadata_lines("kafka metadata", m));
    }
    if let Some(m) = &report.metadata_survival {
        let c = &m.created;
        let items = format!(
            "{} topic config(s), {} quota(s), {} SCRAM user(s), {} ACL(s)",
            c.topic_configs.values().map(|v| v.len()).sum::<usize>(),
            c.quotas.len(),
            c.scram.len(),
            c.acls.len()
        );
        match (&m.error, m.differences.is_empty()) {
            (Some(e), _) => s.push_str(&format!("metadata survival ({items}): not checked: {e}\n")),
            (None, true) => s.push_str(&format!("metadata survival: {items}, all intact\n")),
            (None, false) => {
                s.push_str(&format!(
                    "metadata survival ({items}): {} difference(s)\n",
                    m.differences.len()
                ));
                for d in m.differences.iter().take(10) {
                    s.push_str(&format!("  {d}\n"));
                }
            }
        }
    }
    for a in &report.audits {
        s.push_str(&format!(
            "audit `{}`: {} partition(s) with fewer than {} replicas or under min ISR{}\n",
            a.step,
            a.findings.len(),
            a.min_replicas,
            if a.findings.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    a.findings
                        .iter()
                        .take(6)
                        .map(|f| format!("{}/{} {}", f.topic, f.partition, f.problems.join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ));
    }
    for r in &report.reassignments {
        let slowest = r.partitions.iter().map(|p| p.took_ms).max().unwrap_or(0);
        let windows: usize = r.partitions.iter().map(|p| p.windows).sum();
        s.push_str(&format!(
            "reassignment `{}`{}: {} partition(s), {} bytes copied, {} ms (slowest partition {} ms){}, {} window(s) on moving partitions\n",
            r.step,
            r.topic.as_deref().map(|t| format!(" [{t}]")).unwrap_or_default(),
            r.partitions.len(),
            r.bytes,
            r.end_ms.saturating_sub(r.start_ms),
            slowest,
            r.throttle.map(|t| format!(", throttle {t} B/s")).unwrap_or_default(),
            windows
        ));
    }
    for c in &report.created_topics {
        let t = &c.created;
        let most = |f: fn(&crate::cluster::ProcessResources) -> u64| {
            t.nodes.values().map(f).max().unwrap_or(0)
        };
        s.push_str(&format!(
            "created `{}`: {} topic(s), {} partitions × RF {} ({} in the cluster), all led after {:.1} s{}\n",
            c.step,
            t.topics,
            t.partitions,
            t.replication,
            t.cluster_partitions,
            t.led_ms as f64 / 1000.0,
            if t.nodes.is_empty() {
                String::new()
            } else {
                format!(
                    "; busiest Kafka process: {} open files, {} memory maps, {} MiB resident",
                    most(|r| r.open_files),
                    most(|r| r.memory_maps),
                    most(|r| r.rss_mib)
                )
            }
        ));
    }
    for f in &report.failovers {
        s.push_str(&format!(
            "failover `{}`: {} {} → active controller {} after {:.2} s, all {} partitions led after {:.2} s (at most {} leaderless), {} client window(s) meanwhile, longest {} ms\n",
            f.step,
            f.measure.how,
            f.measure.lost,
            f.measure.controller,
            f.measure.controller_ms as f64 / 1000.0,
            f.measure.partitions,
            f.measure.leaders_ms as f64 / 1000.0,
            f.measure.leaderless_max,
            f.windows,
            f.max_window_ms
        ));
    }
    if let Some(o) = &report.oracle {
        s.push_str(&format!(
            "second oracle ({}, topic {}): {} acked, {} lost, {} duplicates in its final read{}; kafkatest: {} — {}\n",
            o.kind,
            o.topic,
            o.acked,
            o.lost,
            o.duplicates,
            if o.final_read_complete { "" } else { " (which did not reach the end)" },
            if o.kafkatest_ok { "pass" } else { "fail" },
            o.kafkatest_message
        ));
    }
    if let Some(m) = &report.mirror {
        s.push_str(&format!(
            "mirror ({}, {}): {} acked on the source up to the cut ({}), {} on the target, {} missing, {} extra copies; {} acked after the cut copied too\n",
            m.topics.join(", "),
            if m.exactly_once { "exactly-once" } else { "at-least-once" },
            m.expected,
            m.cut_ms.map_or("none".to_string(), |c| format!("t+{:.1}s", c as f64 / 1000.0)),
            m.copied,
            m.missing,
            m.duplicates,
            m.copied_after_cut
        ));
        for e in m.missing_examples.iter().take(3) {
            s.push_str(&format!("  missing on the target: {e}\n"));
        }
        s.push_str(&format!(
            "mirror lag: {} looks, at most {} records behind; {} stall(s) of {} s or more{}\n",
            m.lag.samples,
            m.lag.max_behind,
            m.lag.stalls.len(),
            crate::check::mirror::STALL_MS / 1000,
            m.lag
                .stalls
                .iter()
                .map(|st| format!(
                    " — {:.1} s from t+{:.1}s under `{}`{}",
                    st.duration_ms as f64 / 1000.0,
                    st.start_ms as f64 / 1000.0,
                    st.step,
                    if st.open { " (open)" } else { "" }
                ))
                .collect::<String>()
        ));
        if let Some(g) = &m.group {
            s.push_str(&format!(
                "mirror group {}: {} of {} partitions synced to the target; switched over there it would skip {} and read {} again (at most {} on one partition)\n",
                g.group, g.translated, g.partitions, g.skipped, g.reread, g.max_reread
            ));
        }
        if let Some(t) = &m.target_metadata {
            s.push_str(&metadata_lines("mirror target's kafka metadata", t));
        }
    }
    if let Some(sw) = &report.switch_over {
        s.push_str(&format!(
            "switch-over to the target: {} consumer and {} producer client(s) moved; the target acked {} ({} lost{}); the group read {} record(s) again there\n",
            sw.consumers_moved,
            sw.producers_moved,
            sw.acked_on_target,
            sw.lost_on_target,
            if sw.target_read {
                ""
            } else {
                ", the target never read back: unverified"
            },
            sw.reread_on_target
        ));
    }
    for m in &report.migration_events {
        s.push_str(&format!("migration: {m}\n"));
    }
    for e in report.expectations.iter().filter(|e| !e.ok) {
        s.push_str(&format!(
            "  FAILED {}: expected {}, got {}\n",
            e.name, e.expected, e.actual
        ));
    }
    s.push_str(&format!(
        "verdict: {}  (report: {}; to look at: {})\n",
        report.verdict.to_string().to_uppercase(),
        run_dir.join(crate::rundir::REPORT_JSON).display(),
        run_dir.join(crate::rundir::REPORT_HTML).display()
    ));
    s
}

/// An end-of-run metadata check in a line (and its first ten differences below it).
fn metadata_lines(what: &str, m: &crate::zk::metadata::MetadataCheck) -> String {
    if m.intact() {
        return format!(
            "{what} in {}: intact ({} topics, {} partitions, controller {})\n",
            m.source(),
            m.topics,
            m.partitions,
            m.controller
        );
    }
    let mut s = format!(
        "{what} in {}: {}\n",
        m.source(),
        m.error
            .clone()
            .unwrap_or_else(|| format!("{} difference(s)", m.differences.len()))
    );
    for d in m.differences.iter().take(10) {
        s.push_str(&format!("  {d}\n"));
    }
    s
}
