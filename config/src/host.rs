//! Checks that hold only on the machine that will run the dataplane: every
//! lcore must run on a CPU this machine has online, or DPDK refuses to
//! start. `--check` and `msctl config validate` make them unless told the
//! file is for another machine (`--for-other-host`).

use crate::check::CheckError;
use crate::{Config, ConfigError};
use std::collections::BTreeSet;
use std::path::Path;

/// Where Linux lists the CPUs that are online.
pub const CPUS_ONLINE_PATH: &str = "/sys/devices/system/cpu/online";

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut cpus = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u32, u32) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        if lo > hi || hi - lo > 65_536 {
            return None;
        }
        cpus.extend(lo..=hi);
    }
    Some(cpus)
}

/// The CPUs online on this machine, from [`CPUS_ONLINE_PATH`].
pub fn cpus_online() -> Result<BTreeSet<u32>, String> {
    let text = std::fs::read_to_string(CPUS_ONLINE_PATH).map_err(|e| format!("cannot read {CPUS_ONLINE_PATH}: {e}"))?;
    parse_cpu_list(&text).ok_or_else(|| format!("cannot parse {CPUS_ONLINE_PATH}: {:?}", text.trim()))
}

/// `0-1,4` for {0, 1, 4}.
fn cpu_list(cpus: &BTreeSet<u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = cpus.iter().copied().peekable();
    while let Some(lo) = it.next() {
        let mut hi = lo;
        while it.peek() == Some(&(hi + 1)) {
            hi = it.next().unwrap_or(hi);
        }
        out.push(if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") });
    }
    out.join(",")
}

impl Config {
    /// The CPU lcore `l` runs on: its `eal.cpus` entry, else its own id.
    pub fn cpu_of(&self, lcore: u32) -> u32 {
        self.eal.cpus.get(&lcore).copied().unwrap_or(lcore)
    }

    /// Fails when an lcore (`eal.main_lcore` or a worker) would run on a
    /// CPU not in `online`: DPDK would refuse to start. `origin` names the
    /// file in the error.
    pub fn check_cpus(&self, online: &BTreeSet<u32>, origin: &str, text: &str) -> Result<(), ConfigError> {
        let lcores = std::iter::once(("eal.main_lcore".to_string(), self.eal.main_lcore))
            .chain(self.worker_lcores().iter().enumerate().map(|(i, &l)| (format!("workers.lcores[{i}]"), l)));
        for (key, lcore) in lcores {
            let cpu = self.cpu_of(lcore);
            if online.contains(&cpu) {
                continue;
            }
            let via = if cpu == lcore { String::new() } else { format!(" (eal.cpus maps it to CPU {cpu})") };
            let msg = format!(
                "{key}: lcore {lcore} runs on CPU {cpu}{via}, which this machine does not have online \
                 (online: {}); use an online CPU or map the lcore with eal.cpus (e.g. {{ {lcore}: {} }}), \
                 or validate with --for-other-host if the file is for another machine",
                cpu_list(online),
                online.iter().next().copied().unwrap_or(0)
            );
            let at = if key == "eal.main_lcore" { None } else { Some(self.workers.lcores.referenced) };
            return Err(CheckError { at, msg }.located(origin, "", Some(text)));
        }
        Ok(())
    }

    /// Reads, parses and checks a config file, and on [`Host::This`] also
    /// checks it against this machine's CPUs.
    pub fn load_for(path: &Path, host: Host) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = Config::read_text(path)?;
        let cfg = Config::parse(&text, &origin)?;
        if host == Host::This {
            let online = cpus_online().map_err(|e| {
                let msg = format!("cannot tell which CPUs are online ({e}); pass --for-other-host to skip this check");
                ConfigError { file: origin.clone(), at: None, message: msg }
            })?;
            cfg.check_cpus(&online, &origin, &text)?;
        }
        Ok(cfg)
    }
}

/// Which machine a config is validated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// This one: its CPUs must be online here.
    This,
    /// Another one: checks that need the machine are skipped.
    Other,
}
