//! DPDK's Environment Abstraction Layer: arguments from the config, init,
//! launching one closure per worker lcore, cleanup.

use crate::config::{Config, Hugepages};
use ms_dpdk_sys as sys;
use std::ffi::{c_int, c_uint, c_void, CStr, CString};

/// Why EAL could not start, with what the operator should do.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// `rte_eal_init` failed.
    #[error("DPDK EAL init failed: {reason} (rte_errno {errno}). {fix}")]
    Init {
        /// DPDK's description.
        reason: String,
        /// rte_errno.
        errno: i32,
        /// What to do about it.
        fix: &'static str,
    },
    /// An argument had an interior NUL.
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadArgument(String),
    /// Launching a worker failed.
    #[error("cannot launch a worker on lcore {lcore}: {reason}. Is the lcore busy or disabled?")]
    Launch {
        /// The lcore.
        lcore: u32,
        /// DPDK's description.
        reason: String,
    },
}

/// DPDK's text for an errno value.
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string for any errno value; we copy it out at once.
    unsafe { CStr::from_ptr(sys::rte_strerror(errno)) }.to_string_lossy().into_owned()
}

/// The current thread's rte_errno.
pub fn errno() -> i32 {
    // SAFETY: reads a thread-local int through a C shim; no preconditions.
    unsafe { sys::ms_rte_errno() }
}

/// Free 2 MiB hugepages right now, from /proc/meminfo.
fn hugepages_free_mb() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field("HugePages_Free:") * field("Hugepagesize:") / 1024
}

/// Builds the EAL argument vector (argv[0] included) from the config.
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let e = &cfg.eal;
    let mut lcores = vec![e.main_lcore];
    lcores.extend(cfg.worker_lcores());
    let list: Vec<String> = lcores.iter().map(|l| format!("{l}@{}", e.cpus.get(l).unwrap_or(l))).collect();
    let mut args = vec![
        "ms-dataplane".to_string(),
        "--lcores".into(),
        list.join(","),
        "--main-lcore".into(),
        e.main_lcore.to_string(),
        "--log-level".into(),
        e.log_level.to_string(),
    ];
    // A NIC needs DMA-able memory, which --no-huge does not give in
    // physical-address mode: with a PCI port, `auto` means hugepages.
    let has_pci = cfg.pci_devices().next().is_some();
    let use_huge = match e.hugepages {
        Hugepages::On => true,
        Hugepages::Off => false,
        Hugepages::Auto => has_pci || hugepages_free_mb() >= u64::from(e.memory_mb),
    };
    if use_huge {
        args.extend(["--in-memory".into(), "-m".into(), e.memory_mb.to_string()]);
    } else {
        // --no-huge cannot be combined with --in-memory on 22.11: give the
        // process a private prefix and no shared config instead.
        let prefix = e.file_prefix.clone().unwrap_or_else(|| format!("ms-{}", std::process::id()));
        args.extend(["--no-huge".into(), "--no-shconf".into(), "-m".into(), e.memory_mb.to_string()]);
        args.push(format!("--file-prefix={prefix}"));
    }
    let mut pci = cfg.pci_devices().peekable();
    if pci.peek().is_none() {
        args.push("--no-pci".into());
    }
    for addr in pci {
        args.extend(["-a".into(), addr.to_string()]);
    }
    args.extend(e.extra_args.iter().cloned());
    args
}

/// The initialised EAL. Exactly one per process; dropping it does not clean
/// up (call [`Eal::cleanup`] after every port and pool is released).
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Runs `rte_eal_init` with `args`.
    pub fn init(args: &[String]) -> Result<Eal, EalError> {
        let mut argv: Vec<*mut std::ffi::c_char> = Vec::with_capacity(args.len() + 1);
        for a in args {
            let c = CString::new(a.as_str()).map_err(|_| EalError::BadArgument(a.clone()))?;
            // EAL may keep pointers into argv for the life of the process.
            argv.push(c.into_raw());
        }
        argv.push(std::ptr::null_mut());
        let argc = c_int::try_from(args.len()).expect("a handful of EAL arguments");
        keep_driver_signals_away();
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // NULL, all leaked so they outlive the process; rte_eal_init is
        // called once (a second call fails with EALREADY, which we report).
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        std::mem::forget(argv);
        if ret < 0 {
            let errno = errno();
            return Err(EalError::Init { reason: strerror(errno), errno, fix: init_fix(errno) });
        }
        Ok(Eal { _private: () })
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: EAL is initialised (self exists); reads a calibrated value.
        unsafe { sys::rte_get_tsc_hz() }
    }

    /// The NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: EAL is initialised; any lcore id is accepted (unknown ids
        // return SOCKET_ID_ANY's unsigned form).
        unsafe { sys::rte_lcore_to_socket_id(lcore) }
    }

    /// Runs `f` on worker lcore `lcore`. The closure owns everything it
    /// uses; its return value is the lcore's exit code.
    pub fn launch<F>(&self, lcore: u32, f: F) -> Result<(), EalError>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let boxed: Box<Box<dyn FnOnce() -> i32 + Send>> = Box::new(Box::new(f));
        let arg = Box::into_raw(boxed).cast::<c_void>();
        // SAFETY: trampoline takes ownership of `arg` exactly once; if the
        // launch fails DPDK never calls it and we reclaim the box below.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg, lcore as c_uint) };
        if ret != 0 {
            // SAFETY: the launch failed, so the pointer was not handed over.
            drop(unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() -> i32 + Send>>()) });
            return Err(EalError::Launch { lcore, reason: strerror(-ret) });
        }
        Ok(())
    }

    /// Waits for the function launched on `lcore` and returns its code (0
    /// when nothing was launched there).
    pub fn wait(&self, lcore: u32) -> i32 {
        // SAFETY: called on the main lcore; blocks until the lcore is idle.
        unsafe { sys::rte_eal_wait_lcore(lcore) }
    }

    /// True while `lcore` runs a launched function.
    pub fn is_running(&self, lcore: u32) -> bool {
        assert!(lcore < sys::RTE_MAX_LCORE, "lcore {lcore} out of range");
        // SAFETY: EAL is initialised; `lcore` is below RTE_MAX_LCORE (the
        // function indexes its lcore table without a check).
        unsafe { sys::rte_eal_get_lcore_state(lcore) == sys::rte_lcore_state_t_RUNNING }
    }

    /// Releases EAL resources. Nothing DPDK may be used afterwards.
    pub fn cleanup(self) {
        // SAFETY: consumes the only Eal; the caller has stopped workers and
        // closed ports and pools.
        let ret = unsafe { sys::rte_eal_cleanup() };
        if ret != 0 {
            tracing::warn!(reason = %strerror(-ret), "rte_eal_cleanup failed");
        }
    }
}

/// net_tap's "Rx trigger" makes the kernel raise a real-time signal for
/// every frame a TAP receives (the first real-time signal from
/// SIGRTMIN + 1 whose action is the default), delivered to whichever of our
/// threads: a burst of 94,000 IPv4 fragments kept the main lcore handling
/// signals for seconds, so its shutdown wait never ended, and each signal
/// also interrupts a busy-polling worker. Ignoring those signals before the
/// drivers start makes net_tap find none free ("All rt-signals are in use")
/// and poll its queues instead, which a busy-polling worker does anyway.
/// The process uses no real-time signal itself.
fn keep_driver_signals_away() {
    for sig in libc::SIGRTMIN() + 1..libc::SIGRTMAX() {
        // SAFETY: sets the disposition of a real-time signal that nothing
        // in this process handles; no handler function is involved.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

fn lcore_id() -> u32 {
    // SAFETY: reads this thread's lcore id (a thread-local); no preconditions.
    unsafe { sys::rte_lcore_id() }
}

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` came from Box::into_raw in Eal::launch and DPDK passes it
    // to this function exactly once.
    let f = unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() -> i32 + Send>>()) };
    // A panic must not unwind into C.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        tracing::error!(lcore = lcore_id(), "lcore function panicked");
        -1
    })
}

fn init_fix(errno: i32) -> &'static str {
    match errno {
        libc_errno::EACCES | libc_errno::EPERM => {
            "Run as root (or with CAP_SYS_ADMIN, CAP_IPC_LOCK and access to /dev/hugepages and /dev/vfio)."
        }
        libc_errno::ENOMEM => {
            "Not enough hugepage memory: run `make setup` (reserves hugepages), lower eal.memory_mb, or set eal.hugepages: off."
        }
        libc_errno::EALREADY => "EAL is already initialised in this process.",
        libc_errno::ENODEV | libc_errno::ENOENT => {
            "A device could not be probed: check ports[].device and that its driver is installed (dpdk package)."
        }
        libc_errno::EINVAL => "An EAL argument is invalid: check eal.* and eal.extra_args (run with --print-eal-args).",
        _ => "See the EAL log lines above; `make setup` prepares hugepages and drivers.",
    }
}

/// The errno values init_fix distinguishes (Linux x86_64).
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ENOMEM: i32 = 12;
    pub const EACCES: i32 = 13;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const EALREADY: i32 = 114;
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::examples::MINIMAL as GOOD;

    #[test]
    fn eal_args_follow_the_config() {
        let c = crate::config::Config::parse(GOOD, "t.yaml").unwrap();
        let args = eal_args(&c).join(" ");
        assert!(args.contains("--lcores 0@0,1@1 --main-lcore 0"), "{args}");
        assert!(args.contains("--no-huge --no-shconf -m 512"), "{args}");
        assert!(args.contains("--no-pci"), "{args}");
        let pci = GOOD.replace("\"net_tap0,iface=ms0\"", "\"0000:03:00.0\"");
        let args = eal_args(&crate::config::Config::parse(&pci, "t.yaml").unwrap()).join(" ");
        assert!(args.contains("-a 0000:03:00.0") && !args.contains("--no-pci"), "{args}");
        let mapped =
            GOOD.replace("hugepages: off", "hugepages: off\n  cpus: { 2: 0 }").replace("lcores: [1]", "lcores: [1, 2]");
        let args = eal_args(&crate::config::Config::parse(&mapped, "t.yaml").unwrap()).join(" ");
        assert!(args.contains("--lcores 0@0,1@1,2@0"), "{args}");
    }
}
