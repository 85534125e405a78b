use crate::{resolve, After, Catalog, Limits, Manifest, ModuleInfo, Plugin, Request, ResolveError, Signer};
use semver::{Version, VersionReq};

/// A usable plugin `name` `version` that must come after each of `after`
/// (`(name, requirement)`).
fn plugin(name: &str, version: &str, after: &[(&str, &str)]) -> Plugin {
    let after = after.iter().map(|(n, r)| After { name: n.to_string(), version: req(r) }).collect();
    Plugin {
        dir: format!("/plugins/{name}-{version}").into(),
        manifest: Manifest {
            name: name.into(),
            version: Version::parse(version).unwrap(),
            abi: req("^1"),
            description: "test".into(),
            after,
            counters: vec![],
            limits: Limits::default(),
        },
        module: ModuleInfo { len: 0, memory_min_bytes: 0, memory_max_bytes: None, imports: vec![] },
        module_sha256: [0; 32],
        signer: Signer::Unsigned,
    }
}

fn req(r: &str) -> VersionReq {
    VersionReq::parse(r).unwrap()
}

fn catalog(plugins: Vec<Plugin>) -> Catalog {
    Catalog { plugins, refused: vec![] }
}

fn chain(links: &[(&str, &str)]) -> Vec<Request> {
    links.iter().map(|(n, r)| Request { name: n.to_string(), version: req(r) }).collect()
}

/// The chain's picks as `name version`, or the error's message.
fn run(c: &Catalog, links: &[(&str, &str)]) -> Result<Vec<String>, String> {
    match resolve(c, &chain(links)) {
        Ok(ps) => Ok(ps.iter().map(|p| format!("{} {}", p.name(), p.version())).collect()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn the_highest_matching_version_is_picked_in_chain_order() {
    let c = catalog(vec![
        plugin("pass", "1.0.0", &[]),
        plugin("pass", "1.4.2", &[]),
        plugin("pass", "2.0.0", &[]),
        plugin("pass", "1.5.0-rc.1", &[]),
        plugin("filter", "0.3.0", &[("pass", "^1.2")]),
    ]);
    assert_eq!(run(&c, &[("pass", "^1"), ("filter", "*")]).unwrap(), ["pass 1.4.2", "filter 0.3.0"]);
    assert_eq!(run(&c, &[("pass", "*")]).unwrap(), ["pass 2.0.0"]);
    assert_eq!(run(&c, &[("pass", "=1.0.0")]).unwrap(), ["pass 1.0.0"]);
    assert_eq!(run(&c, &[]).unwrap(), Vec::<String>::new());
}

#[test]
fn a_missing_plugin_or_version_is_refused() {
    let c = catalog(vec![plugin("pass", "1.0.0", &[]), plugin("pass", "1.1.0", &[])]);
    let e = resolve(&c, &chain(&[("mask", "^1")])).unwrap_err();
    assert_eq!(e, ResolveError::NotFound { name: "mask".into(), refused: vec![] });
    assert!(e.to_string().contains("no usable plugin named mask is installed: install it"), "{e}");
    let e = run(&c, &[("pass", "^2")]).unwrap_err();
    assert!(e.starts_with("no usable version of pass matches ^2 (usable: 1.0.0, 1.1.0)"), "{e}");
}

#[test]
fn a_refused_folder_explains_a_missing_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("mask-1.0.0");
    std::fs::create_dir(&d).unwrap();
    let c = crate::discover(tmp.path(), &crate::Trust { keys: vec![], allow_unsigned: true }).unwrap();
    let e = run(&c, &[("mask", "^1")]).unwrap_err();
    assert!(e.contains("no usable plugin named mask") && e.contains("mask-1.0.0") && e.contains("cannot read"), "{e}");
}

#[test]
fn a_missing_dependency_is_refused() {
    let c = catalog(vec![plugin("filter", "1.0.0", &[("decode", "^1")]), plugin("pass", "1.0.0", &[])]);
    let e = run(&c, &[("pass", "^1"), ("filter", "^1")]).unwrap_err();
    assert_eq!(e, "filter 1.0.0 must come after decode ^1, which is not in the chain: add decode before it");
}

#[test]
fn a_dependency_placed_later_is_refused() {
    let c = catalog(vec![plugin("filter", "1.0.0", &[("decode", "^1")]), plugin("decode", "1.0.0", &[])]);
    assert_eq!(run(&c, &[("decode", "^1"), ("filter", "^1")]).unwrap(), ["decode 1.0.0", "filter 1.0.0"]);
    let e = run(&c, &[("filter", "^1"), ("decode", "^1")]).unwrap_err();
    assert!(
        e.starts_with(
            "filter 1.0.0 must come after decode, but the chain has decode at position 2, after it (position 1)"
        ),
        "{e}"
    );
}

#[test]
fn a_dependency_at_a_version_that_does_not_match_is_refused() {
    let c = catalog(vec![plugin("filter", "1.0.0", &[("decode", "^1")]), plugin("decode", "2.0.0", &[])]);
    let e = run(&c, &[("decode", "*"), ("filter", "^1")]).unwrap_err();
    assert!(e.starts_with("filter 1.0.0 must come after decode ^1, but the chain has decode 2.0.0"), "{e}");
}

#[test]
fn ordering_cycles_are_refused_naming_the_plugins() {
    let c = catalog(vec![plugin("a", "1.0.0", &[("b", "*")]), plugin("b", "1.0.0", &[("a", "*")])]);
    let e = run(&c, &[("a", "*"), ("b", "*")]).unwrap_err();
    assert!(e.starts_with("ordering cycle: a -> b -> a: "), "{e}");
    let c = catalog(vec![
        plugin("x", "1.0.0", &[]),
        plugin("a", "1.0.0", &[("c", "*")]),
        plugin("b", "1.0.0", &[("a", "*"), ("x", "*")]),
        plugin("c", "1.0.0", &[("b", "*")]),
    ]);
    let e = resolve(&c, &chain(&[("x", "*"), ("a", "*"), ("b", "*"), ("c", "*")])).unwrap_err();
    assert_eq!(e, ResolveError::Cycle { path: ["a", "c", "b", "a"].map(String::from).to_vec() });
}

#[test]
fn a_plugin_twice_in_a_chain_is_refused() {
    let c = catalog(vec![plugin("pass", "1.0.0", &[]), plugin("pass", "2.0.0", &[]), plugin("mask", "1.0.0", &[])]);
    let e = run(&c, &[("pass", "^1"), ("mask", "*"), ("pass", "^2")]).unwrap_err();
    assert_eq!(e, "pass is in the chain twice (positions 1 and 3); a chain runs each plugin once: remove one");
}
