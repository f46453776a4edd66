//! Multi-queue distribution on a real kernel path: `net_af_packet` with two queue pairs on
//! one end of a veth pair, whose other end is in a network namespace this test creates (and
//! removes). A sender there emits many UDP flows; the kernel's fanout hash spreads them over
//! the queues as RSS would. Every flow must land on one queue, in order. Needs root.

mod common;

use sluice::mempool::DEFAULT_DATA_ROOM;
use sluice::rss::RssConfig;
use sluice::{Burst, Mempool, Port, PortConfig};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

const FLOWS: u32 = 64;
const PER_FLOW: u32 = 40;
const MAGIC: &[u8; 6] = b"SLUICE";

/// The namespace and veth pair, removed on drop (also when the test fails).
struct TestHost {
    ns: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestHost {
    fn new(ns: &str, outside: &str, inside: &str) -> TestHost {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        ip(&["netns", "add", ns]);
        let host = TestHost { ns: ns.to_owned() };
        ip(&[
            "link", "add", outside, "type", "veth", "peer", "name", inside,
        ]);
        ip(&["link", "set", inside, "netns", ns]);
        ip(&["link", "set", outside, "up"]);
        ip(&["-n", ns, "link", "set", inside, "up"]);
        host
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the pair.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// Sends PER_FLOW rounds of one IPv4/UDP frame per flow (flows differ in source port) from
/// inside the namespace; each payload carries MAGIC, the flow and its sequence number.
const SENDER: &str = r#"
import socket, struct, sys, time
iface, flows, per_flow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
def csum(b):
    t = sum(struct.unpack("!10H", b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
sent = 0
for seq in range(per_flow):
    for flow in range(flows):
        payload = b"SLUICE" + struct.pack("!II", flow, seq) + bytes(14)
        udp = struct.pack("!HHHH", 10000 + flow, 9, 8 + len(payload), 0) + payload
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                          bytes([10, 9, flow // 256, flow % 256]), bytes([198, 18, 1, 1]))
        iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
        s.send(bytes.fromhex("02000000000102000000000208 00".replace(" ", "")) + iph + udp)
        sent += 1
        if sent % 128 == 0:
            time.sleep(0.002)
"#;

#[test]
fn flows_spread_over_queues_and_keep_their_order() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: creating network namespaces needs root (scripts/test.sh runs as root)");
        return;
    }
    let pid = std::process::id();
    let (ns, outside, inside) = (
        format!("sl-mq-{pid}"),
        format!("slmq{pid}o"),
        format!("slmq{pid}i"),
    );
    let _host = TestHost::new(&ns, &outside, &inside);

    // Rings that hold every packet the sender sends (2,560): the test polls, and a pause of
    // its process on a busy machine must not overflow them (512 frames each, the default,
    // overflowed when this process was stopped for 250 ms).
    let eal = common::start_eal(&[&format!(
        "net_af_packet0,iface={outside},qpairs=2,framecnt=4096"
    )]);
    let pool = Mempool::pktmbuf(&eal, "mq", 8191, 64, DEFAULT_DATA_ROOM, None).unwrap();
    let config = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rss: Some(RssConfig::default()),
        ..PortConfig::default()
    };
    let (port, mut rx, _tx) = Port::start(&eal, 0, &config, &pool).unwrap();
    let rss = port.rss().expect("RSS was asked for");
    assert!(rss.note.is_some() || !rss.fields.is_empty(), "{rss:?}");

    let mut sender = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "python3",
            "-c",
            SENDER,
            &inside,
            &FLOWS.to_string(),
            &PER_FLOW.to_string(),
        ])
        .spawn()
        .unwrap();
    // flow -> (queue it arrived on, last sequence number)
    let mut flows: HashMap<u32, (usize, u32)> = HashMap::new();
    let mut per_queue = [0u32; 2];
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut burst = Burst::new();
    while received < FLOWS * PER_FLOW && Instant::now() < deadline {
        for (q, queue) in rx.iter_mut().enumerate() {
            queue.recv(&mut burst);
            for m in burst.as_slice() {
                let d = m.data();
                // Ethernet 14 + IPv4 20 + UDP 8, then our payload; anything else is kernel chatter.
                if d.len() < 56 || &d[42..48] != MAGIC {
                    continue;
                }
                let flow = u32::from_be_bytes(d[48..52].try_into().unwrap());
                let seq = u32::from_be_bytes(d[52..56].try_into().unwrap());
                match flows.get_mut(&flow) {
                    None => {
                        assert_eq!(seq, 0, "flow {flow} lost its first packets");
                        flows.insert(flow, (q, seq));
                    }
                    Some((first_queue, last)) => {
                        assert_eq!(
                            *first_queue, q,
                            "flow {flow} moved from queue {first_queue} to {q}"
                        );
                        assert_eq!(seq, *last + 1, "flow {flow}: {seq} after {last}");
                        *last = seq;
                    }
                }
                per_queue[q] += 1;
                received += 1;
            }
            burst.clear();
        }
    }
    assert!(sender.wait().unwrap().success());
    assert_eq!(received, FLOWS * PER_FLOW, "per queue: {per_queue:?}");
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "one queue got nothing: {per_queue:?}"
    );
    drop((rx, port));
    assert_eq!(pool.in_use(), 0);
}
