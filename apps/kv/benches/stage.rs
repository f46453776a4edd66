//! The appliance's stage on real mbufs, without a port: bursts of 32 GET requests (IPv4, UDP,
//! 16-byte keys, 64-byte values), each answered in place, through the offline runner (which
//! copies each frame into an mbuf first, as a PMD would). Run:
//! `cargo bench -p sluice-kv --bench stage`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::mempool::DEFAULT_DATA_ROOM;
use sluice::net::ethernet::{self, Address, AddressPair, EtherType, Frame};
use sluice::net::{ipv4, udp};
use sluice::stage::offline::Runner;
use sluice::Mempool;
use sluice_kv::protocol::{Message, Operation, RequestWriter, DEFAULT_PORT};
use sluice_kv::server::{Limits, Server};
use sluice_kv::stage::{KvStage, Listener};
use sluice_kv::store::Store;
use std::net::{IpAddr, Ipv4Addr};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const MAC: Address = Address([2, 0, 0, 0, 0, 1]);
const KEYS: u64 = 10_000;

/// A UDP datagram from the client to the service, in a frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let l4 = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
    let mut f = vec![0u8; l4 + udp::HEADER_LEN + payload.len()];
    let mut eth = Frame::new_checked(&mut f[..]).unwrap();
    eth.set_addresses(&AddressPair::new(MAC, Address([2, 0, 0, 0, 0, 2])));
    eth.set_ethertype(EtherType::IPV4);
    ipv4::Repr {
        src: CLIENT,
        dst: SERVER,
        protocol: ipv4::protocol::UDP,
        ttl: 64,
        payload_len: (udp::HEADER_LEN + payload.len()) as u16,
    }
    .emit(&mut f[ethernet::HEADER_LEN..])
    .unwrap();
    f[l4 + udp::HEADER_LEN..].copy_from_slice(payload);
    udp::Repr {
        src_port: 40000,
        dst_port: DEFAULT_PORT,
    }
    .emit_v4(&mut f[l4..], payload.len(), CLIENT, SERVER)
    .unwrap();
    f
}

/// The UDP payload of the stage's answer.
fn answer(runner: &mut Runner, stage: &mut KvStage, payload: &[u8]) -> Vec<u8> {
    let f = frame(payload);
    let run = runner.run(stage, &[(0, &f)]).unwrap();
    run.outcomes[0].frame[ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN..].to_vec()
}

fn key(n: u64) -> [u8; 16] {
    let mut k = [b'k'; 16];
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

fn request(session: u64, id: u64, op: Operation<'_>) -> Vec<u8> {
    let mut b = [0u8; 256];
    let mut w = RequestWriter::new(&mut b, session, id).unwrap();
    w.push(op).unwrap();
    let n = w.finish();
    b[..n].to_vec()
}

fn bench(c: &mut Criterion) {
    let eal = sluice::EalBuilder::new("kv-bench")
        .args(["-l", "0", "--no-huge", "-m", "256", "--log-level=*:warning"])
        .start()
        .expect("the EAL");
    let pool = Mempool::pktmbuf(&eal, "kv-bench", 4095, 64, DEFAULT_DATA_ROOM, None).unwrap();
    let mut runner = Runner::new(pool);
    let server = Server::new(
        1,
        [1; 16],
        [2; 16],
        Store::new(2 * KEYS as usize, [3; 16]),
        Limits::default(),
    );
    let listener = Listener {
        port: 0,
        mac: MAC,
        addrs: vec![IpAddr::V4(SERVER)],
    };
    let mut stage = KvStage::new(server, [4; 16], vec![listener], DEFAULT_PORT);

    // The handshake, then KEYS keys stored.
    let mut hello = [0u8; 64];
    Message::Hello {
        nonce: [7; 16],
        cookie: None,
    }
    .emit(&mut hello)
    .unwrap();
    let retry = answer(&mut runner, &mut stage, &hello);
    let Ok(Message::Retry { cookie, .. }) = Message::parse(&retry) else {
        panic!("no RETRY")
    };
    Message::Hello {
        nonce: [7; 16],
        cookie: Some(cookie),
    }
    .emit(&mut hello)
    .unwrap();
    let welcome = answer(&mut runner, &mut stage, &hello);
    let Ok(Message::Welcome(w)) = Message::parse(&welcome) else {
        panic!("no WELCOME")
    };
    for n in 0..KEYS {
        answer(
            &mut runner,
            &mut stage,
            &request(w.session, n + 1, Operation::Put(&key(n), &[0xab; 64])),
        );
    }

    let mut group = c.benchmark_group("kv_stage");
    group.throughput(Throughput::Elements(32));
    let mut id = KEYS;
    group.bench_function("get_burst_of_32", |b| {
        b.iter_batched(
            || {
                // One session has one request outstanding: 32 sessions' worth would need 32
                // handshakes; the next ids of one session stand in, answered in turn.
                (0..32)
                    .map(|_| {
                        id += 1;
                        frame(&request(w.session, id, Operation::Get(&key(id % KEYS))))
                    })
                    .collect::<Vec<_>>()
            },
            |frames| {
                let burst: Vec<(u16, &[u8])> = frames.iter().map(|f| (0, f.as_slice())).collect();
                runner.run(&mut stage, &burst).unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
