//! The route tables' inline lookups (rte_lpm's arrays read in place, rte_lpm6 one call per
//! destination) against their bulk lookups and against a longest-prefix match worked out here,
//! on random routes of every depth, the default route (depth 0) among them, before and after
//! deleting some; and rte_fib/rte_fib6 against the same longest match.

mod common;

use sluice::stage::table::{Fib, Fib6, FlowKey4, FlowKey6, Lpm, Lpm6, RouteTable, NO_ROUTE};
use std::net::{Ipv4Addr, Ipv6Addr};

/// xorshift64*: reproducible inputs without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The next hop of the longest of `routes` (prefix, depth, hop) that covers `ip`.
fn longest_match<A: Copy + Into<u128>>(routes: &[(A, u8, u16)], ip: A, bits: u32) -> u16 {
    let covers = |prefix: A, depth: u8| {
        let shift = bits - u32::from(depth);
        let (p, a) = (prefix.into(), ip.into());
        depth == 0 || p >> shift == a >> shift
    };
    routes
        .iter()
        .filter(|(prefix, depth, _)| covers(*prefix, *depth))
        .max_by_key(|(_, depth, _)| *depth)
        .map_or(NO_ROUTE, |(_, _, hop)| *hop)
}

/// Addresses to look up: random ones, and ones just inside and beside every route.
fn probes<A: Copy>(
    routes: &[(A, u8, u16)],
    random: impl Fn(&mut u64) -> A,
    near: impl Fn(A, u64) -> A,
) -> Vec<A> {
    let mut state = 0x0123_4567_89ab_cdefu64;
    let mut out: Vec<A> = (0..20_000).map(|_| random(&mut state)).collect();
    for (prefix, _, _) in routes {
        for delta in [0, 1, 255, 256, 257, 1 << 20] {
            out.push(near(*prefix, delta));
        }
    }
    out
}

fn check_v4(lpm: &Lpm, routes: &[(u32, u8, u16)]) {
    let ips = probes(routes, |s| next(s) as u32, |p, d| p.wrapping_add(d as u32));
    let keys: Vec<FlowKey4> = ips
        .iter()
        .map(|&ip| FlowKey4::new(Ipv4Addr::from(ip), Ipv4Addr::UNSPECIFIED, 0, 0, 17))
        .collect();
    let reader = lpm.inline().expect("rte_lpm reads inline");
    for (ips, keys) in ips.chunks(32).zip(keys.chunks(32)) {
        let mut bulk = [0u16; 32];
        lpm.lookup(keys, &mut bulk[..keys.len()]);
        for (&ip, &bulk) in ips.iter().zip(&bulk) {
            let want = longest_match(routes, ip, 32);
            let inline = reader.next_hop(ip);
            assert_eq!(inline, want, "inline lookup of {}", Ipv4Addr::from(ip));
            assert_eq!(bulk, want, "bulk lookup of {}", Ipv4Addr::from(ip));
        }
    }
}

#[test]
fn ipv4_inline_lookups_agree_with_bulk_ones_and_longest_match() {
    let eal = common::start_eal(&[]);
    let lpm = Lpm::new(&eal, 4096, None).unwrap();
    let mut state = 0xfeed_f00d_u64;
    let mut routes: Vec<(u32, u8, u16)> = Vec::new();
    // Depths of every kind, many beyond 24 (rte_lpm's tbl8 groups), some nested in others.
    for i in 0..600 {
        let depth = match i % 4 {
            0 => 1 + (next(&mut state) % 24) as u8,
            _ => 25 + (next(&mut state) % 8) as u8,
        };
        let base = if i % 3 == 0 && !routes.is_empty() {
            routes[next(&mut state) as usize % routes.len()].0
        } else {
            next(&mut state) as u32
        };
        let prefix = base & u32::MAX.checked_shl(32 - u32::from(depth)).unwrap_or(0);
        let hop = (next(&mut state) % 8) as u16;
        routes.retain(|r| (r.0, r.1) != (prefix, depth));
        routes.push((prefix, depth, hop));
        lpm.add(Ipv4Addr::from(prefix), depth, hop).unwrap();
    }
    check_v4(&lpm, &routes);
    // The default route (which rte_lpm itself does not take) catches what no prefix covers.
    lpm.add(Ipv4Addr::UNSPECIFIED, 0, 9).unwrap();
    routes.push((0, 0, 9));
    check_v4(&lpm, &routes);
    // Deleting frees and reuses tbl8 groups: the readers must follow.
    let (gone, kept): (Vec<_>, Vec<_>) = routes.iter().partition(|r| r.0 % 2 == 0);
    for (prefix, depth, _) in &gone {
        assert!(lpm.delete(Ipv4Addr::from(*prefix), *depth));
    }
    assert!(
        !lpm.delete(Ipv4Addr::UNSPECIFIED, 0),
        "the default route went with the rest"
    );
    check_v4(&lpm, &kept);
}

/// Random IPv4 routes of every depth, the default route first.
fn random_routes_v4(state: &mut u64, count: usize) -> Vec<(u32, u8, u16)> {
    let mut routes = vec![(0, 0, 7)];
    for _ in 0..count {
        let depth = 1 + (next(state) % 32) as u8;
        let prefix = next(state) as u32 & u32::MAX.checked_shl(32 - u32::from(depth)).unwrap_or(0);
        routes.retain(|r: &(u32, u8, u16)| (r.0, r.1) != (prefix, depth));
        routes.push((prefix, depth, (next(state) % 8) as u16));
    }
    routes
}

#[test]
fn fib_lookups_agree_with_longest_match_default_route_included() {
    let eal = common::start_eal(&[]);
    let mut state = 0x5eed_u64;
    let routes = random_routes_v4(&mut state, 400);
    let mut fib = Fib::new(&eal, 4096, None).unwrap();
    for (prefix, depth, hop) in &routes {
        fib.add(Ipv4Addr::from(*prefix), *depth, *hop).unwrap();
    }
    let ips = probes(&routes, |s| next(s) as u32, |p, d| p.wrapping_add(d as u32));
    for ips in ips.chunks(32) {
        let keys: Vec<FlowKey4> = ips
            .iter()
            .map(|&ip| FlowKey4::new(Ipv4Addr::from(ip), Ipv4Addr::UNSPECIFIED, 0, 0, 17))
            .collect();
        let mut hops = [0u16; 32];
        fib.lookup(&keys, &mut hops[..keys.len()]);
        for (&ip, &hop) in ips.iter().zip(&hops) {
            assert_eq!(
                hop,
                longest_match(&routes, ip, 32),
                "{}",
                Ipv4Addr::from(ip)
            );
        }
    }
}

#[test]
fn fib6_lookups_agree_with_longest_match_default_route_included() {
    let eal = common::start_eal(&[]);
    let mut state = 0xf1b6_u64;
    let random = |s: &mut u64| (u128::from(next(s)) << 64) | u128::from(next(s));
    let mut routes: Vec<(u128, u8, u16)> = vec![(0, 0, 5)];
    for _ in 0..200 {
        let depth = 1 + (next(&mut state) % 128) as u8;
        let prefix =
            random(&mut state) & u128::MAX.checked_shl(128 - u32::from(depth)).unwrap_or(0);
        routes.retain(|r| (r.0, r.1) != (prefix, depth));
        routes.push((prefix, depth, (next(&mut state) % 8) as u16));
    }
    let mut fib = Fib6::new(&eal, 4096, None).unwrap();
    for (prefix, depth, hop) in &routes {
        fib.add(Ipv6Addr::from(*prefix), *depth, *hop).unwrap();
    }
    let ips = probes(&routes, random, |p, d| p.wrapping_add(u128::from(d)));
    for ips in ips.chunks(32) {
        let keys: Vec<FlowKey6> = ips
            .iter()
            .map(|&ip| FlowKey6::new(Ipv6Addr::from(ip), Ipv6Addr::UNSPECIFIED, 0, 0, 17))
            .collect();
        let mut hops = [0u16; 32];
        fib.lookup(&keys, &mut hops[..keys.len()]);
        for (&ip, &hop) in ips.iter().zip(&hops) {
            assert_eq!(
                hop,
                longest_match(&routes, ip, 128),
                "{}",
                Ipv6Addr::from(ip)
            );
        }
    }
}

#[test]
fn ipv6_inline_lookups_agree_with_bulk_ones_and_longest_match() {
    let eal = common::start_eal(&[]);
    let mut lpm = Lpm6::new(&eal, 4096, None).unwrap();
    let mut state = 0xbead_cafe_u64;
    let random = |s: &mut u64| (u128::from(next(s)) << 64) | u128::from(next(s));
    // The default route, which rte_lpm6 itself does not take, among the rest.
    let mut routes: Vec<(u128, u8, u16)> = vec![(0, 0, 6)];
    lpm.add(Ipv6Addr::UNSPECIFIED, 0, 6).unwrap();
    for _ in 0..300 {
        let depth = 1 + (next(&mut state) % 128) as u8;
        let prefix =
            random(&mut state) & u128::MAX.checked_shl(128 - u32::from(depth)).unwrap_or(0);
        let hop = (next(&mut state) % 8) as u16;
        routes.retain(|r| (r.0, r.1) != (prefix, depth));
        routes.push((prefix, depth, hop));
        lpm.add(Ipv6Addr::from(prefix), depth, hop).unwrap();
    }
    let ips = probes(&routes, random, |p, d| p.wrapping_add(u128::from(d)));
    let reader = lpm.inline().expect("rte_lpm6 reads inline");
    for ips in ips.chunks(32) {
        let keys: Vec<FlowKey6> = ips
            .iter()
            .map(|&ip| FlowKey6::new(Ipv6Addr::from(ip), Ipv6Addr::UNSPECIFIED, 0, 0, 17))
            .collect();
        let mut bulk = [0u16; 32];
        lpm.lookup(&keys, &mut bulk[..keys.len()]);
        for (&ip, &bulk) in ips.iter().zip(&bulk) {
            let want = longest_match(&routes, ip, 128);
            let inline = reader.next_hop(&ip.to_be_bytes());
            assert_eq!(inline, want, "inline lookup of {}", Ipv6Addr::from(ip));
            assert_eq!(bulk, want, "bulk lookup of {}", Ipv6Addr::from(ip));
        }
    }
}
