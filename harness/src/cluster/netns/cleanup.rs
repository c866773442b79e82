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

/// The namespaces of any run still on this machine (what a cleanup left alone).
pub fn remaining_namespaces() -> Vec<String> {
    sh(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX))
        .map(str::to_string)
        .collect()
}

/// The tag in a name that starts with `prefix` followed by the tag.
fn tag_after<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix).and_then(|rest| rest.get(..6))
}

/// Removes the namespaces, bridges and root rules of the runs `scope` covers.
pub fn cleanup(scope: &crate::cluster::CleanupScope) -> NetworkLeftovers {
    let mut out = NetworkLeftovers::default();
    let covered =
        |name: &str, prefix: &str| tag_after(name, prefix).is_some_and(|t| scope.covers_tag(t));
    for line in sh(&["ip", "netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if covered(name, NS_PREFIX) && sh(&["ip", "netns", "del", name]).is_ok() {
            out.namespaces.push(name.to_string());
        }
    }
    // a deleted namespace's veths go away asynchronously: wait, then delete stragglers
    let veths = || -> Vec<String> {
        sh(&["ip", "-o", "link", "show"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.split(": ")
                    .nth(1)
                    .map(|n| n.split('@').next().unwrap_or("").to_string())
            })
            .filter(|n| covered(n, "kmhv"))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !veths().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for v in veths() {
        let _ = sh(&["ip", "link", "del", &v]);
    }
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
        if covered(name, BRIDGE_PREFIX) && sh(&["ip", "link", "del", name]).is_ok() {
            out.bridges.push(name.to_string());
        }
    }
    for table in ["filter"] {
        for line in sh(&["iptables", "-w", "-t", table, "-S"])
            .unwrap_or_default()
            .lines()
        {
            // the comment `kmh.run=ID` (quoted or not) names the run
            let run = line.split_once("kmh.run=").map(|(_, rest)| {
                rest.split(|c: char| c == '"' || c.is_whitespace())
                    .next()
                    .unwrap_or("")
            });
            if !line.starts_with("-A ") || !run.is_some_and(|r| scope.covers(r)) {
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
