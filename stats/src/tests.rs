use super::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn dir(n: usize) -> Vec<Slot> {
    (0..n)
        .map(|i| {
            let kind = match i {
                1 => Kind::Bucket { le: 1 << 20 },
                2 => Kind::Bucket { le: u64::MAX },
                _ => Kind::Counter,
            };
            let slot = Slot::new(format!("slot_{i}"), kind, "packets", format!("help {i}"));
            match i % 3 {
                0 => slot,
                1 => slot.with_label("port", format!("p{i}")),
                _ => slot.with_label("rank", i.to_string()).with_label("class", ""),
            }
        })
        .collect()
}

/// A path in a private (0755, ours) directory, as create() requires.
fn tmp(name: &str) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("ms-stats-test-{}", std::process::id()));
    let _ = std::fs::DirBuilder::new().mode(0o755).create(&dir);
    dir.join(name)
}

#[test]
fn create_open_round_trip() {
    let p = tmp("rt");
    let seg = Segment::create(&p, &dir(5), 3, 4242, 99).unwrap();
    let w = seg.writer(2);
    w.begin();
    w.add(0, 7);
    w.add(0, 3);
    w.set(4, 11);
    w.end();
    seg.beat(1234);
    let r = Segment::open(&p).unwrap();
    assert_eq!((r.slots(), r.lcores(), r.pid(), r.start_unix_ns(), r.heartbeat_unix_ns()), (5, 3, 4242, 99, 1234));
    assert_eq!(r.directory(), dir(5));
    let mut v = [0u64; 5];
    assert_eq!(r.read(2, &mut v, std::time::Duration::from_millis(10)), Some(2));
    assert_eq!(v, [10, 0, 0, 0, 11]);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn units_and_labels_round_trip_at_their_bounds() {
    let p = tmp("labels");
    let longest = |c: char, n: usize| std::iter::repeat_n(c, n).collect::<String>();
    let slots = vec![
        Slot::new(longest('n', NAME_MAX), Kind::Gauge, longest('u', UNIT_MAX), "é".repeat(HELP_MAX))
            .with_label(longest('k', LABEL_KEY_MAX), longest('v', LABEL_VALUE_MAX))
            .with_label("port", "eth0.100"),
        Slot::new("top_stream", Kind::Info, "stream_id", "").with_label("rank", "7"),
        Slot::new("plain", Kind::Counter, "", "No unit, no labels."),
    ];
    drop(Segment::create(&p, &slots, 1, 1, 1).unwrap());
    let back = Segment::open(&p).unwrap().directory();
    assert_eq!(back[1..], slots[1..]);
    assert_eq!(
        (back[0].name.as_str(), &back[0].unit, &back[0].labels),
        (slots[0].name.as_str(), &slots[0].unit, &slots[0].labels)
    );
    // Help is cut at a character boundary, never mid-character.
    assert_eq!(back[0].help, "é".repeat(HELP_MAX / 2));
    assert_eq!(back[1].label("rank"), Some("7"));
    assert_eq!(back[1].label("port"), None);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn slots_out_of_bounds_are_refused_with_the_bound() {
    let p = tmp("bounds");
    let ok = || Slot::new("rx_packets", Kind::Counter, "packets", "Packets.");
    let cases = [
        (Slot { name: "port_rx_packets:port=p0".into(), ..ok() }, "labels go in `labels`"),
        (Slot { name: "n".repeat(NAME_MAX + 1), ..ok() }, "1 to 48 bytes"),
        (Slot { name: String::new(), ..ok() }, "1 to 48 bytes"),
        (Slot { unit: "u".repeat(UNIT_MAX + 1), ..ok() }, "at most 32 bytes"),
        (Slot { unit: "Packets".into(), ..ok() }, "unit \"Packets\""),
        (ok().with_label("a", "1").with_label("b", "2").with_label("c", "3"), "3 labels: at most 2"),
        (ok().with_label("k".repeat(LABEL_KEY_MAX + 1), "1"), "1 to 16 bytes"),
        (ok().with_label("0port", "1"), "not starting with a digit"),
        (ok().with_label("port", "v".repeat(LABEL_VALUE_MAX + 1)), "at most 32 bytes without NUL"),
        (ok().with_label("port", "a\0b"), "without NUL"),
    ];
    for (slot, says) in cases {
        let e =
            Segment::create(&p, &[ok(), slot.clone()], 1, 1, 1).err().unwrap_or_else(|| panic!("{slot:?} accepted"));
        assert!(matches!(e, StatsError::Slot { index: 1, .. }), "{e:?}");
        assert!(e.to_string().contains(says), "{e} does not say {says:?}");
    }
    assert!(!p.exists(), "nothing is published for a refused directory");
}

#[test]
fn another_version_is_refused_with_what_to_do() {
    let p = tmp("version");
    drop(Segment::create(&p, &dir(2), 1, 1, 1).unwrap());
    let mut b = std::fs::read(&p).unwrap();
    b[hdr::VERSION..hdr::VERSION + 4].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let e = Segment::open(&p).err().expect("version 2 refused");
    assert!(matches!(e, StatsError::Version { found: 2, .. }), "{e:?}");
    let says = e.to_string();
    assert!(says.contains("version 2") && says.contains("version 3"), "{says}");
    assert!(says.contains("restart the dataplane") && says.contains("upgrade"), "{says}");
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn blocks_are_cache_line_aligned() {
    let p = tmp("align");
    let seg = Segment::create(&p, &dir(3), 4, 1, 1).unwrap();
    for l in 0..4 {
        assert_eq!((seg.blocks + l * seg.block_bytes) % BLOCK_ALIGN, 0);
    }
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn crafted_headers_are_refused_not_read() {
    let p = tmp("crafted");
    drop(Segment::create(&p, &dir(3), 1, 1, 1).unwrap());
    let good = std::fs::read(&p).unwrap();
    for (at, value) in [(48usize, u64::MAX - 127), (48, 8), (56, 3), (56, u64::MAX), (20, 8)] {
        let mut b = good.clone();
        let n = if at == 20 { 4 } else { 8 };
        b[at..at + n].copy_from_slice(&value.to_le_bytes()[..n]);
        std::fs::write(&p, &b).unwrap();
        assert!(Segment::open(&p).is_err(), "offset {at} = {value:#x} accepted");
    }
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn unsafe_directories_are_refused() {
    let base = tmp("dir");
    std::fs::create_dir_all(&base).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(Segment::create(&base.join("s"), &dir(1), 1, 1, 1).is_err(), "world-writable directory");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(Segment::create(&base.join("s"), &dir(1), 1, 1, 1).is_ok());
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn foreign_files_are_refused() {
    let p = tmp("bad");
    std::fs::write(&p, vec![0u8; 8192]).unwrap();
    assert!(matches!(Segment::open(&p), Err(StatsError::BadHeader { .. })));
    std::fs::write(&p, b"short").unwrap();
    assert!(Segment::open(&p).is_err());
    std::fs::remove_file(&p).unwrap();
}

/// Stress: the writer keeps every value of its block equal (all set to k
/// in one update); readers must never see two different values in one
/// snapshot, i.e. never a torn or half-applied update.
#[test]
fn readers_never_see_torn_updates() {
    let p = tmp("stress");
    let slots = 200;
    let seg = Arc::new(Segment::create(&p, &dir(slots), 1, 1, 1).unwrap());
    let reader = Arc::new(Segment::open(&p).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (seg, stop) = (Arc::clone(&seg), Arc::clone(&stop));
        std::thread::spawn(move || {
            let w = seg.writer(0);
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) && k < 5_000_000 {
                k += 1;
                w.begin();
                for s in 0..slots {
                    w.set(s, k);
                }
                w.end();
                // The dataplane publishes once per burst, with work between.
                for _ in 0..2000 {
                    std::hint::spin_loop();
                }
            }
            k
        })
    };
    let mut v = vec![0u64; slots];
    let (mut reads, mut last) = (0u64, 0u64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if reader.read(0, &mut v, std::time::Duration::from_millis(100)).is_some() {
            assert!(v.iter().all(|x| *x == v[0]), "torn read: {:?}", &v[..4]);
            assert!(v[0] >= last, "values went backwards");
            last = v[0];
            reads += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(reads > 100 && written > 100, "reads {reads}, writes {written}");
    assert!(last > 1, "the reader saw the writer progress");
    std::fs::remove_file(&p).unwrap();
}
