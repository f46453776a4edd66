//! sluice-l3fwd end to end on real DPDK with net_pcap ports: every kind of packet a router
//! meets goes in; what comes out is compared byte for byte with packets built independently
//! here with etherparse, and the drop counters must say why each missing packet is missing.

mod common;

use common::*;
use etherparse::{IpNumber, Ipv4Header, Ipv4Options, PacketBuilder};
use std::time::Duration;

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xaa, 0x01];
const IN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xbb, 0x00];

fn udp4(dst: [u8; 4], src: [u8; 4], ttl: u8, macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.1, macs.0)
        .ipv4(src, dst, ttl)
        .udp(9, 9)
        .write(&mut out, b"sluice-l3fwd test payload")
        .unwrap();
    out
}

fn udp6(dst: [u8; 16], src: [u8; 16], hops: u8, macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.1, macs.0)
        .ipv6(src, dst, hops)
        .udp(9, 9)
        .write(&mut out, b"sluice-l3fwd test payload")
        .unwrap();
    out
}

/// An IPv4/UDP frame whose header carries 4 bytes of options (IHL 6).
fn udp4_with_options(dst: [u8; 4], ttl: u8, macs: ([u8; 6], [u8; 6])) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, ttl, IpNumber::UDP, [198, 18, 1, 1], dst).unwrap();
    ip.options = Ipv4Options::try_from(&[1u8, 1, 1, 0][..]).unwrap(); // NOP NOP NOP EOL
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.1, macs.0)
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .udp(9, 9)
        .write(&mut out, b"options")
        .unwrap();
    out
}

const V6_HIT: [u8; 16] = [0x20, 0x01, 0x02, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x02, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_MISS: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// The packets fed to port 0, and per lookup method what each becomes.
struct Case {
    frame: Vec<u8>,
    /// Out of port 1, built with TTL one less and the router's MACs; or the drop reason.
    expect: Expect,
}

enum Expect {
    Port1(Box<dyn Fn([u8; 6]) -> Vec<u8>>),
    Drop(&'static str),
}

fn cases(lookup: &str) -> Vec<Case> {
    let mac_in = (IN_MAC, SRC_MAC);
    let routed = |f: Box<dyn Fn([u8; 6]) -> Vec<u8>>| Expect::Port1(f);
    let mut list = vec![
        // l3fwd's built-in rules route 198.18.1.0 from 198.18.1.1, UDP 9 -> 9, to port 1 in
        // every lookup method (exact match included).
        Case {
            frame: udp4([198, 18, 1, 0], [198, 18, 1, 1], 64, mac_in),
            expect: routed(Box::new(|mac1| {
                udp4(
                    [198, 18, 1, 0],
                    [198, 18, 1, 1],
                    63,
                    ([2, 0, 0, 0, 0, 1], mac1),
                )
            })),
        },
        Case {
            frame: udp4([198, 18, 1, 0], [198, 18, 1, 1], 2, mac_in),
            expect: routed(Box::new(|mac1| {
                udp4(
                    [198, 18, 1, 0],
                    [198, 18, 1, 1],
                    1,
                    ([2, 0, 0, 0, 0, 1], mac1),
                )
            })),
        },
        Case {
            frame: udp6(V6_HIT, V6_SRC, 64, mac_in),
            expect: routed(Box::new(|mac1| {
                udp6(V6_HIT, V6_SRC, 63, ([2, 0, 0, 0, 0, 1], mac1))
            })),
        },
        Case {
            frame: udp4([10, 9, 9, 9], [198, 18, 1, 1], 64, mac_in),
            expect: Expect::Drop("no_route"),
        },
        Case {
            frame: udp6(V6_MISS, V6_SRC, 64, mac_in),
            expect: Expect::Drop("no_route"),
        },
        Case {
            frame: udp4([198, 18, 1, 0], [198, 18, 1, 1], 1, mac_in),
            expect: Expect::Drop("ttl_exceeded"),
        },
        Case {
            frame: udp4([198, 18, 1, 0], [198, 18, 1, 1], 0, mac_in),
            expect: Expect::Drop("ttl_exceeded"),
        },
        Case {
            frame: udp6(V6_HIT, V6_SRC, 1, mac_in),
            expect: Expect::Drop("ttl_exceeded"),
        },
    ];
    let good = udp4([198, 18, 1, 0], [198, 18, 1, 1], 64, mac_in);
    let mut bad_checksum = good.clone();
    bad_checksum[14 + 10] ^= 0xff;
    list.push(Case {
        frame: bad_checksum,
        expect: Expect::Drop("bad_checksum"),
    });
    let mut ihl4 = good.clone();
    ihl4[14] = 0x44;
    list.push(Case {
        frame: ihl4,
        expect: Expect::Drop("bad_header"),
    });
    let mut too_long = good.clone();
    too_long[14 + 2..14 + 4].copy_from_slice(&1000u16.to_be_bytes());
    list.push(Case {
        frame: too_long,
        expect: Expect::Drop("bad_header"),
    });
    let mut v6_too_long = udp6(V6_HIT, V6_SRC, 64, mac_in);
    v6_too_long[14 + 4..14 + 6].copy_from_slice(&1000u16.to_be_bytes());
    list.push(Case {
        frame: v6_too_long,
        expect: Expect::Drop("bad_header"),
    });
    list.push(Case {
        frame: good[..14 + 12].to_vec(),
        expect: Expect::Drop("truncated"),
    });
    list.push(Case {
        frame: good[..10].to_vec(),
        expect: Expect::Drop("truncated"),
    });
    // Non-IP (an ARP request without --addr, LLDP) and VLAN-tagged frames.
    let mut arp = good[..14 + 28].to_vec();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    list.push(Case {
        frame: arp,
        expect: Expect::Drop("unsupported"),
    });
    let mut lldp = good.clone();
    lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
    list.push(Case {
        frame: lldp,
        expect: Expect::Drop("unsupported"),
    });
    let mut tagged = good[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&good[12..]);
    list.push(Case {
        frame: tagged,
        expect: Expect::Drop("unsupported"),
    });
    // Hits for the prefix lookups that exact match misses, and IPv4 options.
    let (lpm_like, other_v4) = (lookup != "em", [198, 18, 1, 77]);
    list.push(Case {
        frame: udp4(other_v4, [10, 0, 0, 1], 64, mac_in),
        expect: if lpm_like {
            routed(Box::new(move |mac1| {
                udp4(other_v4, [10, 0, 0, 1], 63, ([2, 0, 0, 0, 0, 1], mac1))
            }))
        } else {
            Expect::Drop("no_route")
        },
    });
    list.push(Case {
        frame: udp4_with_options([198, 18, 1, 9], 64, mac_in),
        expect: if lpm_like {
            routed(Box::new(|mac1| {
                udp4_with_options([198, 18, 1, 9], 63, ([2, 0, 0, 0, 0, 1], mac1))
            }))
        } else {
            Expect::Drop("no_route")
        },
    });
    // Martians (RFC 1812 §5.3.7, RFC 3927, RFC 4291), whatever the routes say, and before
    // the TTL: from or to loopback, "this network", link-local, multicast, class E, the
    // limited broadcast; for IPv6 loopback, unspecified, link-local and multicast.
    let routed_dst = [198, 18, 1, 0];
    for (dst, src) in [
        ([127, 0, 0, 1], [198, 18, 1, 1]),
        ([0, 1, 2, 3], [198, 18, 1, 1]),
        ([224, 0, 0, 5], [198, 18, 1, 1]),
        ([255, 255, 255, 255], [198, 18, 1, 1]),
        ([240, 0, 0, 1], [198, 18, 1, 1]),
        ([169, 254, 9, 9], [198, 18, 1, 1]),
        (routed_dst, [127, 0, 0, 1]),
        (routed_dst, [0, 0, 0, 0]),
        (routed_dst, [224, 0, 0, 1]),
        (routed_dst, [169, 254, 1, 1]),
    ] {
        list.push(Case {
            frame: udp4(dst, src, 64, mac_in),
            expect: Expect::Drop("martian"),
        });
    }
    list.push(Case {
        frame: udp4([224, 0, 0, 5], [198, 18, 1, 1], 1, mac_in),
        expect: Expect::Drop("martian"),
    });
    let v6 = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    for (dst, src) in [
        (v6("::1"), V6_SRC),
        (v6("::"), V6_SRC),
        (v6("fe80::1"), V6_SRC),
        (v6("ff02::1"), V6_SRC),
        (V6_HIT, v6("fe80::1")),
        (V6_HIT, v6("ff05::2")),
        (V6_HIT, v6("::")),
        (V6_HIT, v6("::1")),
    ] {
        list.push(Case {
            frame: udp6(dst, src, 64, mac_in),
            expect: Expect::Drop("martian"),
        });
    }
    // A source under 169/8 but not link-local: the fast path's screen sends it the long way,
    // which forwards it.
    let (not_link_local, dst) = ([169, 1, 2, 3], [198, 18, 1, 0]);
    list.push(Case {
        frame: udp4(dst, not_link_local, 64, mac_in),
        expect: if lpm_like {
            routed(Box::new(move |mac1| {
                udp4(dst, not_link_local, 63, ([2, 0, 0, 0, 0, 1], mac1))
            }))
        } else {
            Expect::Drop("no_route")
        },
    });
    if lookup == "acl" {
        // ACL_V4's first line denies UDP to port 9 of 198.18.1.200.
        list.push(Case {
            frame: udp4([198, 18, 1, 200], [10, 0, 0, 1], 64, mac_in),
            expect: Expect::Drop("filtered"),
        });
    }
    list
}

/// ACL rules that route as l3fwd's built-in LPM tables do to port 1, after one that denies.
const ACL_V4: &str = "# deny first: the first matching line wins
@0.0.0.0/0 198.18.1.200/32 0 : 65535 9 : 9 17/0xff
R0.0.0.0/0 198.18.1.0/24 0 : 65535 0 : 65535 0/0 1
R0.0.0.0/0 198.18.0.0/24 0 : 65535 0 : 65535 0/0 0
";
const ACL_V6: &str = "R0:0:0:0:0:0:0:0/0 2001:200:0:1:0:0:0:0/64 0 : 65535 0 : 65535 0/0 1
";

/// Forwards `cases(lookup)` from port 0 and checks port 1's output and the drop counts.
fn check_lookup(lookup: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    let cases = cases(lookup);
    let frames: Vec<Vec<u8>> = cases.iter().map(|c| c.frame.clone()).collect();
    let mut args = strings(&["-l", "0,1", "-m", "128", "--log-level=*:warning"]);
    args.extend(pcap_ports(dir.path(), &frames));
    args.extend(strings(&["--", "-p", "0x3", "--lookup", lookup]));
    args.extend(strings(extra));
    if lookup == "acl" {
        std::fs::write(dir.path().join("acl4.cfg"), ACL_V4).unwrap();
        std::fs::write(dir.path().join("acl6.cfg"), ACL_V6).unwrap();
        args.push(format!("--rule_ipv4={}", p("acl4.cfg")));
        args.push(format!("--rule_ipv6={}", p("acl6.cfg")));
    }
    let running = start(&args);
    std::thread::sleep(Duration::from_millis(1500));
    let run = running.stop();
    assert!(run.success, "l3fwd failed:\n{}\n{}", run.stdout, run.stderr);
    let mac1 = port_mac(&run.stdout, 1);
    let expected: Vec<Vec<u8>> = cases
        .iter()
        .filter_map(|c| match &c.expect {
            Expect::Port1(build) => Some(build(mac1)),
            Expect::Drop(_) => None,
        })
        .collect();
    let out1 = common::read_pcap(dir.path().join("out1.pcap").as_path());
    assert_eq!(out1.len(), expected.len(), "{}", run.stdout);
    for (i, (got, want)) in out1.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "forwarded packet {i} differs ({lookup})");
    }
    assert!(common::read_pcap(dir.path().join("out0.pcap").as_path()).is_empty());
    let mut reasons: Vec<&str> = cases
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Drop(r) => Some(r),
            Expect::Port1(_) => None,
        })
        .collect();
    reasons.sort_unstable();
    let order = [
        "truncated",
        "filtered",
        "no_route",
        "ttl_exceeded",
        "bad_checksum",
        "bad_header",
        "unsupported",
        "martian",
    ];
    let want: Vec<String> = order
        .iter()
        .filter(|r| reasons.contains(r))
        .map(|r| format!("{r} {}", reasons.iter().filter(|x| *x == r).count()))
        .collect();
    assert_eq!(total_drops(&run.stdout), want.join(", "), "{}", run.stdout);
    assert!(run.stdout.contains("mbufs in use: 0 of"), "{}", run.stdout);
}

#[test]
fn lpm_forwards_and_drops_as_a_router_must() {
    check_lookup("lpm", &[]);
}

#[test]
fn fib_forwards_and_drops_as_a_router_must() {
    check_lookup("fib", &[]);
}

#[test]
fn exact_match_forwards_and_drops_as_a_router_must() {
    check_lookup("em", &[]);
}

#[test]
fn acl_forwards_denies_and_drops_as_a_router_must() {
    check_lookup("acl", &[]);
}

#[test]
fn pipelined_mode_forwards_the_same() {
    check_lookup(
        "lpm",
        &["--config", "(0,0,0),(1,0,0)", "--mode", "pipeline"],
    );
}

#[test]
fn shipped_rule_files_load_unchanged() {
    let dir = "/usr/share/dpdk/examples/l3fwd";
    for (lookup, v4, v6) in [
        ("lpm", "lpm_default_v4.cfg", "lpm_default_v6.cfg"),
        ("fib", "lpm_default_v4.cfg", "lpm_default_v6.cfg"),
        ("em", "em_default_v4.cfg", "em_default_v6.cfg"),
    ] {
        let mut args = strings(&["-l", "0", "-m", "128", "--log-level=*:warning"]);
        args.extend(strings(&["--vdev=net_null0", "--vdev=net_null1"]));
        args.extend(strings(&["--", "-p", "0x3", "--lookup", lookup]));
        args.push(format!("--rule_ipv4={dir}/{v4}"));
        args.push(format!("--rule_ipv6={dir}/{v6}"));
        let run = start(&args).stop();
        assert!(run.success, "{lookup}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("2 IPv4 and 2 IPv6"),
            "{lookup}: routes to ports 0 and 1 kept:\n{}",
            run.stdout
        );
        assert!(
            run.stderr.contains("skipped, as l3fwd does"),
            "{}",
            run.stderr
        );
    }
}
