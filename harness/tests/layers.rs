//! The coordinator's top-level modules form layers: no module reaches (through `crate::`
//! paths in code, not comments) a module that reaches it back. The data path reads top to
//! bottom — scenario → cluster → run directory → check → report → run — and this test
//! keeps it that way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `crate::NAME` references in the code (comment lines skipped) of a file, or of every
/// file under a directory.
fn references(p: &Path, out: &mut BTreeSet<String>) {
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            references(&e.path(), out);
        }
        return;
    }
    if p.extension().is_some_and(|x| x == "rs") {
        {
            let text = std::fs::read_to_string(p).unwrap();
            for line in text.lines() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                let mut rest = line;
                while let Some(i) = rest.find("crate::") {
                    rest = &rest[i + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            }
        }
    }
}

#[test]
fn top_level_modules_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let p = e.path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut refs = BTreeSet::new();
        references(&p, &mut refs);
        refs.remove(&name);
        graph.insert(name, refs);
    }
    assert!(graph.len() > 8, "modules found: {:?}", graph.keys());
    // depth-first search for a cycle, reporting its path
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!(
                "import cycle between top-level modules: {} -> {n}",
                path[i..].join(" -> ")
            );
        }
        if done.contains(n) {
            return;
        }
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if graph.contains_key(m) {
                visit(m, graph, path, done);
            }
        }
        path.pop();
        done.insert(n.to_string());
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done);
    }
}
