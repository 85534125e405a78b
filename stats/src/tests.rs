use super::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn dir(n: usize) -> Vec<Slot> {
    (0..n)
        .map(|i| Slot {
            name: format!("slot_{i}"),
            kind: match i {
                1 => Kind::Bucket { le: 1 << 20 },
                2 => Kind::Bucket { le: u64::MAX },
                _ => Kind::Counter,
            },
            help: format!("help {i}"),
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
