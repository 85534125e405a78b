//! The dataplane's modules form layers: no module reaches, directly or
//! through others, back into one that uses it. Checked from the sources,
//! so a new `use` that closes a cycle fails here with the cycle named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable source dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file defines, as a path from the crate root
/// (`lcore/turn.rs` -> `lcore::turn`, `service/mod.rs` -> `service`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src").with_extension("");
    let parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).filter(|p| *p != "mod").collect();
    parts.join("::")
}

/// The known module named by the longest prefix of `path` (`a::b::C`).
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len()).rev().map(|n| segs[..n].join("::")).find(|m| modules.contains(m))
}

/// Module paths a source file refers to through `crate::` (and `super::`).
fn references(text: &str, me: &str) -> Vec<String> {
    let parent = me.rsplit_once("::").map_or("", |(p, _)| p).to_string();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        for (key, base) in [("crate::", String::new()), ("super::", parent.clone())] {
            let mut rest = line;
            while let Some(i) = rest.find(key) {
                rest = &rest[i + key.len()..];
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
                let tail = rest[..end].trim_end_matches(':');
                // `use crate::x::{a, b}` names x and, inside the braces, a and b.
                let braced = rest[end..].starts_with('{').then(|| {
                    let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
                    rest[end + 1..close]
                        .split(',')
                        .map(|s| s.trim().split("::").next().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                });
                let prefix = if base.is_empty() { tail.to_string() } else { format!("{base}::{tail}") };
                out.push(prefix.clone());
                for b in braced.into_iter().flatten().filter(|b| !b.is_empty() && b != "self") {
                    out.push(format!("{prefix}::{b}"));
                }
            }
        }
    }
    out
}

/// The first cycle in `graph`, if any, as a list of modules.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Module dependency graphs: between files, and between top-level modules.
fn graphs() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, BTreeSet<String>>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    // The crate root and the binaries are not modules of the library.
    files.retain(|f| {
        let rel = f.strip_prefix(&src).expect("under src");
        !(rel.starts_with("bin") || rel == Path::new("lib.rs") || rel == Path::new("main.rs"))
    });
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let (mut by_file, mut by_top) = (BTreeMap::new(), BTreeMap::new());
    for f in &files {
        let me = module_of(&src, f);
        let text = std::fs::read_to_string(f).expect("readable source");
        // Unit tests may reach anywhere; only the module's own code counts.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for target in references(code, &me).iter().filter_map(|r| resolve(r, &modules)) {
            let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();
            // A module may use its own children; that is not a cycle.
            if target != me && !target.starts_with(&format!("{me}::")) && !me.starts_with(&format!("{target}::")) {
                by_file.entry(me.clone()).or_insert_with(BTreeSet::new).insert(target.clone());
            }
            if top(&me) != top(&target) {
                by_top.entry(top(&me)).or_insert_with(BTreeSet::new).insert(top(&target));
            }
        }
    }
    (by_file, by_top)
}

#[test]
fn no_cycle_between_top_level_modules() {
    let (_, by_top) = graphs();
    assert!(by_top.contains_key("service"), "the scan found no references: {by_top:?}");
    if let Some(c) = find_cycle(&by_top) {
        panic!("import cycle between dataplane modules: {}", c.join(" -> "));
    }
}

#[test]
fn no_cycle_between_files() {
    let (by_file, _) = graphs();
    if let Some(c) = find_cycle(&by_file) {
        panic!("import cycle between dataplane source files: {}", c.join(" -> "));
    }
}

#[test]
fn services_see_the_turn_never_the_worker() {
    let (by_file, _) = graphs();
    for (m, uses) in by_file.iter().filter(|(m, _)| m.starts_with("service")) {
        assert!(!uses.contains("worker"), "{m} uses the worker loop");
    }
}
