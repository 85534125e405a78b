//! What differs between the running config and a new one, split by when
//! each change takes effect (`keys::KEYS`).

use crate::keys::{Effect, KEYS};
use crate::schema::Config;

/// How two configs differ: keys that change live, and keys that need a
/// dataplane restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Applied without a restart.
    pub live: Vec<&'static str>,
    /// Need `systemctl restart ms-dataplane`.
    pub restart: Vec<&'static str>,
    /// The `controlplane` section changed: needs `systemctl restart
    /// ms-controlplane` (the dataplane is not involved).
    pub controlplane_restart: bool,
}

impl Diff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty() && !self.controlplane_restart
    }
}

impl Config {
    /// What differs from `self` (the running config) in `new`, compared by
    /// value (a comment or a reformatted file is no change). Sections
    /// whose keys all change the same way are named as a section (`eal`,
    /// `scheduler`); mixed ones key by key (`memory.budget_bytes`).
    pub fn diff(&self, new: &Config) -> Diff {
        let mut d = Diff::default();
        for k in KEYS.iter().filter(|k| k.changed(self, new)) {
            let list = match k.effect {
                Effect::Live => &mut d.live,
                Effect::Restart => &mut d.restart,
                Effect::ControlPlaneRestart => {
                    d.controlplane_restart = true;
                    continue;
                }
            };
            let name = k.diff_name();
            if !list.contains(&name) {
                list.push(name);
            }
        }
        d
    }
}
