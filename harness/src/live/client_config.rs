//! `--client-config FILE`: librdkafka properties (`security.protocol`, `sasl.mechanism`,
//! `sasl.username`, `ssl.ca.location`, …) for every client of a watch — workers, the admin
//! client and the final read — in the Java properties shape operators already keep
//! (`key=value` or `key: value`, `#`/`!` comments).

use std::path::Path;

use crate::error::HarnessError;
use crate::kafka::ClientProperties;

/// Properties the harness decides itself: the workload's semantics, or flags of their own.
const DECIDED_BY_THE_HARNESS: &[(&str, &str)] = &[
    ("bootstrap.servers", "give the brokers with --bootstrap"),
    ("group.id", "the watch's consumers use a group of their own"),
    ("acks", "set `acks` in the scenario's [workload]"),
    (
        "enable.idempotence",
        "set `idempotence` in the scenario's [workload]",
    ),
    ("transactional.id", "the workload is not transactional"),
    (
        "enable.auto.commit",
        "the workers commit as the checker expects",
    ),
    (
        "auto.offset.reset",
        "the workers read from where the checker expects",
    ),
    ("isolation.level", "the workers decide it"),
];

/// Reads a client properties file.
pub fn load(path: &Path) -> Result<ClientProperties, HarnessError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        HarnessError::BadInput(format!(
            "--client-config {}: cannot read: {e}\n  hint: a file of librdkafka properties, one `key=value` per line",
            path.display()
        ))
    })?;
    parse(path, &text)
}

/// Parses client properties (`path` names the file in messages).
pub fn parse(path: &Path, text: &str) -> Result<ClientProperties, HarnessError> {
    let mut out = ClientProperties::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let at = |msg: String, hint: &str| {
            HarnessError::BadInput(format!(
                "{}:{}: {msg}\n  hint: {hint}",
                path.display(),
                i + 1
            ))
        };
        let split = line
            .find(['=', ':'])
            .map(|k| (line[..k].trim(), line[k + 1..].trim()));
        let Some((key, value)) = split.filter(|(k, _)| !k.is_empty()) else {
            return Err(at(
                format!("`{line}` is not `key=value`"),
                "one librdkafka property per line, e.g. security.protocol=SASL_SSL",
            ));
        };
        if let Some((_, why)) = DECIDED_BY_THE_HARNESS.iter().find(|(k, _)| *k == key) {
            return Err(at(format!("`{key}` is the harness's to set"), why));
        }
        if out.insert(key.to_string(), value.to_string()).is_some() {
            return Err(at(
                format!("`{key}` is given twice"),
                "keep one of the lines",
            ));
        }
    }
    Ok(out)
}

/// Writes properties where only their owner reads them (they may hold a password).
pub fn store(path: &Path, properties: &ClientProperties) -> Result<(), HarnessError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    for (k, v) in properties {
        writeln!(f, "{k}={v}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_with_comments_and_both_separators() {
        let p = parse(
            Path::new("c.properties"),
            "# secured\nsecurity.protocol=SASL_SSL\n\n! java comment\nsasl.mechanism: SCRAM-SHA-512\nsasl.password = a=b\n",
        )
        .unwrap();
        assert_eq!(p["security.protocol"], "SASL_SSL");
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(p["sasl.password"], "a=b", "only the first separator splits");
    }

    #[test]
    fn bad_lines_are_located_and_the_harness_keeps_its_own_settings() {
        let e = parse(Path::new("c.properties"), "a=1\nnonsense\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.properties:2") && e.contains("nonsense"),
            "{e}"
        );
        let e = parse(Path::new("c.properties"), "acks=1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("c.properties:1") && e.contains("[workload]"),
            "{e}"
        );
        let e = parse(Path::new("c.properties"), "a=1\na=2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2") && e.contains("twice"), "{e}");
    }
}
