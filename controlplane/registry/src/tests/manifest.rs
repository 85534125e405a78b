use super::manifest_text;
use crate::{After, Manifest};
use semver::{Version, VersionReq};

fn parse(text: &str) -> Result<Manifest, String> {
    Manifest::parse(text.as_bytes(), "m.yaml").map_err(|e| e.to_string())
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(m) => format!("(accepted: {m:?})"),
        Err(e) => e,
    }
}

const GOOD: &str = "name: filter
version: 1.2.0
abi: \"^1\"
description: Keeps messages whose payload holds given bytes.
after:
  - { name: pass, version: \"^1\" }
counters: [kept, dropped]
limits:
  memory_bytes: 2097152
  deadline_ms: 5
  fuel: 1000000
";

#[test]
fn a_full_manifest_reads() {
    let m = parse(GOOD).unwrap();
    assert_eq!(m.name, "filter");
    assert_eq!(m.version, Version::new(1, 2, 0));
    assert_eq!(m.after, [After { name: "pass".into(), version: VersionReq::parse("^1").unwrap() }]);
    assert_eq!(m.counters, ["kept", "dropped"]);
    assert_eq!((m.limits.memory_bytes, m.limits.deadline_ms, m.limits.fuel), (Some(2 << 20), Some(5), Some(1_000_000)));
}

#[test]
fn optional_sections_default_to_empty() {
    let m = parse("name: p\nversion: 0.1.0\nabi: \"1\"\ndescription: d\n").unwrap();
    assert!(m.after.is_empty() && m.counters.is_empty());
    assert_eq!(m.limits, crate::Limits::default());
    assert!(parse(&manifest_text("x", "2.0.0-rc.1")).is_ok(), "a pre-release is a version");
}

#[test]
fn unknown_keys_are_refused_with_line_and_column() {
    let e = err(&GOOD.replace("counters:", "countres:"));
    assert!(e.starts_with("m.yaml:7:1: "), "{e}");
    assert!(e.contains("unknown key `countres`") && e.contains("counters"), "{e}");
    let e = err(&GOOD.replace("  fuel:", "  fule:"));
    assert!(e.starts_with("m.yaml:11:3: ") && e.contains("`fule`"), "{e}");
    let e = err(&GOOD.replace("version: \"^1\" }", "version: \"^1\", optional: true }"));
    assert!(e.starts_with("m.yaml:6:") && e.contains("`optional`"), "{e}");
}

#[test]
fn bad_values_have_line_and_column() {
    let cases = [
        ("name: filter", "name: Filter", "m.yaml:1:7: ", "\"Filter\" is not a plugin name"),
        ("name: filter", "name: -f", "m.yaml:1:7: ", "not starting with -"),
        ("version: 1.2.0", "version: 1.2", "m.yaml:2:10: ", "not a semantic version"),
        ("version: 1.2.0", "version: 1.2.0+b7", "m.yaml:2:10: ", "build metadata"),
        ("abi: \"^1\"", "abi: \"^2\"", "m.yaml:3:6: ", "does not accept ABI 1"),
        ("abi: \"^1\"", "abi: \"one\"", "m.yaml:3:6: ", "not a version requirement"),
        (
            "description: Keeps messages whose payload holds given bytes.",
            "description: \" \"",
            "m.yaml:4:",
            "description",
        ),
        ("{ name: pass,", "{ name: pa_ss,", "m.yaml:6:", "not a plugin name"),
        ("version: \"^1\" }", "version: \"one\" }", "m.yaml:6:", "not a version requirement"),
        ("[kept, dropped]", "[kept, Dropped]", "m.yaml:7:", "\"Dropped\" is not a counter name"),
        (
            "deadline_ms: 5",
            "deadline_ms: 0",
            "m.yaml:10:16: ",
            "limits.deadline_ms: wrote 0; expected a whole number from 1 to 1000",
        ),
        ("memory_bytes: 2097152", "memory_bytes: 4096", "m.yaml:9:17: ", "limits.memory_bytes: wrote 4096"),
        ("fuel: 1000000", "fuel: -1", "m.yaml:11:9: ", "limits.fuel: expected a whole number from 1 to"),
        (
            "deadline_ms: 5",
            "deadline_ms: soon",
            "m.yaml:10:16: ",
            "limits.deadline_ms: expected a whole number from 1 to 1000",
        ),
    ];
    for (from, to, at, what) in cases {
        let e = err(&GOOD.replace(from, to));
        assert!(e.starts_with(at), "{to}: {e}");
        assert!(e.contains(what), "{to}: {e}");
    }
}

#[test]
fn cross_value_checks_point_at_the_entry() {
    let nine = "[a, b, c, d, e, f, g, h, i]";
    let e = err(&GOOD.replace("[kept, dropped]", nine));
    assert!(e.starts_with("m.yaml:7:11: ") && e.contains("at most 8 counters"), "{e}");
    let e = err(&GOOD.replace("[kept, dropped]", "[kept, kept]"));
    assert!(e.starts_with("m.yaml:7:") && e.contains("\"kept\" is listed twice"), "{e}");
    let e = err(&GOOD.replace("{ name: pass,", "{ name: filter,"));
    assert!(e.starts_with("m.yaml:6:") && e.contains("names this plugin itself"), "{e}");
    let twice = "  - { name: pass, version: \"^1\" }\n  - { name: pass, version: \"^2\" }\n";
    let e = err(&GOOD.replace("  - { name: pass, version: \"^1\" }\n", twice));
    assert!(e.starts_with("m.yaml:7:") && e.contains("listed twice"), "{e}");
}

#[test]
fn broken_yaml_and_missing_keys_are_located() {
    let e = err("name: [filter\n");
    assert!(e.starts_with("m.yaml:"), "{e}");
    let e = err(&GOOD.replace("description: Keeps messages whose payload holds given bytes.\n", ""));
    assert!(e.contains("`description` is missing"), "{e}");
    let e = err("");
    assert!(e.starts_with("m.yaml:1:1: "), "{e}");
    let e = err(&format!("{GOOD}name: other\n"));
    assert!(e.contains("set twice"), "{e}");
}

#[test]
fn a_huge_or_binary_file_is_refused_without_parsing() {
    let huge = format!("{GOOD}# {}\n", "x".repeat(crate::MANIFEST_BYTES_MAX));
    assert!(err(&huge).contains("is the right file"), "{}", err(&huge));
    let e = Manifest::parse(b"name: \xff\n", "m.yaml").unwrap_err().to_string();
    assert!(e.contains("not UTF-8"), "{e}");
}
