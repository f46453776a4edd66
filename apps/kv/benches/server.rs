//! The protocol's server state machine alone, one worker, no packets: GETs of 16-byte keys
//! and 64-byte values through `Server::handle`, retransmissions answered from the kept
//! response, and handshakes (RETRY, then WELCOME). What a worker can do before any I/O.
//! Run: `cargo bench -p sluice-kv --bench server`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_kv::protocol::{Message, Operation, RequestWriter, MAX_PAYLOAD_V4};
use sluice_kv::server::{Limits, Outcome, Server};
use sluice_kv::store::Store;
use std::hint::black_box;
use std::net::SocketAddr;

const KEYS: u64 = 100_000;

fn key(n: u64) -> [u8; 16] {
    let mut k = [b'k'; 16];
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

fn reply(server: &mut Server, bytes: &[u8], from: SocketAddr, out: &mut [u8]) -> usize {
    match server.handle(bytes, from, 0, out) {
        Outcome::Reply(n) => n,
        other => panic!("no answer: {other:?}"),
    }
}

/// A server holding KEYS keys, and a session open for `client`.
fn setup(client: SocketAddr) -> (Server, u64) {
    let mut server = Server::new(
        1,
        [1; 16],
        [2; 16],
        Store::new(2 * KEYS as usize, [3; 16]),
        Limits::default(),
    );
    let mut out = [0u8; MAX_PAYLOAD_V4];
    let mut hello = [0u8; 64];
    Message::Hello {
        nonce: [7; 16],
        cookie: None,
    }
    .emit(&mut hello)
    .unwrap();
    let n = reply(&mut server, &hello, client, &mut out);
    let Ok(Message::Retry { cookie, .. }) = Message::parse(&out[..n]) else {
        panic!()
    };
    Message::Hello {
        nonce: [7; 16],
        cookie: Some(cookie),
    }
    .emit(&mut hello)
    .unwrap();
    let n = reply(&mut server, &hello, client, &mut out);
    let Ok(Message::Welcome(w)) = Message::parse(&out[..n]) else {
        panic!()
    };
    for (id, k) in (1..=KEYS).zip(0..KEYS) {
        let mut b = [0u8; 256];
        let mut r = RequestWriter::new(&mut b, w.session, id).unwrap();
        r.push(Operation::Put(&key(k), &[0xab; 64])).unwrap();
        let len = r.finish();
        reply(&mut server, &b[..len], client, &mut out);
    }
    (server, w.session)
}

fn bench(c: &mut Criterion) {
    let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let (mut server, session) = setup(client);
    let mut out = [0u8; MAX_PAYLOAD_V4];
    let mut group = c.benchmark_group("kv_server");
    group.throughput(Throughput::Elements(1));

    let mut id = KEYS;
    let mut request = [0u8; 256];
    group.bench_function("get", |b| {
        b.iter(|| {
            id += 1;
            let mut r = RequestWriter::new(&mut request, session, id).unwrap();
            r.push(Operation::Get(&key(id % KEYS))).unwrap();
            let len = r.finish();
            black_box(reply(&mut server, &request[..len], client, &mut out))
        })
    });
    // The last request again: answered from the kept response.
    let mut r = RequestWriter::new(&mut request, session, id).unwrap();
    r.push(Operation::Get(&key(id % KEYS))).unwrap();
    let len = r.finish();
    group.bench_function("retransmission", |b| {
        b.iter(|| black_box(reply(&mut server, &request[..len], client, &mut out)))
    });
    let mut hello = [0u8; 64];
    Message::Hello {
        nonce: [9; 16],
        cookie: None,
    }
    .emit(&mut hello)
    .unwrap();
    group.bench_function("hello_to_retry", |b| {
        b.iter(|| black_box(reply(&mut server, &hello, client, &mut out)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
