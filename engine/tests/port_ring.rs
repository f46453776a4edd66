//! Ports, mbufs and bursts on a real `net_ring` device (a loopback: what a port transmits it
//! receives back), with exact bytes and every mbuf accounted for.

mod common;

use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::net::ethernet::{Address, EtherType, Frame};
use sluice::{Burst, Mempool, Port, PortConfig};

fn frame(i: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![i; len];
    let mut f = Frame::new_checked(&mut bytes[..]).unwrap();
    f.set_dst_addr(Address([2, 0, 0, 0, 0, i]));
    f.set_src_addr(Address([2, 0, 0, 0, 1, i]));
    f.set_ethertype(EtherType::IPV4);
    bytes
}

#[test]
fn net_ring_round_trip_is_byte_exact_and_returns_every_mbuf() {
    let eal = common::start_eal(&["net_ring0"]);
    assert_eq!(eal.port_ids(), vec![0]);
    let pool = Mempool::pktmbuf(
        &eal,
        "ring_rt",
        1023,
        DEFAULT_CACHE,
        DEFAULT_DATA_ROOM,
        None,
    )
    .unwrap();
    let (port, mut rx, mut tx) = Port::start(&eal, 0, &PortConfig::default(), &pool).unwrap();
    assert!(port.link().unwrap().up);
    let sent: Vec<Vec<u8>> = (0..40u8).map(|i| frame(i, 60 + i as usize)).collect();

    let mut burst = Burst::new();
    for bytes in &sent {
        let mut m = pool.alloc().expect("pool has room");
        assert!(m.extend_from_slice(bytes));
        burst.push(m).ok().unwrap();
    }
    assert_eq!(pool.in_use(), 40);
    assert_eq!(tx[0].send(&mut burst), 40);
    assert!(burst.is_empty());

    let mut back = Burst::new();
    while rx[0].recv(&mut back) > 0 {}
    let got: Vec<&[u8]> = back.as_slice().iter().map(|m| m.data()).collect();
    assert_eq!(got, sent.iter().map(Vec::as_slice).collect::<Vec<_>>());
    for m in back.as_mut_slice() {
        let mut f = Frame::new_checked(m.data_mut()).unwrap();
        f.set_src_addr(Address::BROADCAST);
    }
    assert!(back.as_slice().iter().all(|m| Frame::new_checked(m.data())
        .unwrap()
        .src_addr()
        .is_broadcast()));

    assert_eq!(back.clear(), 40);
    assert_eq!(pool.in_use(), 0);
    let stats = port.stats().unwrap();
    assert_eq!((stats.tx_packets, stats.rx_packets), (40, 40));
}

#[test]
fn bulk_alloc_is_all_or_nothing_and_drop_frees() {
    let eal = common::start_eal(&["net_null0,no-rx=1"]);
    let pool = Mempool::pktmbuf(&eal, "bulk", 100, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let mut burst = Burst::new();
    assert!(pool.alloc_into(&mut burst, 64));
    assert_eq!(pool.in_use(), 64);
    let mut second = Burst::new();
    assert!(!pool.alloc_into(&mut second, 64), "only 36 left");
    assert!(second.is_empty());
    let single = burst.pop().unwrap();
    assert_eq!(pool.in_use(), 64);
    drop(single);
    assert_eq!(pool.in_use(), 63);
    drop(burst);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn tx_that_takes_part_leaves_the_rest_in_the_burst() {
    // A net_ring port's ring holds 1024 (usable 1023): fill it, and the next send takes none.
    let eal = common::start_eal(&["net_ring0"]);
    let pool = Mempool::pktmbuf(&eal, "txfull", 2047, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let (_port, mut rx, mut tx) = Port::start(&eal, 0, &PortConfig::default(), &pool).unwrap();
    let mut sent = 0;
    loop {
        let mut burst = Burst::new();
        assert!(pool.alloc_into(&mut burst, 64));
        let n = tx[0].send(&mut burst);
        sent += n;
        if n < 64 {
            assert_eq!(burst.len(), 64 - n);
            break;
        }
    }
    assert!(sent >= 1000, "ring took {sent}");
    // The unsent rest was freed when the burst dropped; the ring holds the sent ones.
    assert_eq!(pool.in_use() as usize, sent);
    let mut drained = 0;
    let mut back = Burst::new();
    while rx[0].recv(&mut back) > 0 {
        drained += back.clear();
    }
    assert_eq!(drained, sent);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn second_eal_start_in_one_process_is_a_clear_error() {
    let _eal = common::start_eal(&[]);
    let err = sluice::EalBuilder::new("again").start().err().unwrap();
    assert_eq!(err, sluice::Error::EalAlreadyStarted);
    assert!(err.to_string().contains("nextest"));
}

#[test]
fn retain_keeps_order_and_frees_the_rest() {
    let eal = common::start_eal(&["net_null0,no-rx=1"]);
    let pool = Mempool::pktmbuf(&eal, "retain", 127, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let mut burst = Burst::new();
    for i in 0..10u8 {
        let mut m = pool.alloc().unwrap();
        assert!(m.extend_from_slice(&[i; 20]));
        burst.push(m).ok().unwrap();
    }
    let freed = burst.retain_mut(|m| m.data()[0] % 3 != 0);
    assert_eq!(freed, 4);
    let kept: Vec<u8> = burst.as_slice().iter().map(|m| m.data()[0]).collect();
    assert_eq!(kept, vec![1, 2, 4, 5, 7, 8]);
    assert_eq!(pool.in_use(), 6);
    drop(burst);
    assert_eq!(pool.in_use(), 0);
}
