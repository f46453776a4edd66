//! Frames a router meets, built byte by byte with their checksums right, then maybe spoiled:
//! the inputs of the differential test and the seeds of the stage fuzz target.

use super::{fold, ones_sum};
use std::net::{Ipv4Addr, Ipv6Addr};

/// What an IP packet carries.
#[derive(Clone, Copy, Debug)]
pub enum Payload {
    Udp {
        src: u16,
        dst: u16,
    },
    Tcp {
        src: u16,
        dst: u16,
    },
    /// ICMP (or ICMPv6) of this type, code 0.
    Icmp(u8),
    /// Another protocol number, with a few bytes.
    Other(u8),
}

#[derive(Clone, Debug)]
pub struct Ip4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub payload: Payload,
    /// Option words after the fixed header (IHL 5 + this).
    pub option_words: u8,
    /// Fragment offset in 8-byte units.
    pub fragment: u16,
    pub body: usize,
}

#[derive(Clone, Debug)]
pub struct Ip6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hops: u8,
    pub payload: Payload,
    pub body: usize,
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out
}

/// The transport header and body of `payload`, its checksum left zero.
fn l4(payload: Payload, body: usize, icmpv6: bool) -> (u8, Vec<u8>, Option<usize>) {
    let fill = |n: usize| (0..n).map(|i| (i * 7 + 3) as u8).collect::<Vec<u8>>();
    match payload {
        Payload::Udp { src, dst } => {
            let mut b = Vec::new();
            b.extend_from_slice(&src.to_be_bytes());
            b.extend_from_slice(&dst.to_be_bytes());
            b.extend_from_slice(&((8 + body) as u16).to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend(fill(body));
            (17, b, Some(6))
        }
        Payload::Tcp { src, dst } => {
            let mut b = vec![0u8; 20];
            b[..2].copy_from_slice(&src.to_be_bytes());
            b[2..4].copy_from_slice(&dst.to_be_bytes());
            b[12] = 0x50;
            b[13] = 0x18;
            b.extend(fill(body));
            (6, b, Some(16))
        }
        Payload::Icmp(kind) => {
            let mut b = vec![kind, 0, 0, 0, 0, 1, 0, 1];
            b.extend(fill(body));
            (if icmpv6 { 58 } else { 1 }, b, Some(2))
        }
        Payload::Other(protocol) => (protocol, fill(body), None),
    }
}

pub fn ipv4(frame_dst: [u8; 6], frame_src: [u8; 6], ip: &Ip4) -> Vec<u8> {
    let (protocol, mut transport, checksum_at) = l4(ip.payload, ip.body, false);
    let header_len = 20 + 4 * usize::from(ip.option_words);
    if let Some(at) = checksum_at {
        let mut sum = ones_sum(&transport);
        if protocol != 1 {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&ip.src.octets());
            pseudo.extend_from_slice(&ip.dst.octets());
            pseudo.extend_from_slice(&[0, protocol]);
            pseudo.extend_from_slice(&(transport.len() as u16).to_be_bytes());
            sum += ones_sum(&pseudo);
        }
        let checksum = fold(sum);
        transport[at..at + 2].copy_from_slice(&checksum.to_be_bytes());
    }
    let mut header = vec![0u8; header_len];
    header[0] = 0x40 | (header_len / 4) as u8;
    header[2..4].copy_from_slice(&((header_len + transport.len()) as u16).to_be_bytes());
    header[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    header[6..8].copy_from_slice(&(ip.fragment & 0x1fff).to_be_bytes());
    header[8] = ip.ttl;
    header[9] = protocol;
    header[12..16].copy_from_slice(&ip.src.octets());
    header[16..20].copy_from_slice(&ip.dst.octets());
    for option in header[20..].iter_mut() {
        *option = 1; // NOP
    }
    let checksum = fold(ones_sum(&header));
    header[10..12].copy_from_slice(&checksum.to_be_bytes());
    let mut out = ethernet(frame_dst, frame_src, 0x0800);
    out.extend_from_slice(&header);
    out.extend_from_slice(&transport);
    out
}

pub fn ipv6(frame_dst: [u8; 6], frame_src: [u8; 6], ip: &Ip6) -> Vec<u8> {
    let (next, mut transport, checksum_at) = l4(ip.payload, ip.body, true);
    if let Some(at) = checksum_at {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip.src.octets());
        pseudo.extend_from_slice(&ip.dst.octets());
        pseudo.extend_from_slice(&(transport.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, next]);
        let checksum = fold(ones_sum(&pseudo) + ones_sum(&transport));
        transport[at..at + 2].copy_from_slice(&checksum.to_be_bytes());
    }
    let mut header = [0u8; 40];
    header[0] = 0x60;
    header[4..6].copy_from_slice(&(transport.len() as u16).to_be_bytes());
    header[6] = next;
    header[7] = ip.hops;
    header[8..24].copy_from_slice(&ip.src.octets());
    header[24..40].copy_from_slice(&ip.dst.octets());
    let mut out = ethernet(frame_dst, frame_src, 0x86dd);
    out.extend_from_slice(&header);
    out.extend_from_slice(&transport);
    out
}

/// An ARP request for `target` from `sender`.
pub fn arp(frame_src: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut out = ethernet([0xff; 6], frame_src, 0x0806);
    out.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    out.extend_from_slice(&frame_src);
    out.extend_from_slice(&sender.octets());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&target.octets());
    out
}

/// `frame` with an 802.1Q tag.
pub fn tagged(frame: &[u8], vlan: u16) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&[0x81, 0x00]);
    out.extend_from_slice(&vlan.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

/// Ways to spoil a frame.
#[derive(Clone, Copy, Debug)]
pub enum Spoil {
    None,
    /// Flip one bit, anywhere.
    FlipBit(usize),
    /// Cut the frame at this length (modulo its length).
    Truncate(usize),
    /// Overwrite one byte.
    SetByte(usize, u8),
    /// Add zero bytes at the end (Ethernet padding).
    Pad(usize),
}

pub fn spoil(mut frame: Vec<u8>, how: Spoil) -> Vec<u8> {
    let len = frame.len().max(1);
    match how {
        Spoil::None => {}
        Spoil::FlipBit(at) => frame[(at / 8) % len] ^= 1 << (at % 8),
        Spoil::Truncate(at) => frame.truncate(at % len),
        Spoil::SetByte(at, value) => frame[at % len] = value,
        Spoil::Pad(n) => frame.resize(frame.len() + n, 0),
    }
    frame
}
