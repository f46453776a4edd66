//! The SPSC ring (`sluice::ring`) beside `crossbeam_queue::ArrayQueue` and DPDK's `rte_ring`
//! in single-producer/single-consumer mode, measured in the same run: time per element for
//! bursts of 1, 8 and 32, on one thread (push a burst, pop it) and across two threads (one
//! pushes, the other pops). Run: `cargo bench -p sluice --bench ring`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use sluice::ring;
use std::ffi::{c_void, CString};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CAPACITY: usize = 1024;
const BURSTS: [usize; 3] = [1, 8, 32];

/// DPDK's ring, SP/SC, holding pointer-sized items (as it holds mbufs).
struct RteRing(*mut dpdk_sys::rte_ring);

// SAFETY: an SP/SC rte_ring is used by one producer thread and one consumer thread.
unsafe impl Send for RteRing {}
// SAFETY: as above; each side calls only its own half's functions.
unsafe impl Sync for RteRing {}

impl RteRing {
    fn new(name: &str) -> RteRing {
        let name = CString::new(name).unwrap();
        let flags = dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ;
        // SAFETY: the EAL is started; the name is a valid C string.
        let raw = unsafe { dpdk_sys::rte_ring_create(name.as_ptr(), CAPACITY as u32, -1, flags) };
        assert!(!raw.is_null(), "rte_ring_create failed");
        RteRing(raw)
    }

    fn push(&self, items: &[usize]) -> usize {
        // SAFETY: a live ring; items is n pointer-sized values; only the producer calls this.
        unsafe {
            dpdk_sys::sluice_ring_sp_enqueue_burst(
                self.0,
                items.as_ptr().cast(),
                items.len() as u32,
            ) as usize
        }
    }

    fn pop(&self, out: &mut [usize]) -> usize {
        // SAFETY: as above, for the consumer; out has room for out.len() pointers.
        unsafe {
            dpdk_sys::sluice_ring_sc_dequeue_burst(
                self.0,
                out.as_mut_ptr().cast::<*mut c_void>(),
                out.len() as u32,
            ) as usize
        }
    }
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/one-thread");
    for burst in BURSTS {
        let items: Vec<usize> = (1..=burst).collect();
        let mut out = vec![0usize; burst];
        group.throughput(Throughput::Elements(burst as u64));
        let (mut p, mut cons) = ring::channel::<usize>(CAPACITY);
        group.bench_with_input(BenchmarkId::new("sluice", burst), &burst, |b, _| {
            b.iter(|| {
                p.push_slice(black_box(&items));
                black_box(cons.pop_into(&mut out));
            })
        });
        let q = ArrayQueue::<usize>::new(CAPACITY);
        group.bench_with_input(BenchmarkId::new("crossbeam", burst), &burst, |b, _| {
            b.iter(|| {
                for &i in black_box(&items) {
                    let _ = q.push(i);
                }
                for slot in out.iter_mut() {
                    *slot = q.pop().unwrap_or(0);
                }
                black_box(&out);
            })
        });
        let r = RteRing::new(&format!("bench1_{burst}"));
        group.bench_with_input(BenchmarkId::new("rte_ring", burst), &burst, |b, _| {
            b.iter(|| {
                r.push(black_box(&items));
                black_box(r.pop(&mut out));
            })
        });
    }
    group.finish();
}

/// Moves `total` items from a producer thread to this one in bursts; returns the time taken.
fn across<P, C>(total: u64, burst: usize, mut push: P, mut pop: C) -> Duration
where
    P: FnMut(&[usize]) -> usize + Send,
    C: FnMut(&mut [usize]) -> usize,
{
    let items: Vec<usize> = (1..=burst).collect();
    let mut out = vec![0usize; burst];
    std::thread::scope(|s| {
        let start = Instant::now();
        s.spawn(|| {
            pin_to_another_cpu();
            let mut sent = 0u64;
            while sent < total {
                let n = (total - sent).min(burst as u64) as usize;
                sent += push(&items[..n]) as u64;
            }
        });
        let mut received = 0u64;
        while received < total {
            received += pop(&mut out) as u64;
        }
        start.elapsed()
    })
}

/// The EAL pinned this process's main thread to its lcore's CPU and threads inherit that:
/// move the producer to a CPU of its own, or the two threads would share one.
fn pin_to_another_cpu() {
    // Not available_parallelism: it counts the CPUs of the inherited mask, i.e. one.
    // SAFETY: sysconf has no preconditions; a zeroed cpu_set_t is empty; CPU_SET and
    // sched_setaffinity get valid pointers.
    unsafe {
        let cpus = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpus - 1, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/two-threads");
    group.measurement_time(Duration::from_secs(3));
    for burst in BURSTS {
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("sluice", burst), &burst, |b, &burst| {
            b.iter_custom(|iters| {
                let (mut p, mut cons) = ring::channel::<usize>(CAPACITY);
                across(
                    iters,
                    burst,
                    |items| p.push_slice(items),
                    |out| cons.pop_into(out),
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("crossbeam", burst), &burst, |b, &burst| {
            b.iter_custom(|iters| {
                let q = ArrayQueue::<usize>::new(CAPACITY);
                across(
                    iters,
                    burst,
                    |items| items.iter().take_while(|&&i| q.push(i).is_ok()).count(),
                    |out| {
                        let mut n = 0;
                        while n < out.len() {
                            match q.pop() {
                                Some(v) => out[n] = v,
                                None => break,
                            }
                            n += 1;
                        }
                        n
                    },
                )
            })
        });
        let r = RteRing::new(&format!("bench2_{burst}"));
        group.bench_with_input(BenchmarkId::new("rte_ring", burst), &burst, |b, &burst| {
            b.iter_custom(|iters| across(iters, burst, |items| r.push(items), |out| r.pop(out)))
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    // rte_ring lives in EAL memory: start the EAL once for the whole run, without hugepages.
    let _eal = sluice::EalBuilder::new("ring-bench")
        .args(["-l", "0", "--no-huge", "-m", "64", "--log-level=*:warning"])
        .start()
        .expect("EAL for rte_ring");
    single_thread(c);
    two_threads(c);
}

criterion_group!(ring_benches, benches);
criterion_main!(ring_benches);
