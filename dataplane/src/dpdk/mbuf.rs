//! Packet buffer pools and the few mbuf accessors the workers need.

use crate::dpdk::eal::{errno, strerror, Eal};
use ms_dpdk_sys as sys;
use std::ffi::CString;

/// Data room per buffer: DPDK's default (2048 + headroom) fits a
/// 1518-byte frame in one segment.
const DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Why a pool could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create mbuf pool {name} ({mbufs} buffers on socket {socket}): {reason}. Lower mempool.mbufs or raise eal.memory_mb.")]
pub struct PoolError {
    name: String,
    mbufs: u32,
    socket: u32,
    reason: String,
}

/// A pktmbuf pool on one NUMA socket. Freed on drop; drop it only after
/// every port using it is closed.
pub struct Mempool {
    raw: *mut sys::rte_mempool,
}

// SAFETY: an rte_mempool is designed for concurrent use from many lcores
// (per-lcore caches plus a lock-free ring); the pointer is only freed in
// Drop, which takes &mut self.
unsafe impl Send for Mempool {}
// SAFETY: as above; get/put through a shared reference are thread-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `mbufs` buffers with a per-lcore cache of `cache`.
    pub fn new(_eal: &Eal, name: &str, mbufs: u32, cache: u32, socket: u32) -> Result<Mempool, PoolError> {
        let err = |reason: String| PoolError { name: name.to_string(), mbufs, socket, reason };
        let cname = CString::new(name).map_err(|_| err("name contains NUL".into()))?;
        // SAFETY: EAL is initialised (we hold &Eal); cname outlives the call;
        // DPDK copies the name. Socket ids come from rte_lcore_to_socket_id.
        let raw = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), mbufs, cache, 0, DATA_ROOM, socket as i32) };
        if raw.is_null() {
            return Err(err(strerror(errno())));
        }
        Ok(Mempool { raw })
    }

    /// The raw pool, for port queue setup and allocation.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw
    }

    /// Allocates one buffer, or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<*mut sys::rte_mbuf> {
        // SAFETY: self.raw is a live pktmbuf pool.
        let m = unsafe { sys::rte_pktmbuf_alloc(self.raw) };
        (!m.is_null()).then_some(m)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool is live and, by the contract above, no port or
        // worker uses it any more.
        unsafe { sys::rte_mempool_free(self.raw) }
    }
}

/// The first segment's data as a mutable slice.
///
/// # Safety
/// `m` must be a live mbuf owned by the caller, and no other reference to
/// its data may exist while the slice lives.
#[inline]
pub unsafe fn data_mut<'a>(m: *mut sys::rte_mbuf) -> &'a mut [u8] {
    // SAFETY: by the caller's contract m is live; buf_addr + data_off is the
    // start of data_len valid bytes inside the buffer (rte_pktmbuf_mtod).
    unsafe {
        let base = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
        std::slice::from_raw_parts_mut(base, usize::from((*m).data_len))
    }
}

/// Asks the CPU to start loading the first `lines` cache lines of the
/// packet's data, so that parsing it a few packets later does not wait for
/// memory (the data was last written by another core or by the NIC).
///
/// # Safety
/// `m` must be a live mbuf (its header is read to find the data).
#[inline]
pub unsafe fn prefetch_data(m: *const sys::rte_mbuf, lines: usize) {
    // SAFETY: by the caller's contract m is live; buf_addr + data_off is
    // inside its buffer, and a prefetch of any address is only a hint.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        let base = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
        for i in 0..lines {
            std::arch::x86_64::_mm_prefetch(base.wrapping_add(i * 64).cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (m, lines);
}

/// Asks the NIC to compute the UDP checksum of an Ethernet/IPv4/UDP frame
/// without IP options whose checksum field holds the pseudo-header's sum
/// (the port must have TX UDP checksum offload enabled).
///
/// # Safety
/// `m` must be a live mbuf owned by the caller.
#[inline]
pub unsafe fn request_udp_checksum(m: *mut sys::rte_mbuf) {
    // l2_len is bits 0..7 of tx_offload, l3_len bits 7..16 (rte_mbuf_core.h).
    const HEADERS: u64 = 14 | (20 << 7);
    // SAFETY: by the caller's contract m is live and ours; tx_offload is a
    // plain u64 view of the union's bit-fields.
    unsafe {
        (*m).ol_flags |= sys::MS_RTE_MBUF_F_TX_IPV4 | sys::MS_RTE_MBUF_F_TX_UDP_CKSUM;
        (*m).__bindgen_anon_3.tx_offload = HEADERS;
    }
}

/// Whether the NIC found the received packet's L4 checksum good.
///
/// # Safety
/// `m` must be a live mbuf.
#[inline]
pub unsafe fn l4_checksum_good(m: *const sys::rte_mbuf) -> bool {
    // SAFETY: caller guarantees m is live.
    let flags = unsafe { (*m).ol_flags };
    flags & sys::MS_RTE_MBUF_F_RX_L4_CKSUM_MASK == sys::MS_RTE_MBUF_F_RX_L4_CKSUM_GOOD
}

/// Number of segments in a packet.
///
/// # Safety
/// `m` must be a live mbuf.
#[inline]
pub unsafe fn segments(m: *const sys::rte_mbuf) -> u16 {
    // SAFETY: caller guarantees m is live.
    unsafe { (*m).nb_segs }
}

/// Sets a single-segment packet's length (shrinks or grows within the
/// buffer). Returns false if `len` does not fit the buffer's tailroom.
///
/// # Safety
/// `m` must be a live, single-segment mbuf owned by the caller.
#[inline]
pub unsafe fn set_len(m: *mut sys::rte_mbuf, len: usize) -> bool {
    // SAFETY: caller guarantees m is live and single-segment, so pkt_len and
    // data_len describe the same bytes; we stay within buf_len - data_off.
    unsafe {
        let room = usize::from((*m).buf_len) - usize::from((*m).data_off);
        if len > room {
            return false;
        }
        (*m).data_len = len as u16;
        (*m).pkt_len = len as u32;
    }
    true
}

/// Frees buffers back to their pools in one call.
#[inline]
pub fn free_bulk(mbufs: &mut [*mut sys::rte_mbuf]) {
    if mbufs.is_empty() {
        return;
    }
    // SAFETY: every pointer in the slice is a live mbuf the caller owns and
    // gives up here; rte_pktmbuf_free_bulk accepts mbufs from any pool.
    unsafe { sys::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr(), mbufs.len() as u32) }
}
