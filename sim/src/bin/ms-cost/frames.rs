//! The generator's side: ms-bench's link addresses and its frames, built
//! before the clock starts.

use crate::Args;
use ms_netstack::host::{Host, HostConfig, UdpEndpoint, UDP_PAYLOAD_OFFSET};
use ms_netstack::{Ipv4Addr, MacAddr};
use ms_wire::publish::PublishBuilder;
use ms_wire::DATAGRAM_MAX;

/// The appliance's port, as ms-bench configures it.
pub const DUT_MAC: MacAddr = MacAddr([0x02, 0x4d, 0x53, 0x00, 0x00, 0x01]);
/// The generator's port.
pub const GEN_MAC: MacAddr = MacAddr([0x02, 0x4d, 0x53, 0x00, 0x00, 0x02]);
/// The appliance's address.
pub const DUT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The generator's address (publishers and subscribers alike).
pub const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The streams service's UDP port.
pub const SERVICE_PORT: u16 = 9000;
/// Publishers' ports: this plus the first message's shard mod 16.
const PUB_PORT_BASE: u16 = 40_000;
/// Subscriber `i`'s port: this plus `i`.
pub const SUB_PORT_BASE: u16 = 41_000;
/// Wire class "normal", as ms-bench publishes.
const NORMAL_CLASS: u8 = 1;

/// Prebuilt frames, one per `stride` bytes, as the generator sent them.
pub struct Frames {
    bytes: Vec<u8>,
    lens: Vec<usize>,
    stride: usize,
}

impl Frames {
    /// How many.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Frame `i`, as an rx burst hands it over (the host may rewrite a
    /// frame in place; it does not for UDP to the service, so frames are
    /// sent again unchanged).
    #[inline]
    pub fn get(&mut self, i: usize) -> &mut [u8] {
        let at = i * self.stride;
        &mut self.bytes[at..at + self.lens[i]]
    }
}

/// The generator's host (ms-bench's addresses).
pub fn generator() -> Host {
    Host::new(HostConfig {
        mac: GEN_MAC,
        ip: GEN_IP,
        prefix_len: 24,
        service_port: 0,
        arp: Default::default(),
        udp_checksum: Default::default(),
    })
}

/// A frame from `src_port` to the service port carrying what `body`
/// writes into the UDP payload area of `out`; its length.
pub fn build_frame(
    gen: &Host,
    src_port: u16,
    out: &mut [u8],
    body: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Option<usize> {
    let room = out.len().min(UDP_PAYLOAD_OFFSET + DATAGRAM_MAX);
    let len = body(out.get_mut(UDP_PAYLOAD_OFFSET..room)?)?;
    gen.emit_udp(out, UdpEndpoint { mac: DUT_MAC, ip: DUT_IP, port: SERVICE_PORT }, src_port, len)
}

/// ms-bench's PUBLISH frames: `batch` messages each, streams round robin
/// (message `i` to stream `i % streams`), `i` in the first payload bytes.
pub fn publishes(a: &Args) -> Result<Frames, String> {
    let gen = generator();
    let stride = (UDP_PAYLOAD_OFFSET + ms_wire::HEADER_LEN + a.batch * PublishBuilder::entry_len(a.payload))
        .next_multiple_of(64);
    let n = a.frames();
    let mut frames = Frames { bytes: vec![0; n * stride], lens: Vec::with_capacity(n), stride };
    let mut payload = vec![0u8; a.payload];
    for f in 0..n {
        let first = (f * a.batch) as u64;
        let src = PUB_PORT_BASE + (ms_wire::shard::shard(first % a.streams) % 16) as u16;
        let out = &mut frames.bytes[f * stride..(f + 1) * stride];
        let len = build_frame(&gen, src, out, |b| {
            let mut w = PublishBuilder::new(b)?;
            for i in first..first + a.batch as u64 {
                let k = payload.len().min(8);
                payload[..k].copy_from_slice(&i.to_le_bytes()[..k]);
                w.push(i % a.streams, NORMAL_CLASS, &payload).then_some(())?;
            }
            Some(w.len())
        })
        .ok_or_else(|| format!("{} messages of {} B do not fit one datagram", a.batch, a.payload))?;
        frames.lens.push(len);
    }
    Ok(frames)
}
