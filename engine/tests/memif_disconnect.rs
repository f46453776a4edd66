//! A memif peer that goes while an lcore polls flat out. DPDK 22.11's memif driver unmaps the
//! shared memory from its interrupt thread when the peer goes; before the engine took each
//! burst under the driver's disconnect lock, an lcore polling a client port died of SIGSEGV
//! about once in twenty disconnects. Here a worker lcore echoes whatever reaches a memif client
//! port, flat out, while server processes (this test binary again, as `memif_server`) come,
//! send and go, again and again. The EAL's interrupt thread, which does the unmapping, is moved
//! onto the worker's CPU, as a busy machine would put it: then a disconnect preempts the poll,
//! often mid-burst, and without the guard the test dies within a few rounds. A crash ends the
//! test process; at the end every mbuf must be back in its pool.

use sluice::mempool::{DEFAULT_CACHE, DEFAULT_DATA_ROOM};
use sluice::net::ethernet::{Address, EtherType, Frame};
use sluice::worker::{self, StopFlag};
use sluice::{Burst, EalBuilder, Mempool, Port, PortConfig};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DISCONNECTS: usize = 100;
const SOCKET_ENV: &str = "MEMIF_SERVER_SOCKET";

/// EAL arguments of a memif process: memif needs the multi-process socket, so a prefix of its
/// own and --huge-unlink rather than --in-memory.
fn memif_eal(lcores: &str, role: &str, socket: &str) -> EalBuilder {
    EalBuilder::new("sluice-test")
        .lcores(lcores)
        .memory_mb(64)
        .args([
            format!("--file-prefix=sluice-memif-{role}-{}", std::process::id()),
            "--huge-unlink".into(),
            "--log-level=*:error".into(),
        ])
        .vdev(format!("net_memif0,role={role},socket={socket}"))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn frames(pool: &Mempool) -> Burst {
    let mut burst = Burst::new();
    for i in 0..32 {
        let mut m = pool.alloc().unwrap();
        let room = m.append(64).unwrap();
        room.fill(i);
        let mut f = Frame::new_checked(room).unwrap();
        f.set_dst_addr(Address([2, 0, 0, 0, 0, 1]));
        f.set_src_addr(Address([2, 0, 0, 0, 0, 2]));
        f.set_ethertype(EtherType::IPV4);
        burst.push(m).ok().unwrap();
    }
    burst
}

#[test]
#[ignore = "the memif server: a_polling_lcore_survives_its_memif_peer_going starts it"]
fn memif_server() {
    let Ok(socket) = std::env::var(SOCKET_ENV) else {
        return;
    };
    let eal = memif_eal("0", "server", &socket).start().unwrap();
    let pool =
        Mempool::pktmbuf(&eal, "server", 1023, DEFAULT_CACHE, DEFAULT_DATA_ROOM, None).unwrap();
    let (port, mut rx, mut tx) = Port::start(&eal, 0, &PortConfig::default(), &pool).unwrap();
    println!("listening");
    wait_for("the client", || port.link().unwrap().up);
    // Traffic both ways, then gone: the client is mid-poll when the connection drops.
    let deadline = Instant::now() + Duration::from_millis(30);
    while Instant::now() < deadline {
        let mut burst = frames(&pool);
        tx[0].send(&mut burst);
        burst.clear();
        rx[0].recv(&mut burst);
        burst.clear();
    }
}

/// Pins the EAL's interrupt thread to `cpu`.
fn share_cpu_with_interrupt_thread(cpu: u32) {
    let task = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "eal-intr-thread")
        })
        .expect("the EAL's interrupt thread");
    let tid: i32 = task.file_name().to_str().unwrap().parse().unwrap();
    // SAFETY: cpu_set_t is plain data, filled by the libc macros' functions; the thread id is
    // one of this process's threads.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

/// What the main thread asks of the polling worker, and what the worker answers.
const POLL: u8 = 0;
const PAUSE: u8 = 1;
const PAUSED: u8 = 2;

#[test]
fn a_polling_lcore_survives_its_memif_peer_going() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("m.sock").display().to_string();
    let exe = std::env::current_exe().unwrap();
    // A server process, once it listens.
    let serve = || {
        let mut server = Command::new(&exe)
            .args(["--ignored", "--exact", "memif_server", "--nocapture"])
            .env(SOCKET_ENV, &socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(server.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("listening") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the server ended early"
            );
        }
        // Read the rest as it comes, so that the server never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        server
    };

    let mut server = serve();
    let eal = memif_eal("0,1", "client", &socket).start().unwrap();
    let pool =
        Mempool::pktmbuf(&eal, "client", 4095, DEFAULT_CACHE, DEFAULT_DATA_ROOM, None).unwrap();
    let (client, mut rx, mut tx) = Port::start(&eal, 0, &PortConfig::default(), &pool).unwrap();
    share_cpu_with_interrupt_thread(eal.lcore_cpu(1));
    let stop = StopFlag::new();
    let state = Arc::new(AtomicU8::new(POLL));
    let echo = {
        let (stop, state) = (stop.clone(), state.clone());
        let (mut rx, mut tx) = (rx.remove(0), tx.remove(0));
        worker::launch(&eal, 1, move || {
            let mut burst = Burst::new();
            let mut echoed = 0u64;
            while !stop.is_stopped() {
                match state.load(Ordering::Acquire) {
                    POLL => {
                        if rx.recv(&mut burst) > 0 {
                            echoed += tx.send(&mut burst) as u64;
                            burst.clear();
                        }
                    }
                    PAUSE => state.store(PAUSED, Ordering::Release),
                    _ => std::hint::spin_loop(),
                }
            }
            echoed
        })
        .unwrap()
    };
    for round in 0..DISCONNECTS {
        let output = server.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "round {round}: the server failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        wait_for("the link to go down", || !client.link().unwrap().up);
        // The link goes down as the interrupt thread starts disconnecting: let it finish
        // before the port is touched from here.
        // SAFETY: the EAL is up.
        assert_eq!(
            unsafe { dpdk_sys::sluice_interrupt_thread_barrier(5000) },
            0
        );
        // A client does not reconnect by itself: with the worker paused, restart the port
        // once the next server listens.
        state.store(PAUSE, Ordering::Release);
        wait_for("the worker to pause", || {
            state.load(Ordering::Acquire) == PAUSED
        });
        server = serve();
        // SAFETY: the port's queues belong to the worker, which has paused polling them; the
        // port is disconnected, so stopping it leaves the driver nothing to tear down.
        assert_eq!(unsafe { dpdk_sys::rte_eth_dev_stop(0) }, 0);
        // SAFETY: as above.
        assert_eq!(
            unsafe { dpdk_sys::rte_eth_dev_start(0) },
            0,
            "round {round}"
        );
        state.store(POLL, Ordering::Release);
    }
    // The last server is not needed: killed, it cannot remove its runtime directory itself.
    let server_runtime = format!("/var/run/dpdk/sluice-memif-server-{}", server.id());
    server.kill().ok();
    server.wait().ok();
    let _ = std::fs::remove_dir_all(server_runtime);
    stop.stop();
    let echoed = echo.join().expect("the polling worker did not panic");
    assert!(echoed > 0, "traffic flowed");
    drop((rx, tx, client));
    assert_eq!(pool.in_use(), 0, "every mbuf is back in the pool");
}
