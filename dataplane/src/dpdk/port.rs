//! Ethernet ports: creating vdevs, finding PCI ports, configuring one RX
//! and one TX queue per worker, RSS where the driver has it, start/stop.

use crate::config::{Device, PortConfig};
use crate::dpdk::eal::{strerror, Eal};
use crate::dpdk::mbuf::Mempool;
use ms_dpdk_sys as sys;
use ms_netstack::MacAddr;
use std::ffi::{CStr, CString};

/// Why a port could not be set up; each says what to check.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// rte_vdev_init failed.
    #[error("port {port}: cannot create virtual device {name:?} with args {args:?}: {reason}. Check the driver name and its arguments (DPDK docs, 'Poll Mode Drivers').")]
    Vdev {
        /// Port name.
        port: String,
        /// vdev name.
        name: String,
        /// vdev args.
        args: String,
        /// DPDK's reason.
        reason: String,
    },
    /// No ethdev with that name after probing.
    #[error("port {port}: no DPDK port named {name:?}. For a PCI device, bind it to vfio-pci (dpdk-devbind.py --status) and check the address.")]
    NotFound {
        /// Port name.
        port: String,
        /// ethdev name looked up.
        name: String,
    },
    /// A setup call failed.
    #[error("port {port}: {step} failed: {reason}")]
    Setup {
        /// Port name.
        port: String,
        /// Which call.
        step: &'static str,
        /// DPDK's reason.
        reason: String,
    },
    /// The driver has fewer queues than workers.
    #[error("port {port}: driver {driver} offers {max} RX/TX queue pairs but {want} workers need one each. Use fewer workers, or a device with more queues (e.g. net_tap0,...) .")]
    TooFewQueues {
        /// Port name.
        port: String,
        /// Driver name.
        driver: String,
        /// Queues the driver offers.
        max: u16,
        /// Workers configured.
        want: u16,
    },
    /// `udp_checksum: offload` on a driver that cannot.
    #[error("port {port}: ports[].udp_checksum is offload, but driver {driver} cannot compute UDP checksums. Use udp_checksum: software (or none).")]
    NoChecksumOffload {
        /// Port name.
        port: String,
        /// Driver name.
        driver: String,
    },
}

/// A started port.
#[derive(Debug)]
pub struct Port {
    /// DPDK port id.
    pub id: u16,
    /// Operator's name.
    pub name: String,
    /// MAC in use.
    pub mac: MacAddr,
    /// Driver name (e.g. net_tap).
    pub driver: String,
    /// Whether RSS spreads flows over queues.
    pub rss: bool,
    /// NUMA socket of the device (0 for virtual devices).
    pub socket: u32,
    /// The NIC computes the UDP checksum of what is sent
    /// (`udp_checksum: offload`): mbufs must carry the request.
    pub tx_udp_checksum: bool,
    /// The NIC checks received UDP checksums and marks mbufs good or bad.
    pub rx_udp_checksum: bool,
}

fn check(port: &str, step: &'static str, ret: i32) -> Result<(), PortError> {
    if ret < 0 {
        return Err(PortError::Setup { port: port.to_string(), step, reason: strerror(-ret) });
    }
    Ok(())
}

/// The port id of an existing ethdev named `name`.
pub fn find_port(name: &str) -> Option<u16> {
    let cname = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: cname is a valid C string; id is a valid out pointer. Before
    // EAL init no port exists and the lookup fails cleanly.
    (unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) } == 0).then_some(id)
}

/// Creates (vdev) or finds (PCI) the device and returns its port id.
pub fn probe(_eal: &Eal, cfg: &PortConfig) -> Result<u16, PortError> {
    let ethdev_name = match &cfg.device {
        Device::Pci(addr) => addr.clone(),
        // A port created in-process before startup (the benchmark's ring
        // pair) is attached to, not created again.
        Device::Vdev { name, .. } if find_port(name).is_some() => name.clone(),
        Device::Vdev { name, args } => {
            let vdev_err = |reason: String| PortError::Vdev {
                port: cfg.name.clone(),
                name: name.clone(),
                args: args.clone(),
                reason,
            };
            let cname = CString::new(name.as_str()).map_err(|_| vdev_err("NUL in name".into()))?;
            let cargs = CString::new(args.as_str()).map_err(|_| vdev_err("NUL in args".into()))?;
            // SAFETY: EAL is initialised; both strings outlive the call and
            // DPDK copies them.
            let ret = unsafe { sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
            if ret < 0 {
                return Err(vdev_err(strerror(-ret)));
            }
            name.clone()
        }
    };
    let cname = CString::new(ethdev_name.as_str()).expect("validated device names have no NUL");
    let mut id = 0u16;
    // SAFETY: cname is a valid C string; id is a valid out pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    if ret != 0 {
        return Err(PortError::NotFound { port: cfg.name.clone(), name: ethdev_name });
    }
    Ok(id)
}

/// Configures one RX/TX queue pair per worker on port `id`, queue `i`
/// taking buffers from `pools[i]` (its worker's NUMA-local pool), and starts
/// the port. On failure the port is stopped and closed again, so no queue
/// keeps buffers from a pool that is about to be freed.
pub fn start(id: u16, cfg: &PortConfig, pools: &[&Mempool]) -> Result<Port, PortError> {
    let result = configure_and_start(id, cfg, pools);
    if result.is_err() {
        // SAFETY: valid port id; stop and close accept a port in any state
        // and release whatever queues were set up.
        unsafe {
            sys::rte_eth_dev_stop(id);
            sys::rte_eth_dev_close(id);
        }
    }
    result
}

fn configure_and_start(id: u16, cfg: &PortConfig, pools: &[&Mempool]) -> Result<Port, PortError> {
    let name = cfg.name.as_str();
    let queues = u16::try_from(pools.len()).expect("config caps workers");
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: id is a valid port (from probe); info is a valid out pointer.
    check(name, "rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(id, &mut info) })?;
    let driver = if info.driver_name.is_null() {
        "unknown".to_string()
    } else {
        // SAFETY: non-null driver_name points to a static C string of the PMD.
        unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
    };
    let max = info.max_rx_queues.min(info.max_tx_queues);
    if max < queues {
        return Err(PortError::TooFewQueues { port: name.into(), driver, max, want: queues });
    }
    let rss_hf = (sys::MS_RTE_ETH_RSS_IP | sys::MS_RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    let rss = queues > 1 && rss_hf != 0;
    let mut conf = sys::rte_eth_conf::default();
    if rss {
        conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
    }
    let tx_udp_checksum = cfg.udp_checksum == crate::config::UdpChecksum::Offload;
    if tx_udp_checksum {
        if info.tx_offload_capa & sys::MS_RTE_ETH_TX_OFFLOAD_UDP_CKSUM == 0 {
            return Err(PortError::NoChecksumOffload { port: name.into(), driver });
        }
        conf.txmode.offloads |= sys::MS_RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
    }
    // Where the NIC checks received checksums, the worker need not.
    let rx_udp_checksum = info.rx_offload_capa & sys::MS_RTE_ETH_RX_OFFLOAD_UDP_CKSUM != 0;
    if rx_udp_checksum {
        conf.rxmode.offloads |= sys::MS_RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
    }
    // SAFETY: valid port id and a fully initialised conf that outlives the call.
    check(name, "rte_eth_dev_configure", unsafe { sys::rte_eth_dev_configure(id, queues, queues, &conf) })?;
    let (mut rxd, mut txd) = (cfg.rx_desc, cfg.tx_desc);
    // SAFETY: valid port id; both pointers are valid for writes.
    check(name, "rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
        sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd)
    })?;
    // SAFETY: valid port id. Virtual devices report -1 (no NUMA affinity).
    let dev_socket = unsafe { sys::rte_eth_dev_socket_id(id) };
    let queue_socket = if dev_socket < 0 { SOCKET_ID_ANY } else { dev_socket as u32 };
    for (q, pool) in pools.iter().enumerate() {
        let q = q as u16;
        // SAFETY: configured port, q < queues, null conf = driver defaults,
        // pool outlives the port (closed before the pool is dropped).
        check(name, "rte_eth_rx_queue_setup", unsafe {
            sys::rte_eth_rx_queue_setup(id, q, rxd, queue_socket, std::ptr::null(), pool.as_ptr())
        })?;
        // SAFETY: as above, for TX.
        check(name, "rte_eth_tx_queue_setup", unsafe {
            sys::rte_eth_tx_queue_setup(id, q, txd, queue_socket, std::ptr::null())
        })?;
    }
    let soft_mac = match cfg.mac {
        Some(mac) => set_mac(id, name, crate::settings::mac(mac))?,
        None => None,
    };
    // SAFETY: every queue is set up.
    check(name, "rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;
    let mut addr = sys::rte_ether_addr::default();
    // SAFETY: valid port id; addr is a valid out pointer.
    check(name, "rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(id, &mut addr) })?;
    let mac = soft_mac.unwrap_or(MacAddr(addr.addr_bytes));
    let socket = dev_socket.max(0) as u32;
    Ok(Port { id, name: name.to_string(), mac, driver, rss, socket, tx_udp_checksum, rx_udp_checksum })
}

/// DPDK's SOCKET_ID_ANY (-1), a macro bindgen cannot see.
const SOCKET_ID_ANY: u32 = u32::MAX;

/// Sets the port's MAC. Drivers that cannot (net_pcap, net_null) are put
/// in promiscuous mode instead and the MAC is used in software only; that
/// is returned as `Some`.
fn set_mac(id: u16, name: &str, mac: MacAddr) -> Result<Option<MacAddr>, PortError> {
    const ENOTSUP: i32 = 95;
    let mut addr = sys::rte_ether_addr { addr_bytes: mac.0 };
    // SAFETY: valid port id; addr is a valid pointer for the call.
    let ret = unsafe { sys::rte_eth_dev_default_mac_addr_set(id, &mut addr) };
    if ret != -ENOTSUP {
        check(name, "rte_eth_dev_default_mac_addr_set", ret)?;
        return Ok(None);
    }
    // SAFETY: valid, configured port id.
    let ret = unsafe { sys::rte_eth_promiscuous_enable(id) };
    if ret < 0 && ret != -ENOTSUP {
        check(name, "rte_eth_promiscuous_enable", ret)?;
    }
    tracing::warn!(port = name, %mac, "driver cannot set the MAC; using it in software (promiscuous)");
    Ok(Some(mac))
}

/// What a port's driver dropped before any worker saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortDrops {
    /// Frames the NIC dropped because the RX queue was full (`imissed`).
    pub rx_missed: u64,
    /// Frames received in error, e.g. larger than the port's buffers
    /// (`ierrors`).
    pub rx_errors: u64,
    /// RX buffer allocation failures (`rx_nombuf`).
    pub rx_nombuf: u64,
    /// Frames the driver failed to send (`oerrors`).
    pub tx_errors: u64,
}

impl PortDrops {
    /// Name and value of each field, for reports.
    pub fn fields(&self) -> [(&'static str, u64); 4] {
        [
            ("rx_missed", self.rx_missed),
            ("rx_errors", self.rx_errors),
            ("rx_nombuf", self.rx_nombuf),
            ("tx_errors", self.tx_errors),
        ]
    }
}

/// The driver's drop counters of port `id` (zero when it has none).
pub fn drops_of(id: u16) -> PortDrops {
    let mut st = sys::rte_eth_stats::default();
    // SAFETY: any port id is accepted (an invalid one returns an error);
    // `st` is a valid out pointer for the call's duration.
    if unsafe { sys::rte_eth_stats_get(id, &mut st) } != 0 {
        return PortDrops::default();
    }
    PortDrops { rx_missed: st.imissed, rx_errors: st.ierrors, rx_nombuf: st.rx_nombuf, tx_errors: st.oerrors }
}

/// Link state of port `id` now: (up, speed in Mbit/s).
pub fn link_of(id: u16) -> (bool, u32) {
    let mut link = sys::rte_eth_link::default();
    // SAFETY: any port id is accepted (an invalid one returns an error and
    // leaves `link` zeroed); link is a valid out pointer.
    unsafe { sys::rte_eth_link_get_nowait(id, &mut link) };
    (link.link_status() != 0, link.link_speed)
}

impl Port {
    /// Link state now: (up, speed in Mbit/s).
    pub fn link(&self) -> (bool, u32) {
        link_of(self.id)
    }

    /// Stops and closes the port. Workers must have returned.
    pub fn stop_and_close(&self) {
        // SAFETY: valid port id; no worker polls it any more.
        let ret = unsafe { sys::rte_eth_dev_stop(self.id) };
        if ret < 0 {
            tracing::warn!(port = %self.name, reason = %strerror(-ret), "rte_eth_dev_stop failed");
        }
        // SAFETY: stopped port; closing releases its queues (and flushes
        // pcap/tap files).
        let ret = unsafe { sys::rte_eth_dev_close(self.id) };
        if ret < 0 {
            tracing::warn!(port = %self.name, reason = %strerror(-ret), "rte_eth_dev_close failed");
        }
    }
}

/// Receives up to `bufs.len()` packets from queue `queue`.
#[inline]
pub fn rx_burst(port: u16, queue: u16, bufs: &mut [*mut sys::rte_mbuf]) -> usize {
    // SAFETY: the calling worker exclusively owns (port, queue); bufs has
    // room for the requested count.
    usize::from(unsafe { sys::rte_eth_rx_burst(port, queue, bufs.as_mut_ptr(), bufs.len() as u16) })
}

/// Sends packets on queue `queue`; returns how many the driver took. The
/// rest still belong to the caller.
#[inline]
pub fn tx_burst(port: u16, queue: u16, bufs: &mut [*mut sys::rte_mbuf]) -> usize {
    if bufs.is_empty() {
        return 0;
    }
    // SAFETY: the calling worker exclusively owns (port, queue); each
    // pointer is a live mbuf handed to the driver on success.
    usize::from(unsafe { sys::rte_eth_tx_burst(port, queue, bufs.as_mut_ptr(), bufs.len() as u16) })
}

/// Configures port `id` with one RX/TX queue pair fed from `pool` and
/// starts it, in promiscuous mode (a traffic generator's port).
pub fn start_simple(id: u16, pool: &Mempool) -> Result<MacAddr, PortError> {
    let name = "bench";
    let conf = sys::rte_eth_conf::default();
    // SAFETY: valid port id; conf outlives the call.
    check(name, "rte_eth_dev_configure", unsafe { sys::rte_eth_dev_configure(id, 1, 1, &conf) })?;
    // SAFETY: configured port, queue 0, default queue config, pool outlives the port.
    check(name, "rte_eth_rx_queue_setup", unsafe {
        sys::rte_eth_rx_queue_setup(id, 0, 1024, SOCKET_ID_ANY, std::ptr::null(), pool.as_ptr())
    })?;
    // SAFETY: as above, for TX.
    check(name, "rte_eth_tx_queue_setup", unsafe {
        sys::rte_eth_tx_queue_setup(id, 0, 1024, SOCKET_ID_ANY, std::ptr::null())
    })?;
    // SAFETY: every queue is set up.
    check(name, "rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;
    // SAFETY: started port.
    unsafe { sys::rte_eth_promiscuous_enable(id) };
    let mut addr = sys::rte_ether_addr::default();
    // SAFETY: valid port id; addr is a valid out pointer.
    check(name, "rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(id, &mut addr) })?;
    Ok(MacAddr(addr.addr_bytes))
}

/// Creates two ring-backed ports crossed over (what one sends the other
/// receives); DPDK names them `net_ring_<a>` and `net_ring_<b>`, for an in-process generator and device
/// under test with no kernel between them. Returns their port ids.
pub fn ring_pair(a: &str, b: &str, size: u32) -> Result<(u16, u16), PortError> {
    let err = |step: &'static str| PortError::Setup {
        port: format!("{a}/{b}"),
        step,
        reason: strerror(crate::dpdk::eal::errno()),
    };
    let ring = |n: &str| -> Result<*mut sys::rte_ring, PortError> {
        let c = CString::new(n).expect("no NUL");
        // SAFETY: EAL is up; the name is copied; flags 0 = multi-producer,
        // multi-consumer (each side has one of each).
        let r = unsafe { sys::rte_ring_create(c.as_ptr(), size, SOCKET_ID_ANY as i32, 0) };
        if r.is_null() {
            Err(err("rte_ring_create"))
        } else {
            Ok(r)
        }
    };
    // Ring names are short (RTE_RING_NAMESIZE): derive them from the pid.
    let tag = std::process::id();
    let (ab, ba) = (ring(&format!("msr{tag}a"))?, ring(&format!("msr{tag}b"))?);
    let port = |n: &str, rx: *mut sys::rte_ring, tx: *mut sys::rte_ring| -> Result<u16, PortError> {
        let c = CString::new(n).expect("no NUL");
        // SAFETY: one RX and one TX ring, both live for the process; the
        // name is copied by the driver.
        let id = unsafe { sys::rte_eth_from_rings(c.as_ptr(), &rx, 1, &tx, 1, SOCKET_ID_ANY) };
        u16::try_from(id).map_err(|_| err("rte_eth_from_rings"))
    };
    Ok((port(a, ba, ab)?, port(b, ab, ba)?))
}
