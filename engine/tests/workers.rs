//! Workers on real EAL lcores: launch, stop flag, results, panics.

mod common;

use sluice::mempool::DEFAULT_DATA_ROOM;
use sluice::stats::{counters, DropReason};
use sluice::worker::{launch, StopFlag};
use sluice::{Burst, Mempool, Port, PortConfig};

#[test]
fn a_worker_polls_its_queue_on_its_lcore_until_stopped() {
    let eal = common::start_eal_on("0,1", &["net_ring0"]);
    assert_eq!(eal.lcores(), vec![0, 1]);
    let pool = Mempool::pktmbuf(&eal, "workers", 1023, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let (_port, mut rx, mut tx) = Port::start(&eal, 0, &PortConfig::default(), &pool).unwrap();
    let mut burst = Burst::new();
    assert!(pool.alloc_into(&mut burst, 50));
    assert_eq!(tx[0].send(&mut burst), 50);

    let stop = StopFlag::new();
    let (mut writer, shared) = counters();
    let mut queue = rx.remove(0);
    let worker_stop = stop.clone();
    let worker = launch(&eal, 1, move || {
        let mut burst = Burst::new();
        while !worker_stop.is_stopped() {
            let n = queue.recv(&mut burst);
            writer.rx(n as u64);
            writer.drop(DropReason::TxFull, burst.clear() as u64);
        }
        "done"
    })
    .unwrap();
    while shared.snapshot().rx < 50 {
        std::hint::spin_loop();
    }
    stop.stop();
    assert_eq!(worker.join().unwrap(), "done");
    let s = shared.snapshot();
    assert_eq!((s.rx, s.drops_for(DropReason::TxFull)), (50, 50));
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn a_panicking_worker_is_an_error_not_an_abort() {
    let eal = common::start_eal_on("0,1", &[]);
    let worker = launch(&eal, 1, || -> u32 { panic!("worker failure on purpose") }).unwrap();
    let err = worker.join().unwrap_err();
    assert!(err.to_string().contains("lcore 1 panicked"), "{err}");
    // The lcore is free again.
    assert_eq!(launch(&eal, 1, || 7).unwrap().join().unwrap(), 7);
}

#[test]
fn launching_on_the_main_lcore_is_refused() {
    let eal = common::start_eal(&[]);
    let err = launch(&eal, 0, || ()).err().unwrap();
    assert!(
        err.to_string()
            .contains("cannot launch a worker on lcore 0"),
        "{err}"
    );
}
