//! Writes the fuzz corpora's seeds: `seed CORPUS_DIR [PCAP...]`. The frames of the pcaps (from
//! pktgen's templates: scripts/fuzz.sh captures them) seed every header view, in pieces as
//! each view takes them, and the stage target, as bursts for each configuration; the pcaps
//! themselves seed pcap replay; the route files DPDK ships and a few lines of each text
//! format seed the text parsers.

use pcap_file::pcap::PcapReader;
use std::path::{Path, PathBuf};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    std::fs::write(dir.join(name), bytes).expect("a seed");
}

/// The pieces of `frame` each header view takes.
fn views(frame: &[u8]) -> Vec<(&'static str, &[u8])> {
    let mut out = vec![("net_ethernet", frame), ("pktgen_receive", frame)];
    let Some(ethertype) = frame.get(12..14) else {
        return out;
    };
    let mut at = 14;
    let mut ethertype = u16::from_be_bytes([ethertype[0], ethertype[1]]);
    if ethertype == 0x8100 && frame.len() >= 18 {
        out.push(("net_vlan", &frame[14..]));
        ethertype = u16::from_be_bytes([frame[16], frame[17]]);
        at = 18;
    }
    let ip = &frame[at..];
    let (l4, protocol) = match ethertype {
        0x0800 if ip.len() >= 20 => {
            out.push(("net_ipv4", ip));
            let ihl = usize::from(ip[0] & 0xf) * 4;
            (ip.get(ihl..).unwrap_or(&[]), ip[9])
        }
        0x86dd if ip.len() >= 40 => {
            out.push(("net_ipv6", ip));
            (&ip[40..], ip[6])
        }
        0x0806 => {
            out.push(("net_arp", ip));
            return out;
        }
        _ => return out,
    };
    let view = match protocol {
        1 => "net_icmp",
        58 => "net_icmpv6",
        6 => "net_tcp",
        17 => "net_udp",
        _ => return out,
    };
    out.push((view, l4));
    out
}

/// A stage-target input: the configuration, then each frame as length, port, bytes.
fn burst(kind: u8, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![kind];
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(f.len() as u16).to_be_bytes());
        out.push(i as u8 % 3);
        out.extend_from_slice(f);
    }
    out
}

const TEXT_SEEDS: &[(&str, &str)] = &[
    ("l3fwd_rules", "R198.18.0.0/24 0\nR198.18.1.0/24 1\n# comment\n\nR0.0.0.0/0 1\n"),
    ("l3fwd_rules", "R2001:200:0:0::/64 0\nR::/0 1\n"),
    (
        "l3fwd_rules",
        "R198.18.0.0 198.18.0.1 9 9 0x11 0\nR2001:200::1 2001:200::2 9 9 17 1\n",
    ),
    (
        "l3fwd_rules",
        "@0.0.0.0/0 198.18.1.0/24 0 : 65535 22 : 22 6/0xff\nR0.0.0.0/0 198.18.1.0/24 0 : 65535 0 : 65535 0/0 1\n",
    ),
    ("l3fwd_neighbours", "# static\n10.0.2.2 02:00:00:00:00:02\n2001:db8::2 02:00:00:00:00:03\n"),
    ("l3fwd_control", "route add 10.1.0.0/16 1"),
    ("l3fwd_control", "route del 0.0.0.0/0"),
    ("l3fwd_control", "routes"),
    ("pktgen_ranges", "198.18.1.1-198.18.1.254/random"),
    ("pktgen_ranges", "1024-2047/2"),
    ("pktgen_ranges", "02:00:00:00:00:01-02:00:00:00:00:ff"),
    ("pktgen_ranges", "2001:200:0:1::1-2001:200:0:1::ff"),
    ("pktgen_ranges", "64,128,1518"),
    ("pktgen_ranges", "imix"),
    ("pktgen_ranges", "10gbps"),
    ("pktgen_ranges", "syn,ack"),
    ("pktgen_ranges", "zipf:0.99"),
    ("impair_netem", "delay 10ms 1ms 25% distribution normal loss 0.1%"),
    ("impair_netem", "loss gemodel 1% 10% 70% 0.1% duplicate 1% corrupt 0.1%"),
    ("impair_netem", "loss state 1% 2% 3% 4% 5% reorder 25% 50% gap 5 delay 1ms"),
    ("impair_netem", "rate 1gbit overhead 24 limit 100000 delay 100us seed 7"),
    (
        "pktgen_streams",
        "[[stream]]\nname = \"a\"\nprotocol = \"tcp\"\ntcp_flags = \"syn\"\ndst_ip = \"198.18.1.1-198.18.1.9\"\nsize = 128\n\n[[stream]]\nipv6 = true\nsize = \"imix\"\nvlan = 100\nrate = \"1mpps\"\n",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((corpus, pcaps)) = args.split_first() else {
        eprintln!("usage: seed CORPUS_DIR [PCAP...]");
        std::process::exit(2);
    };
    let corpus = PathBuf::from(corpus);
    let mut frames = Vec::new();
    for (n, path) in pcaps.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        write(&corpus, "pktgen_pcap", &format!("pcap-{n}"), &bytes);
        let mut reader = PcapReader::new(&bytes[..]).unwrap_or_else(|e| panic!("{path}: {e}"));
        while let Some(packet) = reader.next_packet() {
            frames.push(packet.expect("a frame").data.into_owned());
        }
    }
    frames.sort();
    frames.dedup();
    for (n, frame) in frames.iter().enumerate() {
        for (target, bytes) in views(frame) {
            write(&corpus, target, &format!("frame-{n}"), bytes);
        }
    }
    for (n, group) in frames.chunks(16).enumerate() {
        for kind in 0..6u8 {
            write(
                &corpus,
                "l3fwd_stage",
                &format!("burst-{n}-{kind}"),
                &burst(kind, group),
            );
        }
    }
    write(
        &corpus,
        "l3fwd_responder",
        "to-the-router",
        &sluice_fuzz::burst_for_the_router(),
    );
    for (n, group) in frames.chunks(16).enumerate() {
        write(
            &corpus,
            "l3fwd_responder",
            &format!("burst-{n}"),
            &burst(0, group)[1..],
        );
    }
    for (n, (target, text)) in TEXT_SEEDS.iter().enumerate() {
        write(&corpus, target, &format!("seed-{n}"), text.as_bytes());
    }
    for (n, message) in kv_messages().iter().enumerate() {
        write(&corpus, "kv_protocol", &format!("message-{n}"), message);
    }
    if let Ok(shipped) = std::fs::read_dir("/usr/share/dpdk/examples/l3fwd") {
        for file in shipped.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".cfg") {
                let text = std::fs::read(file.path()).expect("a shipped rule file");
                write(&corpus, "l3fwd_rules", &name, &text);
            }
        }
    }
    println!(
        "seeded {} from {} distinct frames of {} pcap file(s)",
        corpus.display(),
        frames.len(),
        pcaps.len()
    );
}

/// One sluice-kv message of each type, and a request and response of several items.
fn kv_messages() -> Vec<Vec<u8>> {
    use sluice_kv::protocol::*;
    let nonce = [7; NONCE_LEN];
    let cookie = Cookie {
        epoch: 59_000_000,
        mac: [9; MAC_LEN],
    };
    let fixed = [
        Message::Hello {
            nonce,
            cookie: None,
        },
        Message::Hello {
            nonce,
            cookie: Some(cookie),
        },
        Message::Retry { nonce, cookie },
        Message::Welcome(Welcome {
            nonce,
            session: 42,
            idle_timeout_secs: 30,
            max_ops: MAX_OPS as u8,
            max_request: MAX_PAYLOAD_V4 as u32,
        }),
        Message::Close {
            session: 42,
            last: 3,
        },
        Message::Closed {
            session: 42,
            last: 3,
        },
        Message::Error(ErrorMessage {
            code: ErrorCode::Busy,
            refused: Kind::Hello as u16,
            detail: 1,
        }),
    ];
    let mut out = Vec::new();
    for message in fixed {
        let mut b = vec![0u8; HELLO_LEN];
        let n = message.emit(&mut b).expect("room");
        b.truncate(n);
        out.push(b);
    }
    let mut b = vec![0u8; MAX_PAYLOAD_V4];
    let mut request = RequestWriter::new(&mut b, 42, 4).expect("room");
    for op in [
        Operation::Put(b"user:1", b"alice"),
        Operation::Get(b"user:1"),
        Operation::Del(b"user:2"),
    ] {
        request.push(op).expect("room");
    }
    let n = request.finish();
    out.push(b[..n].to_vec());
    let mut b = vec![0u8; MAX_PAYLOAD_V4];
    let mut response = ResponseWriter::new(&mut b, MAX_PAYLOAD_V4, 42, 4, 3).expect("room");
    response.push(Status::Ok, &[]);
    response.push(Status::Ok, b"alice");
    response.push(Status::NotFound, &[]);
    let n = response.finish();
    out.push(b[..n].to_vec());
    out
}
