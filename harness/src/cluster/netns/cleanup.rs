//! `harness cleanup`'s network half: namespaces, bridges and root-namespace rules that runs
//! left behind, found by their names and comments (`kmh-`, `kmhb`, `kmh.run=ID`).

use super::faults::shell_words;
use super::*;

/// What `harness cleanup` found and removed of the network.
#[derive(Debug, Default)]
pub struct NetworkLeftovers {
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Bridges deleted.
    pub bridges: Vec<String>,
    /// Root-namespace iptables rules deleted.
    pub rules: Vec<String>,
}

/// Removes the namespaces, bridges and root rules of a run (`None`: of every run).
pub fn cleanup(run_id: Option<&str>) -> NetworkLeftovers {
    let mut out = NetworkLeftovers::default();
    let tag = run_id.map(run_tag);
    let ns_prefix = match &tag {
        Some(t) => format!("{NS_PREFIX}{t}-"),
        None => NS_PREFIX.to_string(),
    };
    for line in sh(&["ip", "netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(&ns_prefix) && sh(&["ip", "netns", "del", name]).is_ok() {
            out.namespaces.push(name.to_string());
        }
    }
    // a deleted namespace's veths go away asynchronously: wait, then delete stragglers
    let veth_prefix = format!("kmhv{}", tag.as_deref().unwrap_or(""));
    let veths = || -> Vec<String> {
        sh(&["ip", "-o", "link", "show"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.split(": ")
                    .nth(1)
                    .map(|n| n.split('@').next().unwrap_or("").to_string())
            })
            .filter(|n| n.starts_with(&veth_prefix))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !veths().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for v in veths() {
        let _ = sh(&["ip", "link", "del", &v]);
    }
    let br_prefix = match &tag {
        Some(t) => format!("{BRIDGE_PREFIX}{t}"),
        None => BRIDGE_PREFIX.to_string(),
    };
    for line in sh(&["ip", "-o", "link", "show", "type", "bridge"])
        .unwrap_or_default()
        .lines()
    {
        let name = line
            .split(": ")
            .nth(1)
            .unwrap_or("")
            .split('@')
            .next()
            .unwrap_or("");
        if name.starts_with(&br_prefix) && sh(&["ip", "link", "del", name]).is_ok() {
            out.bridges.push(name.to_string());
        }
    }
    let needle = match run_id {
        Some(id) => format!("kmh.run={id}"),
        None => "kmh.run=".to_string(),
    };
    for table in ["filter"] {
        for line in sh(&["iptables", "-w", "-t", table, "-S"])
            .unwrap_or_default()
            .lines()
        {
            if !line.starts_with("-A ") || !line.contains(&needle) {
                continue;
            }
            // `-A CHAIN spec…` → `-D CHAIN spec…`, tokenized the way iptables-save quotes
            let spec = shell_words(&line[3..]);
            let mut args = vec![
                "iptables".to_string(),
                "-w".into(),
                "-t".into(),
                table.into(),
                "-D".into(),
            ];
            args.extend(spec);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            if sh(&refs).is_ok() {
                out.rules.push(line.to_string());
            }
        }
    }
    out
}
