use super::*;
use serde_json::json;

/// Each request serialised is the JSON the untyped servers accepted.
#[test]
fn requests_serialise_to_the_old_json() {
    let text = |yaml: &str, origin: &str| ConfigText { yaml: yaml.into(), origin: origin.into() };
    let control = [
        (ControlRequest::Status, r#"{"cmd":"status"}"#),
        (ControlRequest::LogLevel { level: "debug".into() }, r#"{"cmd":"log_level","level":"debug"}"#),
        (
            ControlRequest::Apply { yaml: "a: 1".into(), origin: "f.yaml".into() },
            r#"{"cmd":"apply","yaml":"a: 1","origin":"f.yaml"}"#,
        ),
    ];
    for (req, want) in control {
        let want: Value = serde_json::from_str(want).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), want);
        assert_eq!(ControlRequest::from_line(&want.to_string()), Ok(req));
    }
    let cli = [
        (CliRequest::Status, r#"{"cmd":"status"}"#),
        (CliRequest::Stats, r#"{"cmd":"stats"}"#),
        (CliRequest::StreamsTop, r#"{"cmd":"streams_top"}"#),
        (CliRequest::StreamsAffected, r#"{"cmd":"streams_affected"}"#),
        (CliRequest::ConfigValidate(text("y", "f")), r#"{"cmd":"config_validate","yaml":"y","origin":"f"}"#),
        (CliRequest::ConfigDiff(text("y", "f")), r#"{"cmd":"config_diff","yaml":"y","origin":"f"}"#),
        (CliRequest::ConfigApply(text("y", "f")), r#"{"cmd":"config_apply","yaml":"y","origin":"f"}"#),
        (CliRequest::LogLevel { level: "info".into() }, r#"{"cmd":"log_level","level":"info"}"#),
    ];
    for (req, want) in cli {
        let want: Value = serde_json::from_str(want).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), want);
        assert_eq!(CliRequest::from_line(&want.to_string()), Ok(req));
    }
}

#[test]
fn control_requests_are_read_as_before() {
    // Extra fields were ignored, missing or odd optional ones defaulted.
    assert_eq!(ControlRequest::from_line(r#"{"cmd":"status","x":1}"#), Ok(ControlRequest::Status));
    let apply = |yaml: &str, origin: &str| Ok(ControlRequest::Apply { yaml: yaml.into(), origin: origin.into() });
    assert_eq!(ControlRequest::from_line(r#"{"cmd":"apply","yaml":"y"}"#), apply("y", "request"));
    assert_eq!(ControlRequest::from_line(r#"{"cmd":"apply","yaml":"y","origin":null}"#), apply("y", "request"));
    assert_eq!(ControlRequest::from_line(r#"{"cmd":"apply"}"#), apply("", "request"));
    assert_eq!(ControlRequest::from_line(r#"{"cmd":"apply","yaml":5,"origin":7}"#), apply("", "request"));
    let err = |line: &str| ControlRequest::from_line(line).unwrap_err();
    assert_eq!(err(r#"{"cmd":"log_level"}"#), "log_level needs \"level\"");
    assert_eq!(err(r#"{"cmd":"log_level","level":3}"#), "log_level needs \"level\"");
    for unknown in [r#"{"cmd":"nope"}"#, r#"{}"#, r#"{"cmd":5}"#, r#"[1]"#, r#""status""#, r#"{"cmd":"config_apply"}"#]
    {
        assert_eq!(err(unknown), CONTROL_UNKNOWN, "{unknown}");
    }
    assert!(err("{nope").starts_with("request is not JSON: "), "{}", err("{nope"));
}

#[test]
fn cli_requests_are_read_as_before() {
    let t = |origin: &str| ConfigText { yaml: "y".into(), origin: origin.into() };
    assert_eq!(CliRequest::from_line(r#"{"cmd":"config_diff","yaml":"y"}"#), Ok(CliRequest::ConfigDiff(t("request"))));
    assert_eq!(
        CliRequest::from_line(r#"{"cmd":"config_apply","yaml":"y","origin":3}"#),
        Ok(CliRequest::ConfigApply(t("request")))
    );
    assert_eq!(CliRequest::from_line(r#"{"cmd":"stats","x":[1]}"#), Ok(CliRequest::Stats));
    let err = |line: &str| CliRequest::from_line(line).unwrap_err();
    assert_eq!(err(r#"{"cmd":"apply"}"#), r#"unknown command "apply""#);
    assert_eq!(err(r#"{}"#), r#"request has no "cmd""#);
    assert_eq!(err(r#"{"cmd":1}"#), r#"request has no "cmd""#);
    assert_eq!(err(r#"{"cmd":"config_validate"}"#), r#"request has no "yaml""#);
    assert_eq!(err(r#"{"cmd":"config_apply","yaml":1}"#), r#"request has no "yaml""#);
    assert_eq!(err(r#"{"cmd":"log_level"}"#), r#"request has no "level""#);
    assert!(err("not json").starts_with("request is not JSON: "));
}

#[test]
fn answers_carry_ok() {
    let a = done(&Applied { applied: vec!["flow".into()], restart_needed: vec![] });
    assert_eq!(a, json!({ "ok": true, "applied": ["flow"], "restart_needed": [] }));
    assert_eq!(done(&()), json!({ "ok": true }));
    assert_eq!(refused("no"), json!({ "ok": false, "error": "no" }));
}
