//! One JSON request, one JSON response, over a Unix socket: the protocol
//! between `msctl`, the daemon and the dataplane. The requests are typed
//! in `ms_api` (re-exported here); answers are read as JSON.

use anyhow::Context;
pub use ms_api::*;
use serde::Serialize;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends `req` to the socket at `path` and returns the response.
pub fn call<R: Serialize>(path: &Path, req: &R, timeout: Duration) -> anyhow::Result<Value> {
    let mut s = UnixStream::connect(path).with_context(|| {
        format!("connect to {}: is the process running, and may this user open the socket?", path.display())
    })?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    writeln!(s, "{}", serde_json::to_string(req)?)?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).with_context(|| format!("read the answer from {}", path.display()))?;
    serde_json::from_str(&line).with_context(|| format!("bad answer from {}: {line:?}", path.display()))
}
