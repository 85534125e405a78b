//! Round trips, fixtures from docs/protocol.md, and properties that double
//! as the fuzz target's oracle.

use crate::control::{self, Ack, Control, ErrorCode, ErrorEntry, RangeRequest};
use crate::deliver::{Deliver, DeliverState, Delivery};
use crate::publish::{Publish, PublishBuilder};
use crate::*;
use proptest::prelude::*;
use std::string::String;
use std::vec::Vec;

/// The `<!-- example: NAME -->` hex blocks of docs/protocol.md.
fn doc_example(name: &str) -> Vec<u8> {
    let doc = include_str!("../../docs/protocol.md");
    let marker = std::format!("<!-- example: {name} -->");
    let at = doc.find(&marker).unwrap_or_else(|| panic!("docs/protocol.md has no example {name}"));
    let block = &doc[at..];
    let start = block.find("```hex").expect("hex block") + "```hex".len();
    let end = start + block[start..].find("```").expect("closed block");
    let digits: String = block[start..end].chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn doc_publish_two() {
    let b = doc_example("publish-two");
    let Frame::Publish(p) = parse(&b).unwrap() else { panic!() };
    let msgs: Vec<_> = p.messages().collect();
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].stream, msgs[0].class, msgs[0].payload), (42, 1, &b"hi"[..]));
    assert_eq!((msgs[1].stream, msgs[1].class, msgs[1].payload), (42, 0, &b"abc"[..]));
    let mut out = [0xa5u8; 64];
    let mut w = PublishBuilder::new(&mut out).unwrap();
    assert!(w.push(42, 1, b"hi") && w.push(42, 0, b"abc"));
    let len = w.len();
    assert_eq!(&out[..len], &b[..], "the builder writes exactly the documented bytes");
}

#[test]
fn doc_subscribe_range() {
    let b = doc_example("subscribe-range");
    let Frame::Control(Control::Subscribe(mut r)) = parse(&b).unwrap() else { panic!() };
    let want = RangeRequest { request: 7, first: 1000, last: 1999 };
    assert_eq!(r.next(), Some(want));
    assert_eq!(r.next(), None);
    let mut out = [0u8; 64];
    let len = control::emit_ranges(&mut out, FrameType::Subscribe, &[want]).unwrap();
    assert_eq!(&out[..len], &b[..]);
}

#[test]
fn doc_heartbeat() {
    let b = doc_example("heartbeat");
    assert!(matches!(parse(&b).unwrap(), Frame::Control(Control::Heartbeat)));
    let mut out = [0u8; 8];
    assert_eq!(control::emit_heartbeat(&mut out), Some(8));
    assert_eq!(&out[..], &b[..]);
}

#[test]
fn doc_deliver_one() {
    let b = doc_example("deliver-one");
    let Frame::Deliver(d) = parse(&b).unwrap() else { panic!() };
    let want =
        Delivery { stream: 42, seq: 5, timestamp_ns: 1_700_000_000_000_000_000, class: 1, flags: 0, payload: b"hi" };
    assert_eq!(d.deliveries().collect::<Vec<_>>(), [want]);
    let mut out = [0xa5u8; 64];
    let mut st = DeliverState::start(&mut out);
    assert!(st.fits(2, out.len()));
    st.push(&mut out, &want);
    assert_eq!(&out[..usize::from(st.len)], &b[..]);
}

#[test]
fn doc_ack_and_error() {
    let b = doc_example("ack-part");
    let Frame::Control(Control::Ack(mut a)) = parse(&b).unwrap() else { panic!() };
    assert_eq!(a.next(), Some(Ack { request: 7, part: 0, parts: 2, streams: 500 }));
    let b = doc_example("error-version");
    let Frame::Control(Control::Error(mut e)) = parse(&b).unwrap() else { panic!() };
    let want = ErrorEntry { request: 0, code: ErrorCode::UnsupportedVersion, detail: 1 };
    assert_eq!(e.next(), Some(want));
    let mut out = [0u8; 64];
    let len = control::emit_errors(&mut out, &[want]).unwrap();
    assert_eq!(&out[..len], &b[..]);
}

#[test]
fn header_errors() {
    assert_eq!(parse(&[]).unwrap_err(), WireError::Truncated);
    assert_eq!(parse(&[0x4d, 0x54, 1, 1, 0, 0, 0, 0]).unwrap_err(), WireError::BadMagic);
    assert_eq!(parse(&[0x4d, 0x53, 2, 1, 0, 0, 0, 0]).unwrap_err(), WireError::UnsupportedVersion(2));
    assert_eq!(parse(&[0x4d, 0x53, 1, 99, 0, 0, 0, 0]).unwrap_err(), WireError::UnknownType(99));
}

#[test]
fn publish_errors() {
    let b = doc_example("publish-two");
    assert_eq!(parse(&b[..b.len() - 1]).unwrap_err(), WireError::Truncated);
    let mut extra = b.clone();
    extra.push(0);
    assert_eq!(parse(&extra).unwrap_err(), WireError::Malformed, "trailing bytes");
    let mut class = b.clone();
    class[16] = 4;
    assert_eq!(parse(&class).unwrap_err(), WireError::Malformed, "class above 3");
    let mut count = b.clone();
    count[6] = 3;
    assert_eq!(parse(&count).unwrap_err(), WireError::Truncated, "count beyond the entries");
    let mut huge = b;
    huge[18] = 0xff;
    huge[19] = 0xff;
    assert_eq!(parse(&huge).unwrap_err(), WireError::Malformed, "length above PAYLOAD_MAX");
}

#[test]
fn control_errors() {
    let b = doc_example("subscribe-range");
    assert_eq!(parse(&b[..27]).unwrap_err(), WireError::Truncated);
    let mut hb = doc_example("heartbeat");
    hb[6] = 1;
    assert_eq!(parse(&hb).unwrap_err(), WireError::Malformed, "a heartbeat has no entries");
    hb.extend_from_slice(&[0; 4]);
    assert_eq!(parse(&hb).unwrap_err(), WireError::Malformed);
}

#[test]
fn builder_refuses_what_does_not_fit() {
    let mut buf = [0u8; DATAGRAM_MAX];
    let mut w = PublishBuilder::new(&mut buf).unwrap();
    assert!(!w.push(1, 0, &[0; PAYLOAD_MAX + 1]));
    assert!(!w.push(1, 4, b"x"));
    assert!(w.push(1, 0, &[0; PAYLOAD_MAX]));
    assert!(!w.push(1, 0, &[0; 16]), "full");
    assert_eq!(w.count(), 1);
    let len = w.len();
    assert!(Publish::new_checked(&buf[..len]).is_ok());
}

#[test]
fn range_ids() {
    assert_eq!(RangeRequest { request: 0, first: 5, last: 5 }.ids(), Some(1));
    assert_eq!(RangeRequest { request: 0, first: 6, last: 5 }.ids(), None);
    assert_eq!(RangeRequest { request: 0, first: 0, last: u64::MAX }.ids(), Some(u64::MAX));
}

fn arb_message() -> impl Strategy<Value = (u64, u8, Vec<u8>)> {
    (any::<u64>(), 0..=3u8, proptest::collection::vec(any::<u8>(), 0..200))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn publish_round_trip(msgs in proptest::collection::vec(arb_message(), 0..12)) {
        let mut buf = [0u8; DATAGRAM_MAX];
        let mut w = PublishBuilder::new(&mut buf).unwrap();
        let mut pushed = Vec::new();
        for (s, c, p) in &msgs {
            if w.push(*s, *c, p) { pushed.push((*s, *c, p.clone())); }
        }
        let len = w.len();
        let Frame::Publish(p) = parse(&buf[..len]).unwrap() else { panic!() };
        let got: Vec<_> = p.messages().map(|m| (m.stream, m.class, m.payload.to_vec())).collect();
        prop_assert_eq!(got, pushed);
    }

    #[test]
    fn deliver_round_trip(msgs in proptest::collection::vec((arb_message(), any::<u64>(), any::<u64>()), 0..12)) {
        let mut buf = [0u8; DATAGRAM_MAX];
        let mut st = DeliverState::start(&mut buf);
        let mut pushed = Vec::new();
        for ((stream, class, payload), seq, ts) in &msgs {
            let d = Delivery { stream: *stream, seq: *seq, timestamp_ns: *ts, class: *class, flags: 0, payload };
            if st.fits(payload.len(), DATAGRAM_MAX) {
                st.push(&mut buf, &d);
                pushed.push((*stream, *seq, *ts, payload.clone()));
            }
        }
        let d = Deliver::new_checked(&buf[..usize::from(st.len)]).unwrap();
        let got: Vec<_> = d.deliveries().map(|x| (x.stream, x.seq, x.timestamp_ns, x.payload.to_vec())).collect();
        prop_assert_eq!(got, pushed);
    }

    #[test]
    fn control_round_trip(ranges in proptest::collection::vec((any::<u32>(), any::<u64>(), any::<u64>()), 0..20),
                          acks in proptest::collection::vec((any::<u32>(), any::<u16>(), any::<u16>(), any::<u32>()), 0..20)) {
        let ranges: Vec<_> = ranges.into_iter().map(|(request, first, last)| RangeRequest { request, first, last }).collect();
        let mut buf = [0u8; DATAGRAM_MAX];
        let len = control::emit_ranges(&mut buf, FrameType::Unsubscribe, &ranges).unwrap();
        let Frame::Control(Control::Unsubscribe(r)) = parse(&buf[..len]).unwrap() else { panic!() };
        prop_assert_eq!(r.collect::<Vec<_>>(), ranges);
        let acks: Vec<_> = acks.into_iter().map(|(request, part, parts, streams)| Ack { request, part, parts, streams }).collect();
        let len = control::emit_acks(&mut buf, &acks).unwrap();
        let Frame::Control(Control::Ack(a)) = parse(&buf[..len]).unwrap() else { panic!() };
        prop_assert_eq!(a.collect::<Vec<_>>(), acks);
    }

    /// The fuzz target's property, as a unit test: no input panics the
    /// parser, and a parsed frame's entries all lie inside the input.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        crate::fuzz_check(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(which in 0..6usize, flips in proptest::collection::vec((0..40usize, any::<u8>()), 1..5)) {
        let names = ["publish-two", "subscribe-range", "heartbeat", "deliver-one", "ack-part", "error-version"];
        let mut b = doc_example(names[which]);
        for (at, v) in flips { if let Some(x) = b.get_mut(at) { *x = v; } }
        crate::fuzz_check(&b);
    }
}
