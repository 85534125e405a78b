//! Helpers for tests that run the real `ms-dataplane` binary.
//!
//! Tests that need root, DPDK, TAP devices or namespaces call
//! [`require_root`] / [`require_cmd`], which fail (never skip) with the
//! reason and the fix.

#![allow(dead_code)]

mod root;
pub use root::{exclusive, require_root};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// What a live TAP test holds while it runs: the dataplane lock, a TAP
/// name and a namespace of its own.
pub struct Lab {
    _guard: MutexGuard<'static, ()>,
    /// Interface name for the TAP (short: 15 bytes at most).
    pub iface: String,
    /// The namespace the TAP's kernel side moves into.
    pub ns: Netns,
}

/// The prologue of a live TAP test: root and `cmds` required (failing with
/// the reason otherwise), the lock taken, a TAP name `ms<short><tag>` and a
/// namespace `ms-<name>-<tag>` made.
pub fn lab(short: &str, name: &str, cmds: &[&str]) -> Lab {
    require_root();
    for cmd in cmds {
        require_cmd(cmd);
    }
    let guard = exclusive();
    let tag = tag();
    Lab { _guard: guard, iface: format!("ms{short}{tag}"), ns: Netns::new(&format!("ms-{name}-{tag}")) }
}

/// Fails the test unless `cmd` is on PATH.
pub fn require_cmd(cmd: &str) {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file())).unwrap_or(false);
    assert!(found, "this test needs `{cmd}` on PATH: run `make setup` (ci/setup.sh installs it)");
}

/// Path of the dataplane binary cargo built for this test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ms-dataplane"))
}

/// A unique, short tag for names (interfaces are limited to 15 bytes).
pub fn tag() -> String {
    format!("{}", std::process::id() % 100_000)
}

/// A one-port, one-worker config for tests: the appliance is
/// 02:4d:53:00:00:01 / 198.18.0.1/24, 198.19.0.0/16 is routed via
/// `gateway`, and the service port 9000 echoes.
pub fn echo_config(device: &str, gateway: &str) -> String {
    format!(
        r#"
eal: {{ main_lcore: 0, memory_mb: 256 }}
ports:
  - name: p0
    device: "{device}"
    mac: "02:4d:53:00:00:01"
    ipv4: "198.18.0.1/24"
    routes: [ {{ to: "198.19.0.0/16", via: "{gateway}" }} ]
workers: {{ lcores: [1] }}
service: {{ udp_port: 9000, handler: echo }}
mempool: {{ mbufs: 8191, cache: 64 }}
"#
    )
}

/// A streams config: one port on a TAP named `iface`, `workers` workers
/// (a second one shares CPU 0 with the main lcore), subscriptions that
/// expire after `lifetime_ms`.
pub fn streams_config(iface: &str, workers: u32, lifetime_ms: u32) -> String {
    let (cpus, lcores) = if workers > 1 { (", cpus: { 2: 0 }", "[1, 2]") } else { ("", "[1]") };
    format!(
        r#"
eal: {{ main_lcore: 0, memory_mb: 256{cpus} }}
ports:
  - name: tap0
    device: "net_tap0,iface={iface}"
    mac: "02:4d:53:00:00:01"
    ipv4: "198.18.0.1/24"
workers: {{ lcores: {lcores} }}
service: {{ udp_port: 9000, handler: streams }}
streams: {{ max_per_worker: 4096, subscribers_max: 64, subscriptions_max: 16384, subscription_lifetime_ms: {lifetime_ms} }}
mempool: {{ mbufs: 8191, cache: 64 }}
"#
    )
}

/// A running dataplane.
pub struct Dataplane {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    stderr_path: PathBuf,
}

/// What a finished run left.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Final counters (the binary runs with --json).
    pub fn counters(&self) -> serde_json::Value {
        let line = self.stdout.lines().last().unwrap_or_else(|| panic!("no output; stderr:\n{}", self.stderr));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {line}\nstderr:\n{}", self.stderr))
    }

    /// One total counter.
    pub fn total(&self, name: &str) -> u64 {
        self.counters()["total"][name].as_u64().unwrap_or_else(|| panic!("no counter {name}"))
    }
}

impl Dataplane {
    /// Runs the binary to completion with `config` (for startup errors).
    pub fn run_to_exit(config: &str, limit: Duration) -> Finished {
        Dataplane::spawn(config).wait_exit(limit)
    }

    /// Waits up to `limit` for the binary to exit by itself.
    pub fn wait_exit(mut self, limit: Duration) -> Finished {
        let dp = &mut self;
        let mut child = dp.child.take().expect("running");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                panic!("ms-dataplane still running after {limit:?}; log:\n{}", dp.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        child.stdout.take().expect("piped").read_to_string(&mut stdout).expect("read stdout");
        Finished { status, stdout, stderr: dp.log() }
    }

    /// Writes `config` and starts the binary with `--json`.
    pub fn spawn(config: &str) -> Dataplane {
        Dataplane::spawn_env(config, &[])
    }

    /// Like [`Dataplane::spawn`], with extra environment variables.
    pub fn spawn_env(config: &str, env: &[(&str, &str)]) -> Dataplane {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("dataplane.yaml");
        // Private stats segment and control socket, so runs never collide.
        let config = if config.contains("telemetry:") {
            config.to_string()
        } else {
            let d = dir.path().display();
            format!("{config}telemetry: {{ stats_path: \"{d}/dataplane.stats\", control_socket: \"{d}/dataplane.sock\" }}\n")
        };
        std::fs::write(&cfg, config).expect("write config");
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(binary())
            .arg("--config")
            .arg(&cfg)
            .arg("--json")
            .env("MS_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn ms-dataplane");
        Dataplane { child: Some(child), dir, stderr_path }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until the dataplane logs "ready" (or fails with its log).
    pub fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log().contains("\"ready\"") {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("ms-dataplane exited early ({status}); log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ms-dataplane not ready after {limit:?}; log:\n{}", self.log());
    }

    /// Sends SIGTERM and collects the exit status and output.
    pub fn stop(self) -> Finished {
        self.stop_with("TERM")
    }

    /// Sends `sig` (e.g. "INT") and collects the exit status and output.
    pub fn stop_with(mut self, sig: &str) -> Finished {
        let mut child = self.child.take().expect("running");
        signal(child.id(), sig);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                signal(child.id(), "KILL");
                panic!("ms-dataplane ignored SIGTERM for 20 s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        child.stdout.take().expect("piped").read_to_string(&mut stdout).expect("read stdout");
        Finished { status, stdout, stderr: self.log() }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
}

/// Runs a command and returns its output, failing the test on error.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd} {args:?} failed ({}):\n{text}", out.status);
    text
}

/// A network namespace the test owns; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run("ip", &["netns", "add", name]);
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
        Netns { name: name.to_string() }
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().expect("ip netns exec")
    }
}

impl Netns {
    /// Runs `f` on a thread that has entered this namespace, so sockets it
    /// creates live there; they stay usable from any thread afterwards.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd affects only this thread,
            // which exits after `f`.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("netns thread")
    }

    /// A counter of an interface inside the namespace (e.g. `tx_packets`).
    pub fn iface_stat(&self, iface: &str, stat: &str) -> u64 {
        let out = self.exec(&["cat", &format!("/sys/class/net/{iface}/statistics/{stat}")]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().unwrap_or_else(|_| panic!("{iface} {stat}: {text:?}"))
    }

    /// Moves a TAP's kernel side into the namespace as host 198.18.0.2/24,
    /// IPv6 off, so the only traffic is what the test sends.
    pub fn adopt(&self, iface: &str) {
        run("ip", &["link", "set", iface, "netns", &self.name]);
        for args in [
            vec!["sysctl", "-qw", &format!("net.ipv6.conf.{iface}.disable_ipv6=1")],
            vec!["ip", "addr", "add", "198.18.0.2/24", "dev", iface],
            vec!["ip", "link", "set", iface, "up"],
        ] {
            let out = self.exec(&args);
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Minimal pcap (libpcap format) reading and writing, enough for the
/// golden-file test: Ethernet link type, micro- or nanosecond stamps.
pub mod pcap {
    use super::*;

    const MAGIC_US: u32 = 0xa1b2_c3d4;
    const MAGIC_NS: u32 = 0xa1b2_3c4d;

    /// Writes frames as a microsecond pcap with fixed timestamps.
    pub fn write(path: &Path, frames: &[Vec<u8>]) {
        let mut out = Vec::new();
        for v in [MAGIC_US, 0x0004_0002] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0u32, 0, 65535, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (i, f) in frames.iter().enumerate() {
            for v in [1_700_000_000u32, i as u32, f.len() as u32, f.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(f);
        }
        std::fs::write(path, out).expect("write pcap");
    }

    /// Reads the frames of a pcap file (either byte order and precision).
    pub fn read(path: &Path) -> Vec<Vec<u8>> {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert!(data.len() >= 24, "{} is not a pcap file", path.display());
        let magic_le = u32::from_le_bytes(data[0..4].try_into().unwrap());
        let le = match magic_le {
            MAGIC_US | MAGIC_NS => true,
            m if m.swap_bytes() == MAGIC_US || m.swap_bytes() == MAGIC_NS => false,
            m => panic!("{}: bad pcap magic {m:#x}", path.display()),
        };
        let u32_at = |at: usize| {
            let b: [u8; 4] = data[at..at + 4].try_into().unwrap();
            if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        assert_eq!(u32_at(20), 1, "link type must be Ethernet");
        let mut frames = Vec::new();
        let mut at = 24;
        while at + 16 <= data.len() {
            let incl = u32_at(at + 8) as usize;
            let start = at + 16;
            assert!(start + incl <= data.len(), "truncated pcap record");
            frames.push(data[start..start + incl].to_vec());
            at = start + incl;
        }
        frames
    }
}
