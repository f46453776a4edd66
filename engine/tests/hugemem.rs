//! Arrays in hugepage memory: filled as asked, on the node asked, freed when dropped, and a
//! request larger than the EAL's memory refused with a line that says what to do.

mod common;

use sluice::hugemem::HugeArray;

#[test]
fn hugepage_arrays_are_filled_freed_and_refused_when_too_large() {
    let _eal = common::start_eal(&[]);
    let mut a = HugeArray::filled(100_000, 7u64, Some(0)).unwrap();
    assert_eq!(a.len(), 100_000);
    assert!(a.iter().all(|&x| x == 7));
    a[99_999] = 8;
    assert_eq!(a.iter().sum::<u64>(), 700_001);
    assert_eq!(a.as_ptr() as usize % 64, 0, "cache-line aligned");
    drop(a);
    // What was freed can be had again, many times over (nothing leaks).
    for _ in 0..64 {
        let b = HugeArray::filled(1 << 20, [0u8; 16], None).unwrap();
        assert_eq!(b.len(), 1 << 20);
    }
    let empty = HugeArray::filled(0, 0u32, None).unwrap();
    assert!(empty.is_empty());
    let Err(e) = HugeArray::filled(1 << 40, 0u8, None) else {
        panic!("a terabyte of hugepages")
    };
    assert!(
        e.to_string().contains("1048576 MiB of hugepage memory"),
        "{e}"
    );
}
