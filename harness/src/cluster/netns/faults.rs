//! Network faults on the run's hosts (turmoil's verbs): partition, loss, bandwidth, delay,
//! and `heal`, which removes exactly what a fault added. Every rule and qdisc goes through
//! the host's [`HostShell`] (a namespace, a container); what was added is recorded per
//! fault, and set again when a host whose network is new at each start comes back.

use super::*;

/// A fault as added, so that healing removes exactly it.
#[derive(Debug, Clone)]
pub(super) enum Added {
    /// `iptables -A <chain> <spec>` in a namespace.
    Rule { ns: String, spec: Vec<String> },
    /// A root qdisc on a device, in a namespace (`None`: the root namespace).
    Qdisc {
        ns: Option<String>,
        dev: String,
        /// `tc qdisc replace dev DEV root …` arguments (to set it again after a restart).
        qdisc: Vec<String>,
    },
    /// An ingress policer on a container's `eth0` (Docker backend).
    Policer { ns: String, rate: String },
    /// A delay set on a proxy (healing sets it back to none).
    ProxyDelay { control: std::path::PathBuf },
}

impl Network {
    /// A node's process has (re)started: where its host's network is new at each start (a
    /// container), sets up the chain and puts back every fault in force on it. Nothing to
    /// do on hosts whose network outlives the process (namespaces).
    pub fn host_started(&mut self, node: &str) -> Result<(), HarnessError> {
        let h = self.host(node)?;
        if h.shell.network_outlives_process() {
            return Ok(());
        }
        let ns = h.ns.clone();
        self.install_chain(&ns)?;
        let again: Vec<Added> = self.faults.values().flatten().cloned().collect();
        for added in again {
            let r = match &added {
                Added::Rule { ns: n, spec } if *n == ns => {
                    let mut args = vec!["iptables", "-w", "-A", self.chain.as_str()];
                    args.extend(spec.iter().map(String::as_str));
                    self.in_host(&ns, &args).map(drop)
                }
                Added::Qdisc {
                    ns: Some(n),
                    dev,
                    qdisc,
                } if *n == ns => {
                    let mut args = vec!["tc", "qdisc", "replace", "dev", dev.as_str(), "root"];
                    args.extend(qdisc.iter().map(String::as_str));
                    self.in_host(&ns, &args).map(drop)
                }
                Added::Policer { ns: n, rate } if *n == ns => self.add_policer(&ns, rate),
                _ => Ok(()),
            };
            r?;
        }
        Ok(())
    }

    fn add_policer(&self, ns: &str, rate: &str) -> Result<(), NetworkError> {
        let dev = self.dev(ns);
        self.in_host(
            ns,
            &[
                "tc", "qdisc", "replace", "dev", &dev, "handle", "ffff:", "ingress",
            ],
        )?;
        self.in_host(
            ns,
            &[
                "tc", "filter", "add", "dev", &dev, "parent", "ffff:", "protocol", "ip", "u32",
                "match", "u32", "0", "0", "police", "rate", rate, "burst", "32k", "drop",
            ],
        )
        .map(drop)
    }

    /// A host that cannot take rules now (a stopped or dormant container): its faults are
    /// recorded and set when it starts ([`Network::host_started`]).
    fn stopped_container(&self, ns: &str) -> bool {
        self.shell_of(ns).is_ok_and(|sh| !sh.is_up())
    }

    fn add_rule(&mut self, fault: &str, ns: &str, spec: Vec<String>) -> Result<(), HarnessError> {
        self.add_rules(fault, ns, vec![spec])
    }

    /// Appends rules to a host's chain in one command (one `docker exec` or SSH session,
    /// not one per rule: a partition of many peers lands at once, as a firewall change
    /// does, instead of over seconds), and records them for healing. All or nothing: the
    /// rules that went in before one failed are taken out again.
    fn add_rules(
        &mut self,
        fault: &str,
        ns: &str,
        specs: Vec<Vec<String>>,
    ) -> Result<(), HarnessError> {
        if specs.is_empty() {
            return Ok(());
        }
        if !self.stopped_container(ns) {
            let append = |verb: &str, spec: &[String]| {
                let mut words = vec![
                    "iptables".to_string(),
                    "-w".into(),
                    verb.into(),
                    self.chain.clone(),
                ];
                words.extend(spec.iter().cloned());
                words
                    .iter()
                    .map(|w| crate::cluster::ssh::quote(w))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let script = if specs.len() == 1 {
                append("-A", &specs[0])
            } else {
                // each rule undone if a later one fails: `set -e` stops at the failure, the
                // trap removes what this script added
                let mut script = String::from("added=0\nundo() {\n");
                for (i, spec) in specs.iter().enumerate() {
                    script.push_str(&format!("  [ $added -gt {i} ] && {}\n", append("-D", spec)));
                }
                script.push_str("  return 0\n}\ntrap 'undo' EXIT\nset -e\n");
                for spec in &specs {
                    script.push_str(&format!("{}\nadded=$((added+1))\n", append("-A", spec)));
                }
                // done: nothing to undo
                script.push_str("added=0\n");
                script
            };
            self.in_host(ns, &["sh", "-c", &script])?;
        }
        let added = self.faults.entry(fault.to_string()).or_default();
        for spec in specs {
            added.push(Added::Rule {
                ns: ns.to_string(),
                spec,
            });
        }
        Ok(())
    }

    /// Cuts `from` off `to`: both ways, or only packets from `from` to `to` (one way);
    /// packets dropped, or TCP refused ([`Cut`]). `clients` in a group stands for the
    /// workers and the harness (the bridge address).
    pub fn partition(
        &mut self,
        fault: &str,
        from: &[String],
        to: &[String],
        both_ways: bool,
        how: Cut,
    ) -> Result<(), HarnessError> {
        self.check_new_fault(fault)?;
        let peers = |n: &str, net: &Network| -> Result<Vec<String>, HarnessError> {
            if n == "clients" {
                Ok(net.clients.clone())
            } else {
                Ok(vec![format!("{}/32", net.host(n)?.addr)])
            }
        };
        // a refusing cut is two rules per peer and direction: TCP refused, the rest but
        // ICMP dropped — the refusals are ICMP, and a cut both ways would drop its own
        let tagged = |dir: &str, peer: &str| -> Vec<Vec<String>> {
            match how {
                Cut::Drop => vec![drop_rule(fault, &[dir, peer])],
                Cut::Reject => vec![
                    reject_rule(fault, &[dir, peer, "-p", "tcp"]),
                    drop_rule(fault, &[dir, peer, "!", "-p", "icmp"]),
                ],
            }
        };
        // every host's rules, then one command per host
        let mut by_host: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
        for a in from {
            for b in to {
                if a == b {
                    continue;
                }
                // rules live in a namespace: `a`'s, or `b`'s when `a` is the clients
                if a != "clients" {
                    let ns = self.host(a)?.ns.clone();
                    for peer in peers(b, self)? {
                        let mut specs = tagged("-d", &peer);
                        if both_ways {
                            specs.extend(tagged("-s", &peer));
                        }
                        by_host.entry(ns.clone()).or_default().extend(specs);
                    }
                } else {
                    let ns = self.host(b)?.ns.clone();
                    for peer in self.clients.clone() {
                        let mut specs = tagged("-s", &peer);
                        if both_ways {
                            specs.extend(tagged("-d", &peer));
                        }
                        by_host.entry(ns.clone()).or_default().extend(specs);
                    }
                }
            }
        }
        for (ns, specs) in by_host {
            self.add_rules(fault, &ns, specs)?;
        }
        Ok(())
    }

    /// Drops each packet to and from `node` with `probability`.
    pub fn loss(&mut self, fault: &str, node: &str, probability: f64) -> Result<(), HarnessError> {
        self.check_new_fault(fault)?;
        let ns = self.host(node)?.ns.clone();
        let p = format!("{probability:.4}");
        let spec = drop_rule(
            fault,
            &["-m", "statistic", "--mode", "random", "--probability", &p],
        );
        self.add_rule(fault, &ns, spec)
    }

    /// Limits `node`'s traffic to `rate` (tc syntax, e.g. `1mbit`) in both directions.
    pub fn bandwidth(&mut self, fault: &str, node: &str, rate: &str) -> Result<(), HarnessError> {
        self.check_new_fault(fault)?;
        let tbf = ["tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"];
        if self.host(node)?.shell.far_end().is_none() {
            // only the host's own side: what it sends through a tbf, what it receives
            // through a policer
            let ns = self.host(node)?.ns.clone();
            self.qdisc_in(fault, &ns, &tbf)?;
            if !self.stopped_container(&ns) {
                self.add_policer(&ns, rate)?;
            }
            self.faults
                .entry(fault.to_string())
                .or_default()
                .push(Added::Policer {
                    ns,
                    rate: rate.to_string(),
                });
            return Ok(());
        }
        self.qdisc_both_ends(fault, node, &tbf)
    }

    /// Puts `qdisc` at the root of `eth0` in a host and records it for healing.
    fn qdisc_in(&mut self, fault: &str, ns: &str, qdisc: &[&str]) -> Result<(), HarnessError> {
        let dev = self.dev(ns);
        let mut args = vec!["tc", "qdisc", "replace", "dev", &dev, "root"];
        args.extend_from_slice(qdisc);
        if !self.stopped_container(ns) {
            self.in_host(ns, &args)?;
        }
        self.faults
            .entry(fault.to_string())
            .or_default()
            .push(Added::Qdisc {
                ns: Some(ns.to_string()),
                dev: dev.clone(),
                qdisc: qdisc.iter().map(|s| s.to_string()).collect(),
            });
        Ok(())
    }

    /// Adds latency (and jitter) to `node`'s traffic in both directions: through its
    /// delaying proxy when it has one, else with netem.
    pub fn delay(
        &mut self,
        fault: &str,
        node: &str,
        delay_ms: u64,
        jitter_ms: u64,
    ) -> Result<(), HarnessError> {
        self.check_new_fault(fault)?;
        if let Some(control) = self.proxies.get(node).cloned() {
            crate::fault::proxy::set_delay(&control, delay_ms, jitter_ms)?;
            self.faults
                .entry(fault.to_string())
                .or_default()
                .push(Added::ProxyDelay { control });
            return Ok(());
        }
        if self.host(node)?.shell.far_end().is_none() {
            // only the host's own side: all of it on what it sends (a round trip takes
            // `delay` more)
            let ns = self.host(node)?.ns.clone();
            let (d, j) = (format!("{delay_ms}ms"), format!("{jitter_ms}ms"));
            return self
                .qdisc_in(fault, &ns, &["netem", "delay", &d, &j])
                .map_err(|e| {
                    HarnessError::Cluster(format!(
                        "{e} (does the engine's kernel have the netem qdisc?)"
                    ))
                });
        }
        // each direction gets half, so a round trip takes `delay` more
        let (d, j) = (
            format!("{}ms", delay_ms / 2),
            format!("{}ms", jitter_ms / 2),
        );
        self.qdisc_both_ends(fault, node, &["netem", "delay", &d, &j])
            .map_err(|e| {
                HarnessError::Cluster(format!("{e} (does this kernel have the netem qdisc?)"))
            })
    }

    /// Puts `qdisc` at the root of both ends of `node`'s veth (its `eth0`, for what it
    /// sends; the bridge side, for what it receives) and records both for healing.
    fn qdisc_both_ends(
        &mut self,
        fault: &str,
        node: &str,
        qdisc: &[&str],
    ) -> Result<(), HarnessError> {
        let h = self.host(node)?.clone();
        let far = h
            .shell
            .far_end()
            .ok_or_else(|| HarnessError::Cluster(format!("{node}: no far end to shape")))?;
        let ends = [(Some(h.ns.clone()), h.dev.clone()), (None, far.to_string())];
        for (ns, dev) in ends {
            let mut args: Vec<&str> = vec!["tc", "qdisc", "replace", "dev", dev.as_str(), "root"];
            args.extend_from_slice(qdisc);
            match &ns {
                Some(ns) => self.in_host(ns, &args),
                None => sh(&args),
            }?;
            self.faults
                .entry(fault.to_string())
                .or_default()
                .push(Added::Qdisc {
                    ns,
                    dev,
                    qdisc: qdisc.iter().map(|s| s.to_string()).collect(),
                });
        }
        Ok(())
    }

    fn check_new_fault(&self, fault: &str) -> Result<(), HarnessError> {
        if self.faults.contains_key(fault) {
            return Err(HarnessError::Cluster(format!(
                "fault `{fault}` is already active; heal it first"
            )));
        }
        Ok(())
    }

    /// Active fault names.
    pub fn active_faults(&self) -> Vec<String> {
        self.faults.keys().cloned().collect()
    }

    /// Removes exactly what fault `name` added (`None`: every fault).
    pub fn heal(&mut self, name: Option<&str>) -> Result<(), HarnessError> {
        let names: Vec<String> = match name {
            Some(n) if !self.faults.contains_key(n) => {
                return Err(HarnessError::Cluster(format!(
                    "no active fault `{n}` (active: {:?})",
                    self.active_faults()
                )))
            }
            Some(n) => vec![n.to_string()],
            None => self.active_faults(),
        };
        let mut errors = Vec::new();
        for n in names {
            for added in self.faults.remove(&n).unwrap_or_default().into_iter().rev() {
                let r = match &added {
                    Added::Rule { ns, spec } => {
                        let mut args = vec!["iptables", "-w", "-D", self.chain.as_str()];
                        args.extend(spec.iter().map(String::as_str));
                        self.in_host(ns, &args)
                    }
                    Added::Qdisc {
                        ns: Some(ns), dev, ..
                    } => self.in_host(ns, &["tc", "qdisc", "del", "dev", dev, "root"]),
                    Added::Policer { ns, .. } => {
                        self.in_host(ns, &["tc", "qdisc", "del", "dev", &self.dev(ns), "ingress"])
                    }
                    Added::ProxyDelay { control } => crate::fault::proxy::set_delay(control, 0, 0)
                        .map(|()| String::new())
                        .map_err(|source| NetworkError::Spawn {
                            command: format!("writing {}", control.display()),
                            source,
                        }),
                    Added::Qdisc { ns: None, dev, .. } => {
                        sh(&["tc", "qdisc", "del", "dev", dev, "root"])
                    }
                };
                if let Err(e) = r {
                    // a host that is not up has no rules to remove (they go with its
                    // network, and are not restored once healed)
                    let stopped = match &added {
                        Added::Rule { ns, .. }
                        | Added::Policer { ns, .. }
                        | Added::Qdisc { ns: Some(ns), .. } => self.stopped_container(ns),
                        _ => false,
                    };
                    if !stopped {
                        errors.push(e);
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(NetworkError::Heal(errors).into())
        }
    }
}

/// An iptables rule spec: `matches`, then the fault's comment (what `heal` and people
/// reading `iptables -S` go by), then DROP.
fn drop_rule(fault: &str, matches: &[&str]) -> Vec<String> {
    rule(fault, matches, "DROP")
}

/// The same, with REJECT: a TCP packet is answered with an ICMP port-unreachable (the
/// sender's connect fails at once), as seed 000's firewall does.
fn reject_rule(fault: &str, matches: &[&str]) -> Vec<String> {
    rule(fault, matches, "REJECT")
}

fn rule(fault: &str, matches: &[&str], target: &str) -> Vec<String> {
    let comment = format!("fault={fault}");
    matches
        .iter()
        .copied()
        .chain(["-m", "comment", "--comment", &comment, "-j", target])
        .map(str::to_string)
        .collect()
}

/// Splits an `iptables -S` line into words, honouring double quotes.
pub(super) fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_an_iptables_rule() {
        assert_eq!(
            shell_words(
                r#"FORWARD -i kmhb1 -o kmhb1 -m comment --comment "kmh.run=a b" -j ACCEPT"#
            ),
            vec![
                "FORWARD",
                "-i",
                "kmhb1",
                "-o",
                "kmhb1",
                "-m",
                "comment",
                "--comment",
                "kmh.run=a b",
                "-j",
                "ACCEPT"
            ]
        );
    }

    #[test]
    fn tags_fit_interface_names() {
        let t = run_tag("some-long-run-id-1795320141-270f");
        assert_eq!(t.len(), 6);
        assert!(format!("kmhv{t}99").len() <= 15);
    }
}
