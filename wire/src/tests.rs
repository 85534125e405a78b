//! Round trips, fixtures from docs/protocol.md, and properties that double
//! as the fuzz target's oracle.

use crate::control::{self, Ack, Backpressure, Control, Credit, ErrorCode, ErrorEntry, RangeRequest};
use crate::deliver::{Deliver, DeliverState, Delivery, DeliveryMeta};
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
    let want = RangeRequest { request: 7, first: 1000, last: 1999, initial_credit: 0 };
    assert_eq!(r.next(), Some(want));
    assert_eq!(r.next(), None);
    let mut out = [0u8; 64];
    let len = control::emit_ranges(&mut out, FrameType::Subscribe, &[want]).unwrap();
    assert_eq!(&out[..len], &b[..]);
    let b = doc_example("subscribe-credit");
    let Frame::Control(Control::Subscribe(mut r)) = parse(&b).unwrap() else { panic!() };
    assert_eq!(r.next(), Some(RangeRequest { initial_credit: 4096, ..want }));
}

#[test]
fn doc_heartbeat() {
    let b = doc_example("heartbeat");
    assert!(matches!(parse(&b).unwrap(), Frame::Control(Control::Heartbeat)));
    let mut out = [0u8; 8];
    assert_eq!(control::emit_heartbeat(&mut out), Some(8));
    assert_eq!(&out[..], &b[..]);
}

const DELIVER_ONE: Delivery<'static> = Delivery {
    stream: 42,
    seq: 5,
    position: 12,
    timestamp_ns: 1_700_000_000_000_000_000,
    class: 1,
    flags: 0,
    payload: b"hi",
};

#[test]
fn doc_deliver_one() {
    let b = doc_example("deliver-one");
    let Frame::Deliver(d) = parse(&b).unwrap() else { panic!() };
    assert_eq!(d.deliveries().collect::<Vec<_>>(), [DELIVER_ONE]);
    let mut out = [0xa5u8; 64];
    let mut st = DeliverState::start(&mut out);
    assert!(st.fits(2, out.len()));
    st.push(&mut out, &DELIVER_ONE);
    assert_eq!(&out[..usize::from(st.len)], &b[..]);
}

#[test]
fn deliver_layout() {
    // | stream | seq | position | timestamp_ns | class | flags | len | payload |, after the 8-byte header.
    let b = doc_example("deliver-one");
    assert_eq!(deliver::ENTRY_HEADER_LEN, 36);
    assert_eq!(PAYLOAD_MAX, 1428);
    assert_eq!(b.len(), HEADER_LEN + deliver::ENTRY_HEADER_LEN + 2);
    let e = &b[HEADER_LEN..];
    assert_eq!(e[0..8], 42u64.to_le_bytes());
    assert_eq!(e[8..16], 5u64.to_le_bytes());
    assert_eq!(e[16..24], 12u64.to_le_bytes());
    assert_eq!(e[24..32], 1_700_000_000_000_000_000u64.to_le_bytes());
    assert_eq!((e[32], e[33]), (1, 0));
    assert_eq!(e[34..36], 2u16.to_le_bytes());
    assert_eq!(&e[36..], b"hi");
}

#[test]
fn deliver_push_with_writes_in_place() {
    // Over garbage: the header, every fixed field and the payload are written.
    let b = doc_example("deliver-one");
    let mut out = [0xa5u8; 64];
    let mut st = DeliverState::start(&mut out);
    let meta =
        DeliveryMeta { stream: 42, seq: 5, position: 12, timestamp_ns: 1_700_000_000_000_000_000, class: 1, flags: 0 };
    assert_eq!(meta, DELIVER_ONE.meta());
    let mut called = false;
    st.push_with(&mut out, &meta, 2, |p| {
        assert_eq!(p, [0xa5, 0xa5], "exactly len bytes, as the buffer held them");
        // As the dataplane does: one chunk, then the next.
        p[..1].copy_from_slice(b"h");
        p[1..].copy_from_slice(b"i");
        called = true;
    });
    assert!(called);
    assert_eq!(&out[..usize::from(st.len)], &b[..]);

    // Several entries: the same bytes as push, the count in the header.
    let chunks: [&[u8]; 3] = [b"ab", b"", b"cde"];
    let mut by_push = [0u8; 256];
    let mut by_fill = [0x5au8; 256];
    let (mut a, mut f) = (DeliverState::start(&mut by_push), DeliverState::start(&mut by_fill));
    for (i, c) in chunks.iter().enumerate() {
        let i = i as u64;
        let d = Delivery { stream: 7, seq: i, position: 100 + i, timestamp_ns: i, class: 3, flags: 0, payload: c };
        a.push(&mut by_push, &d);
        f.push_with(&mut by_fill, &d.meta(), c.len(), |p| p.copy_from_slice(c));
    }
    assert_eq!((a, f.count), (f, 3));
    let len = usize::from(f.len);
    assert_eq!(by_push[..len], by_fill[..len]);
    let got: Vec<_> =
        Deliver::new_checked(&by_fill[..len]).unwrap().deliveries().map(|d| (d.position, d.payload)).collect();
    assert_eq!(got, [(100, &b"ab"[..]), (101, &b""[..]), (102, &b"cde"[..])]);
}

#[test]
fn deliver_fits() {
    let mut buf = [0u8; DATAGRAM_MAX];
    let mut st = DeliverState::start(&mut buf);
    assert!(st.fits(PAYLOAD_MAX, DATAGRAM_MAX));
    assert!(!st.fits(PAYLOAD_MAX + 1, DATAGRAM_MAX));
    assert!(!st.fits(PAYLOAD_MAX + 1, 4096), "a larger buffer does not make a longer payload valid");
    assert!(!st.fits(PAYLOAD_MAX, DATAGRAM_MAX - 1));
    st.push_with(&mut buf, &DELIVER_ONE.meta(), PAYLOAD_MAX, |p| p.fill(7));
    assert_eq!(usize::from(st.len), DATAGRAM_MAX, "one largest message fills a datagram exactly");
    assert!(!st.fits(0, DATAGRAM_MAX));
    let d = Deliver::new_checked(&buf).unwrap();
    assert_eq!(d.deliveries().next().unwrap().payload, &[7; PAYLOAD_MAX][..]);
}

#[test]
fn doc_credit_two() {
    let b = doc_example("credit-two");
    let Frame::Control(Control::Credit(c)) = parse(&b).unwrap() else { panic!() };
    let want = [Credit { stream: 42, position: 12 + 65_536 }, Credit { stream: 43, position: 65_536 }];
    assert_eq!(c.collect::<Vec<_>>(), want);
    let mut out = [0xa5u8; 64];
    let len = control::emit_credits(&mut out, &want).unwrap();
    assert_eq!(&out[..len], &b[..], "written whole over garbage");
    assert_eq!(control::emit_credits(&mut out[..len - 1], &want), None, "too small");
    let len = control::emit_credits(&mut out, &[]).unwrap();
    assert_eq!(&out[..len], &[0x4d, 0x53, 2, 8, 0, 0, 0, 0]);
}

#[test]
fn doc_backpressure_one() {
    let b = doc_example("backpressure-one");
    let Frame::Control(Control::Backpressure(mut x)) = parse(&b).unwrap() else { panic!() };
    let want = Backpressure { stream: 42, refused: 3 };
    assert_eq!(x.next(), Some(want));
    assert_eq!(x.next(), None);
    let mut out = [0xa5u8; 64];
    let len = control::emit_backpressure(&mut out, &[want]).unwrap();
    assert_eq!(&out[..len], &b[..], "written whole over garbage, reserved as 0");
    let mut reserved = b.clone();
    reserved[HEADER_LEN + 12..].copy_from_slice(&[1, 2, 3, 4]);
    let Frame::Control(Control::Backpressure(mut x)) = parse(&reserved).unwrap() else { panic!() };
    assert_eq!(x.next(), Some(want), "reserved is ignored on receipt");
}

#[test]
fn doc_error_slow_consumer() {
    let b = doc_example("error-slow-consumer");
    let Frame::Control(Control::Error(mut e)) = parse(&b).unwrap() else { panic!() };
    let want = ErrorEntry::whole(0, ErrorCode::SlowConsumer, 42);
    assert_eq!(e.next(), Some(want));
    let mut out = [0xa5u8; 64];
    let len = control::emit_errors(&mut out, &[want]).unwrap();
    assert_eq!(&out[..len], &b[..]);
}

#[test]
fn flow_control_frames_errors() {
    for name in ["credit-two", "backpressure-one"] {
        let b = doc_example(name);
        assert_eq!(parse(&b[..b.len() - 1]).unwrap_err(), WireError::Truncated, "{name}");
        let mut extra = b.clone();
        extra.push(0);
        assert_eq!(parse(&extra).unwrap_err(), WireError::Malformed, "{name}: trailing bytes");
        let mut count = b.clone();
        count[6] += 1;
        assert_eq!(parse(&count).unwrap_err(), WireError::Truncated, "{name}: count beyond the entries");
    }
}

#[test]
fn frame_and_error_numbers() {
    let known = [
        (1, FrameType::Publish),
        (2, FrameType::Subscribe),
        (3, FrameType::Unsubscribe),
        (4, FrameType::Heartbeat),
        (5, FrameType::Deliver),
        (6, FrameType::Ack),
        (7, FrameType::Error),
        (8, FrameType::Credit),
        (9, FrameType::Backpressure),
    ];
    for v in 0..=u8::MAX {
        let t = FrameType::from(v);
        assert_eq!(u8::from(t), v);
        match known.iter().find(|(n, _)| *n == v) {
            Some((_, want)) => assert_eq!(t, *want),
            None => assert_eq!(t, FrameType::Unknown(v)),
        }
    }
    assert_eq!(parse(&[0x4d, 0x53, 2, 10, 0, 0, 0, 0]).unwrap_err(), WireError::UnknownType(10));
    assert_eq!(ErrorCode::from(10), ErrorCode::SlowConsumer);
    assert_eq!(u16::from(ErrorCode::SlowConsumer), 10);
    assert_eq!(ErrorCode::from(11), ErrorCode::UnknownSubscriber);
    assert_eq!(ErrorCode::from(12), ErrorCode::Unknown(12));
    for v in 0..=64u16 {
        assert_eq!(u16::from(ErrorCode::from(v)), v);
    }
}

/// The committed fuzz seeds (wire/fuzz/corpus/parse) are exactly the
/// examples of docs/protocol.md, file name = example name.
#[test]
fn fuzz_seeds_are_the_doc_examples() {
    let doc = include_str!("../../docs/protocol.md");
    let names: Vec<&str> = doc.split("<!-- example: ").skip(1).map(|rest| rest.split(" -->").next().unwrap()).collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let mut seeds: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    seeds.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(seeds, sorted, "one seed per doc example in {}", dir.display());
    for name in names {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), doc_example(name), "seed {name}");
        crate::fuzz_check(&doc_example(name));
    }
}

#[test]
fn doc_ack_and_error() {
    let b = doc_example("ack-part");
    let Frame::Control(Control::Ack(mut a)) = parse(&b).unwrap() else { panic!() };
    let instance = 0x1122_3344_5566_7788;
    let want = Ack { request: 7, part: 0, parts: 2, streams: 500, lifetime_ms: 30_000, instance };
    assert_eq!(a.next(), Some(want));
    let mut out = [0xa5u8; 64];
    let len = control::emit_acks(&mut out, &[want]).unwrap();
    assert_eq!(&out[..len], &b[..]);
    let b = doc_example("ack-heartbeat");
    let Frame::Control(Control::Ack(mut a)) = parse(&b).unwrap() else { panic!() };
    assert_eq!(a.next(), Some(Ack { request: 0, part: 0, parts: 1, streams: 3, lifetime_ms: 30_000, instance }));
    let examples = [
        ("error-version", ErrorEntry::whole(0, ErrorCode::UnsupportedVersion, u64::from(crate::VERSION))),
        ("error-part", ErrorEntry { request: 9, code: ErrorCode::StreamTableFull, part: 1, parts: 2, detail: 5000 }),
        ("error-unknown-subscriber", ErrorEntry::whole(0, ErrorCode::UnknownSubscriber, instance)),
    ];
    for (name, want) in examples {
        let b = doc_example(name);
        let Frame::Control(Control::Error(mut e)) = parse(&b).unwrap() else { panic!("{name}") };
        assert_eq!(e.next(), Some(want), "{name}");
        let mut out = [0xa5u8; 64];
        let len = control::emit_errors(&mut out, &[want]).unwrap();
        assert_eq!(&out[..len], &b[..], "{name}");
    }
}

/// The shards docs/protocol.md gives as examples of `mix`.
#[test]
fn doc_shard_examples() {
    for (stream, shard) in [(0, 904), (1, 580), (42, 759), (1000, 240)] {
        assert_eq!(crate::shard::shard(stream), shard, "stream {stream}");
    }
}

#[test]
fn header_errors() {
    // Too short to carry the magic: not ours, dropped without an answer.
    assert_eq!(parse(&[]).unwrap_err(), WireError::BadMagic);
    assert_eq!(parse(&[0x4d]).unwrap_err(), WireError::BadMagic);
    assert_eq!(parse(&[0x4d, 0x54, 2, 1, 0, 0, 0, 0]).unwrap_err(), WireError::BadMagic);
    assert_eq!(parse(&[0x4d, 0x53]).unwrap_err(), WireError::Truncated);
    assert_eq!(parse(&[0x4d, 0x53, 1]).unwrap_err(), WireError::UnsupportedVersion(1));
    assert_eq!(parse(&[0x4d, 0x53, 1, 1, 0, 0, 0, 0]).unwrap_err(), WireError::UnsupportedVersion(1));
    assert_eq!(parse(&[0x4d, 0x53, 2, 1, 0, 0]).unwrap_err(), WireError::Truncated);
    assert_eq!(parse(&[0x4d, 0x53, 2, 99, 0, 0, 0, 0]).unwrap_err(), WireError::UnknownType(99));
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
    assert_eq!(parse(&b[..31]).unwrap_err(), WireError::Truncated);
    let mut hb = doc_example("heartbeat");
    hb[6] = 1;
    assert_eq!(parse(&hb).unwrap_err(), WireError::Malformed, "a heartbeat has no entries");
    hb.extend_from_slice(&[0; 4]);
    assert_eq!(parse(&hb).unwrap_err(), WireError::Malformed);
    // A request without entries has no request id to answer with.
    let mut empty = doc_example("subscribe-range");
    empty.truncate(HEADER_LEN);
    empty[6] = 0;
    assert_eq!(parse(&empty).unwrap_err(), WireError::Malformed, "SUBSCRIBE with count 0");
    empty[3] = u8::from(FrameType::Unsubscribe);
    assert_eq!(parse(&empty).unwrap_err(), WireError::Malformed, "UNSUBSCRIBE with count 0");
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
    let r = |first, last| RangeRequest { request: 0, first, last, initial_credit: 0 };
    assert_eq!(r(5, 5).ids(), Some(1));
    assert_eq!(r(6, 5).ids(), None);
    assert_eq!(r(0, u64::MAX).ids(), Some(u64::MAX));
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
    fn deliver_round_trip(msgs in proptest::collection::vec(
        (arb_message(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u8>(), any::<bool>()), 0..12)) {
        let mut buf = [0xa5u8; DATAGRAM_MAX];
        let mut st = DeliverState::start(&mut buf);
        let mut pushed = Vec::new();
        for ((stream, class, payload), seq, position, timestamp_ns, flags, in_place) in &msgs {
            let d = Delivery {
                stream: *stream, seq: *seq, position: *position, timestamp_ns: *timestamp_ns, class: *class, flags: *flags, payload,
            };
            if st.fits(payload.len(), DATAGRAM_MAX) {
                if *in_place {
                    st.push_with(&mut buf, &d.meta(), payload.len(), |p| p.copy_from_slice(payload));
                } else {
                    st.push(&mut buf, &d);
                }
                pushed.push((d.meta(), payload.clone()));
            }
        }
        let d = Deliver::new_checked(&buf[..usize::from(st.len)]).unwrap();
        let got: Vec<_> = d.deliveries().map(|x| (x.meta(), x.payload.to_vec())).collect();
        prop_assert_eq!(got, pushed);
    }

    #[test]
    fn flow_control_round_trip(credits in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..91),
                               refusals in proptest::collection::vec((any::<u64>(), any::<u32>()), 0..91),
                               code in any::<u16>(), part in any::<u16>(), parts in any::<u16>(), detail in any::<u64>()) {
        let credits: Vec<_> = credits.into_iter().map(|(stream, position)| Credit { stream, position }).collect();
        let mut buf = [0xa5u8; DATAGRAM_MAX];
        let len = control::emit_credits(&mut buf, &credits).unwrap();
        prop_assert_eq!(len, HEADER_LEN + credits.len() * control::CREDIT_ENTRY_LEN);
        let Frame::Control(Control::Credit(c)) = parse(&buf[..len]).unwrap() else { panic!() };
        prop_assert_eq!(c.collect::<Vec<_>>(), credits);
        let refusals: Vec<_> = refusals.into_iter().map(|(stream, refused)| Backpressure { stream, refused }).collect();
        let len = control::emit_backpressure(&mut buf, &refusals).unwrap();
        prop_assert_eq!(len, HEADER_LEN + refusals.len() * control::BACKPRESSURE_ENTRY_LEN);
        let Frame::Control(Control::Backpressure(b)) = parse(&buf[..len]).unwrap() else { panic!() };
        prop_assert_eq!(b.collect::<Vec<_>>(), refusals);
        let e = ErrorEntry { request: 0, code: code.into(), part, parts, detail };
        let len = control::emit_errors(&mut buf, &[e]).unwrap();
        let Frame::Control(Control::Error(mut x)) = parse(&buf[..len]).unwrap() else { panic!() };
        prop_assert_eq!(x.next(), Some(e));
        crate::fuzz_check(&buf[..len]);
    }

    #[test]
    fn control_round_trip(ranges in proptest::collection::vec((any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()), 1..20),
                          acks in proptest::collection::vec((any::<u32>(), any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>(), any::<u64>()), 0..20)) {
        let ranges: Vec<_> = ranges
            .into_iter()
            .map(|(request, first, last, initial_credit)| RangeRequest { request, first, last, initial_credit })
            .collect();
        let mut buf = [0u8; DATAGRAM_MAX];
        let len = control::emit_ranges(&mut buf, FrameType::Unsubscribe, &ranges).unwrap();
        let Frame::Control(Control::Unsubscribe(r)) = parse(&buf[..len]).unwrap() else { panic!() };
        prop_assert_eq!(r.collect::<Vec<_>>(), ranges);
        let acks: Vec<_> = acks
            .into_iter()
            .map(|(request, part, parts, streams, lifetime_ms, instance)| Ack { request, part, parts, streams, lifetime_ms, instance })
            .collect();
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
    fn mutated_frames_never_panic(which in 0..13usize, flips in proptest::collection::vec((0..48usize, any::<u8>()), 1..5)) {
        let names = [
            "publish-two", "subscribe-range", "heartbeat", "deliver-one", "ack-part", "error-version", "credit-two",
            "backpressure-one", "error-slow-consumer", "ack-heartbeat", "error-part", "error-unknown-subscriber", "subscribe-credit",
        ];
        let mut b = doc_example(names[which]);
        for (at, v) in flips { if let Some(x) = b.get_mut(at) { *x = v; } }
        crate::fuzz_check(&b);
    }
}

/// Builds the same frame over two different garbage fills: equal output
/// means the builder wrote every byte of it, and bytes past it untouched.
fn writes_every_byte(build: impl Fn(&mut [u8]) -> Option<usize>) {
    let mut a = [0xa5u8; DATAGRAM_MAX];
    let mut b = [0x5au8; DATAGRAM_MAX];
    let len = build(&mut a).expect("fits");
    assert_eq!(build(&mut b), Some(len));
    assert!(len > HEADER_LEN);
    assert_eq!(a[..len], b[..len], "a byte of the frame was left as it was");
    assert!(a[len..].iter().all(|&x| x == 0xa5), "written past the frame");
    assert!(b[len..].iter().all(|&x| x == 0x5a), "written past the frame");
    assert!(parse(&a[..len]).is_ok());
}

#[test]
fn publish_writes_every_byte() {
    writes_every_byte(|buf| {
        let mut w = PublishBuilder::new(buf)?;
        (w.push(42, 1, b"hi") && w.push(7, 3, b"") && w.push(u64::MAX, 0, b"abc")).then(|| w.len())
    });
}

#[test]
fn deliver_writes_every_byte() {
    writes_every_byte(|buf| {
        let mut st = DeliverState::new(buf)?;
        let two = Delivery { stream: 9, seq: 1, payload: b"", ..DELIVER_ONE };
        (st.push(buf, &DELIVER_ONE) && st.push(buf, &two)).then_some(usize::from(st.len))
    });
}

#[test]
fn ranges_write_every_byte() {
    let r = [RangeRequest { request: 1, first: 2, last: 3, initial_credit: 4 }; 3];
    writes_every_byte(|buf| control::emit_ranges(buf, FrameType::Subscribe, &r));
    writes_every_byte(|buf| control::emit_ranges(buf, FrameType::Unsubscribe, &r));
}

#[test]
fn acks_write_every_byte() {
    let a = [Ack { request: 1, part: 2, parts: 3, streams: 4, lifetime_ms: 5, instance: 6 }; 3];
    writes_every_byte(|buf| control::emit_acks(buf, &a));
}

#[test]
fn errors_write_every_byte() {
    let e = [ErrorEntry { request: 1, code: ErrorCode::Busy, part: 2, parts: 3, detail: 4 }; 3];
    writes_every_byte(|buf| control::emit_errors(buf, &e));
}

#[test]
fn credits_write_every_byte() {
    writes_every_byte(|buf| control::emit_credits(buf, &[Credit { stream: 1, position: 2 }; 3]));
}

#[test]
fn backpressure_writes_every_byte() {
    writes_every_byte(|buf| control::emit_backpressure(buf, &[Backpressure { stream: 1, refused: 2 }; 3]));
}

#[test]
fn heartbeat_writes_every_byte() {
    let mut a = [0xa5u8; 16];
    let mut b = [0x5au8; 16];
    assert_eq!(
        (control::emit_heartbeat(&mut a), control::emit_heartbeat(&mut b)),
        (Some(HEADER_LEN), Some(HEADER_LEN))
    );
    assert_eq!(a[..HEADER_LEN], b[..HEADER_LEN]);
    assert!(a[HEADER_LEN..].iter().all(|&x| x == 0xa5));
}

/// No builder panics when the buffer is too small: each refuses and
/// leaves the buffer as it was.
#[test]
fn builders_refuse_short_buffers() {
    for n in 0..HEADER_LEN {
        let mut buf = [0xa5u8; HEADER_LEN];
        let short = &mut buf[..n];
        assert!(PublishBuilder::new(short).is_none());
        assert!(DeliverState::new(short).is_none());
        let mut st = DeliverState::start(short);
        assert!(!st.fits(0, n));
        assert!(!st.push(short, &DELIVER_ONE), "a state that never started takes nothing");
        assert_eq!(control::emit_heartbeat(short), None);
        assert_eq!(control::emit_credits(short, &[]), None);
        assert!(buf.iter().all(|&x| x == 0xa5));
    }
    let mut buf = [0xa5u8; 64];
    let mut st = DeliverState::start(&mut buf);
    let big = [0u8; 64];
    let d = Delivery { payload: &big, ..DELIVER_ONE };
    assert!(!st.push(&mut buf, &d), "does not fit: refused, nothing written");
    assert!(buf[HEADER_LEN..].iter().all(|&x| x == 0xa5));
    assert_eq!(st, DeliverState { len: HEADER_LEN as u16, count: 0 });
}
