//! Building packets: one template per stream and frame size, written once, then per packet
//! only the fields that vary, the signature, and checksums updated from the template's
//! precomputed partial sums (the varying bytes are zero in the template, so their words are
//! simply added).

use crate::spec::{u128_to_mac, FieldRange, Order, Protocol, Stream, FCS_LEN};
use sluice::net::checksum;
use sluice::net::ethernet::{self, Address, EtherType};
use sluice::net::{icmp, icmpv6, ipv4, ipv6, tcp, udp, vlan};
use sluice::Mbuf;
use sluice_pktgen::signature::{self, Signature};
use std::net::{Ipv4Addr, Ipv6Addr};

/// A small, fast, seeded generator (xorshift64*): random field values must be repeatable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // SplitMix64 of the seed, so that seeds 0, 1, 2... give unrelated sequences.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    #[inline]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A field that varies: its range and where it stands.
#[derive(Clone, Debug)]
struct Cursor {
    range: FieldRange,
    /// Index of the next value among the range's values (incrementing order).
    index: u128,
    count: u128,
}

impl Cursor {
    fn new(range: FieldRange) -> Cursor {
        Cursor {
            range,
            index: 0,
            count: range.count(),
        }
    }

    #[inline]
    fn next(&mut self, rng: &mut Rng) -> u128 {
        let index = match self.range.order {
            Order::Increment => {
                let i = self.index;
                self.index += 1;
                if self.index == self.count {
                    self.index = 0;
                }
                i
            }
            Order::Random if self.count <= u128::from(u64::MAX) => {
                // Lemire's multiply-shift: uniform enough, and no division.
                (u128::from(rng.next()) * self.count) >> 64
            }
            Order::Random => (u128::from(rng.next()) << 64 | u128::from(rng.next())) % self.count,
        };
        self.range.start + index * self.range.step
    }
}

/// The offsets of a template's parts.
#[derive(Clone, Copy, Debug)]
struct Layout {
    ip: usize,
    l4: usize,
    signature: usize,
    /// Where the L4 checksum is.
    l4_checksum: usize,
}

/// The frame of one stream at one size, with the varying bytes zeroed, and its partial sums.
#[derive(Clone, Debug)]
struct Template {
    bytes: Vec<u8>,
    /// IPv4 header sum without the checksum and the varying addresses.
    ip_sum: u32,
    /// L4 sum (pseudo-header where the protocol has one), without the varying fields.
    l4_sum: u32,
}

/// What varies in a stream, and so is zero in its templates.
#[derive(Clone, Copy, Debug)]
struct Varying {
    src_mac: bool,
    dst_mac: bool,
    src_ip: bool,
    dst_ip: bool,
    ports: bool,
    /// ICMP writes its echo identifier and sequence into every packet.
    icmp: bool,
}

impl Varying {
    fn any(&self) -> bool {
        self.src_mac || self.dst_mac || self.src_ip || self.dst_ip || self.ports || self.icmp
    }
}

/// The smallest frame (FCS included) that holds the stream's headers and the signature.
pub fn min_frame(stream: &Stream) -> u16 {
    let (_, layout) = layout(stream);
    (layout.signature + signature::LEN) as u16 + FCS_LEN
}

fn layout(stream: &Stream) -> (usize, Layout) {
    let ip = ethernet::HEADER_LEN
        + if stream.vlan.is_some() {
            vlan::TAG_LEN
        } else {
            0
        };
    let l4 = ip
        + if stream.ipv6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::MIN_HEADER_LEN
        };
    let (header, checksum_at) = match stream.protocol {
        Protocol::Udp => (udp::HEADER_LEN, 6),
        Protocol::Tcp { .. } => (tcp::HEADER_LEN, tcp::CHECKSUM_AT),
        Protocol::Icmp => (icmp::HEADER_LEN, 2),
    };
    (
        ip,
        Layout {
            ip,
            l4,
            signature: l4 + header,
            l4_checksum: l4 + checksum_at,
        },
    )
}

/// One stream's packets, packet by packet.
pub struct StreamGen {
    pub id: u16,
    layout: Layout,
    ipv6: bool,
    protocol: Protocol,
    varying: Varying,
    templates: Vec<Template>,
    /// Frame sizes in sending order, as template indices.
    order: Vec<u8>,
    next_size: usize,
    src_mac: Cursor,
    dst_mac: Cursor,
    src_ip: Cursor,
    dst_ip: Cursor,
    src_port: Cursor,
    dst_port: Cursor,
    rng: Rng,
    /// Sequence number of the next packet.
    pub seq: u64,
    last_flow: FlowFields,
    /// Whether any field varies ([`Varying::any`], kept rather than worked out per packet).
    varies: bool,
    /// What a computed L4 checksum of zero is sent as: 0xffff for UDP, where zero would say
    /// "no checksum" (the same in ones' complement); zero for the others.
    zero_checksum: u16,
}

impl StreamGen {
    /// Checks that every frame size holds the headers and the signature, and builds the
    /// templates. `port_mac` is the source MAC when the stream gives none.
    pub fn new(
        id: u16,
        stream: &Stream,
        port_mac: Address,
        seed: u64,
    ) -> Result<StreamGen, String> {
        let needed = min_frame(stream);
        let (_, layout) = layout(stream);
        let sizes = stream.sizes.sequence();
        if let Some(&small) = sizes.iter().find(|&&s| s < needed) {
            return Err(format!(
                "stream '{}': a {} frame of {small} bytes is too small: its headers{} and the {}-byte signature need {needed} (sizes count the 4-byte FCS)",
                stream.name,
                describe(stream),
                if stream.vlan.is_some() { " with the VLAN tag" } else { "" },
                signature::LEN
            ));
        }
        let src_mac = stream
            .src_mac
            .unwrap_or(FieldRange::fixed(crate::spec::mac_to_u128(&port_mac)));
        let varying = Varying {
            src_mac: src_mac.count() > 1,
            dst_mac: stream.dst_mac.count() > 1,
            src_ip: stream.src_ip.count() > 1,
            dst_ip: stream.dst_ip.count() > 1,
            ports: stream.src_port.count() > 1 || stream.dst_port.count() > 1,
            icmp: stream.protocol == Protocol::Icmp,
        };
        let mut distinct: Vec<u16> = sizes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > usize::from(u8::MAX) {
            return Err(format!(
                "stream '{}': {} distinct frame sizes; at most 255: use a larger step",
                stream.name,
                distinct.len()
            ));
        }
        let templates = distinct
            .iter()
            .map(|&size| template(stream, layout, size, src_mac.start, varying))
            .collect();
        let order = sizes
            .iter()
            .map(|s| distinct.binary_search(s).expect("listed") as u8)
            .collect();
        Ok(StreamGen {
            id,
            layout,
            ipv6: stream.ipv6,
            protocol: stream.protocol,
            varying,
            templates,
            order,
            next_size: 0,
            src_mac: Cursor::new(src_mac),
            dst_mac: Cursor::new(stream.dst_mac),
            src_ip: Cursor::new(stream.src_ip),
            dst_ip: Cursor::new(stream.dst_ip),
            src_port: Cursor::new(stream.src_port),
            dst_port: Cursor::new(stream.dst_port),
            rng: Rng::new(seed ^ u64::from(id).rotate_left(32)),
            seq: 0,
            varies: varying.any(),
            zero_checksum: if stream.protocol == Protocol::Udp {
                0xffff
            } else {
                0
            },
            // What a stream with fixed fields always sends; varying ones overwrite it.
            last_flow: FlowFields {
                src: stream.src_ip.start,
                dst: stream.dst_ip.start,
                ports: (stream.protocol != Protocol::Icmp)
                    .then_some((stream.src_port.start as u16, stream.dst_port.start as u16)),
            },
        })
    }

    /// Writes the next packet into `m`, stamped with `tsc`; returns its frame size (FCS
    /// included), or None when it does not fit. `m` is empty, and the packet appended to it;
    /// or, from a pool prefilled with the stream's one template ([`StreamGen::single_template`]),
    /// it holds the last packet written there, and only what changes is written. The packet's
    /// flow is then [`StreamGen::last_flow`].
    #[inline(always)]
    pub fn write_next(&mut self, m: &mut Mbuf, tsc: u64, prefilled: bool) -> Option<u16> {
        let index = if self.order.len() == 1 {
            0
        } else {
            let i = self.next_size;
            self.next_size = if i + 1 == self.order.len() { 0 } else { i + 1 };
            usize::from(self.order[i])
        };
        let t = &self.templates[index];
        let len = t.bytes.len() as u16;
        let out = if prefilled {
            debug_assert_eq!(
                m.data().len(),
                t.bytes.len(),
                "prefilled with this template"
            );
            m.data_mut()
        } else {
            let out = m.append(len)?;
            copy_frame(out, &t.bytes);
            out
        };
        if self.varies {
            self.write_varying(out, index, tsc);
        } else {
            // Nothing varies but the signature: the common case, kept short.
            self.write_signature(out, t.l4_sum, tsc);
        }
        Some(len + FCS_LEN)
    }

    /// [`StreamGen::write_next`] into each of `mbufs`, with each packet's stream and frame size
    /// in `meta`, until one does not fit; returns how many were written. Not inlined: in a
    /// function of its own, the loop keeps the generator's state in registers.
    #[inline(never)]
    pub fn write_burst(
        &mut self,
        mbufs: &mut [Mbuf],
        meta: &mut [(u16, u16)],
        tsc: u64,
        prefilled: bool,
    ) -> usize {
        if prefilled && !self.varies && self.templates.len() == 1 {
            return self.write_signatures(mbufs, meta, tsc);
        }
        let mut written = 0;
        for (m, meta) in mbufs.iter_mut().zip(meta) {
            let Some(len) = self.write_next(m, tsc, prefilled) else {
                break;
            };
            *meta = (self.id, len);
            written += 1;
        }
        written
    }

    /// [`StreamGen::write_burst`] in the commonest case at its fastest: one template, no field
    /// that varies, and mbufs from a pool prefilled with the template, so that only the
    /// signature's sequence number and timestamp and the L4 checksum change. The generator's
    /// state is copied into locals for the loop, so that it stays in registers.
    fn write_signatures(&mut self, mbufs: &mut [Mbuf], meta: &mut [(u16, u16)], tsc: u64) -> usize {
        let t = &self.templates[0];
        let (l, l4_base, zero_checksum, stream) =
            (self.layout, t.l4_sum, self.zero_checksum, self.id);
        let frame_size = t.bytes.len() as u16 + FCS_LEN;
        let mut seq = self.seq;
        let mut written = 0;
        for (m, meta) in mbufs.iter_mut().zip(meta) {
            let sig = Signature { stream, seq, tsc };
            if sign(m.data_mut(), l, l4_base, zero_checksum, &sig).is_none() {
                break;
            }
            seq += 1;
            *meta = (stream, frame_size);
            written += 1;
        }
        self.seq = seq;
        written
    }

    /// The fields that vary, then the signature and checksums, over a copy of template
    /// `index` in `out`.
    #[inline(never)]
    fn write_varying(&mut self, out: &mut [u8], index: usize, tsc: u64) {
        let t = &self.templates[index];
        let v = self.varying;
        let rng = &mut self.rng;
        if v.dst_mac {
            out[0..6].copy_from_slice(&u128_to_mac(self.dst_mac.next(rng)));
        }
        if v.src_mac {
            out[6..12].copy_from_slice(&u128_to_mac(self.src_mac.next(rng)));
        }
        let l = self.layout;
        let mut ip_extra = 0u32;
        let mut l4_extra = 0u32;
        let (src, dst) = (
            if v.src_ip {
                self.src_ip.next(rng)
            } else {
                self.src_ip.range.start
            },
            if v.dst_ip {
                self.dst_ip.next(rng)
            } else {
                self.dst_ip.range.start
            },
        );
        if self.ipv6 {
            let (s, d) = (l.ip + 8, l.ip + 24);
            if v.src_ip {
                out[s..s + 16].copy_from_slice(&src.to_be_bytes());
                l4_extra += word_sum(src, 8);
            }
            if v.dst_ip {
                out[d..d + 16].copy_from_slice(&dst.to_be_bytes());
                l4_extra += word_sum(dst, 8);
            }
        } else {
            let (s, d) = (l.ip + 12, l.ip + 16);
            if v.src_ip {
                out[s..s + 4].copy_from_slice(&(src as u32).to_be_bytes());
                ip_extra += word_sum(src, 2);
            }
            if v.dst_ip {
                out[d..d + 4].copy_from_slice(&(dst as u32).to_be_bytes());
                ip_extra += word_sum(dst, 2);
            }
            // The pseudo-header holds the addresses too (not for ICMPv4, which has none).
            if self.protocol != Protocol::Icmp {
                l4_extra += ip_extra;
            }
        }
        let (sport, dport) = (
            self.src_port.range.start as u16,
            self.dst_port.range.start as u16,
        );
        let ports = match self.protocol {
            Protocol::Icmp => {
                // Echo identifier = stream id, sequence = low 16 bits of ours.
                let at = l.l4 + 4;
                out[at..at + 2].copy_from_slice(&self.id.to_be_bytes());
                out[at + 2..at + 4].copy_from_slice(&(self.seq as u16).to_be_bytes());
                l4_extra += u32::from(self.id) + u32::from(self.seq as u16);
                None
            }
            _ if v.ports => {
                let sport = self.src_port.next(rng) as u16;
                let dport = self.dst_port.next(rng) as u16;
                out[l.l4..l.l4 + 2].copy_from_slice(&sport.to_be_bytes());
                out[l.l4 + 2..l.l4 + 4].copy_from_slice(&dport.to_be_bytes());
                l4_extra += u32::from(sport) + u32::from(dport);
                Some((sport, dport))
            }
            _ => Some((sport, dport)),
        };
        // With fixed addresses the template's IPv4 checksum is already right.
        if !self.ipv6 && (v.src_ip || v.dst_ip) {
            let csum = checksum::finish(t.ip_sum + ip_extra);
            out[l.ip + 10..l.ip + 12].copy_from_slice(&csum.to_be_bytes());
        }
        let l4_base = t.l4_sum + l4_extra;
        self.write_signature(out, l4_base, tsc);
        self.last_flow = FlowFields { src, dst, ports };
    }

    /// The frame, when the stream has one size only (for a pool prefilled with it).
    pub fn single_template(&self) -> Option<&[u8]> {
        match self.templates.as_slice() {
            [one] => Some(&one.bytes),
            _ => None,
        }
    }

    /// Writes the signature and the L4 checksum: `l4_base` is the sum of everything else.
    #[inline(always)]
    fn write_signature(&mut self, out: &mut [u8], l4_base: u32, tsc: u64) {
        let sig = Signature {
            stream: self.id,
            seq: self.seq,
            tsc,
        };
        sign(out, self.layout, l4_base, self.zero_checksum, &sig).expect("a frame of the layout");
        self.seq += 1;
    }

    /// The flow of the packet last written, as RSS hashes it. (Kept here rather than
    /// returned: a returned struct read back whole stalls store forwarding on every packet.)
    pub fn last_flow(&self) -> FlowFields {
        self.last_flow
    }
}

/// Writes `sig` into a frame of layout `l`, and its L4 checksum, `l4_base` being the sum of
/// everything else it covers; a computed zero is sent as `zero_checksum`. None if the frame is
/// too short for them.
#[inline(always)]
fn sign(
    out: &mut [u8],
    l: Layout,
    l4_base: u32,
    zero_checksum: u16,
    sig: &Signature,
) -> Option<()> {
    let at = out.get_mut(l.signature..l.signature + signature::LEN)?;
    sig.write(at.try_into().expect("sized"));
    let mut csum = checksum::finish(l4_base + sig.sum());
    if csum == 0 {
        csum = zero_checksum;
    }
    out.get_mut(l.l4_checksum..l.l4_checksum + 2)?
        .copy_from_slice(&csum.to_be_bytes());
    Some(())
}

/// The sum of the low `words` 16-bit words of `v`: a field's share of a checksum, computed from
/// its value (see [`Signature::sum`]).
#[inline]
fn word_sum(v: u128, words: u32) -> u32 {
    (0..words).map(|i| ((v >> (16 * i)) & 0xffff) as u32).sum()
}

/// `out.copy_from_slice(src)` (both at least 16 bytes long, as every frame is) in 16-byte
/// pieces the compiler copies inline, the last one overlapping the one before: frames are
/// short, and a call to memcpy per packet costs more than the copy.
#[inline(always)]
fn copy_frame(out: &mut [u8], src: &[u8]) {
    assert_eq!(out.len(), src.len());
    let len = src.len();
    let mut at = 0;
    while at + 16 <= len {
        out[at..at + 16].copy_from_slice(&src[at..at + 16]);
        at += 16;
    }
    if at < len {
        out[len - 16..].copy_from_slice(&src[len - 16..]);
    }
}

/// A packet's flow, as RSS hashes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowFields {
    pub src: u128,
    pub dst: u128,
    /// None for ICMP, which NICs hash on addresses alone.
    pub ports: Option<(u16, u16)>,
}

fn describe(stream: &Stream) -> String {
    format!(
        "{}/{}",
        stream.protocol.name().to_ascii_uppercase(),
        if stream.ipv6 { "IPv6" } else { "IPv4" }
    )
}

fn template(stream: &Stream, l: Layout, size: u16, src_mac: u128, v: Varying) -> Template {
    let len = usize::from(size - FCS_LEN);
    let mut b = vec![0u8; len];
    if !v.dst_mac {
        b[0..6].copy_from_slice(&u128_to_mac(stream.dst_mac.start));
    }
    if !v.src_mac {
        b[6..12].copy_from_slice(&u128_to_mac(src_mac));
    }
    let ethertype = if stream.ipv6 {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    };
    match stream.vlan {
        Some(vid) => {
            b[12..14].copy_from_slice(&EtherType::VLAN.0.to_be_bytes());
            b[14..16].copy_from_slice(&vid.to_be_bytes());
            b[16..18].copy_from_slice(&ethertype.0.to_be_bytes());
        }
        None => b[12..14].copy_from_slice(&ethertype.0.to_be_bytes()),
    }
    let l4_len = len - l.l4;
    let protocol = match (stream.protocol, stream.ipv6) {
        (Protocol::Udp, _) => ipv4::protocol::UDP,
        (Protocol::Tcp { .. }, _) => ipv4::protocol::TCP,
        (Protocol::Icmp, false) => ipv4::protocol::ICMP,
        (Protocol::Icmp, true) => icmpv6::NEXT_HEADER,
    };
    // Addresses as the template holds them: zero where they vary.
    let src = if v.src_ip { 0 } else { stream.src_ip.start };
    let dst = if v.dst_ip { 0 } else { stream.dst_ip.start };
    if stream.ipv6 {
        ipv6::Repr {
            src: Ipv6Addr::from(src),
            dst: Ipv6Addr::from(dst),
            next_header: protocol,
            hop_limit: stream.ttl,
            payload_len: l4_len as u16,
        }
        .emit(&mut b[l.ip..])
        .expect("sized");
    } else {
        ipv4::Repr {
            src: Ipv4Addr::from(src as u32),
            dst: Ipv4Addr::from(dst as u32),
            protocol,
            ttl: stream.ttl,
            payload_len: l4_len as u16,
        }
        .emit(&mut b[l.ip..])
        .expect("sized");
        b[l.ip + 10..l.ip + 12].fill(0);
    }
    let l4 = &mut b[l.l4..];
    match stream.protocol {
        Protocol::Udp => {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        Protocol::Tcp { flags } => tcp::Repr {
            src_port: 0,
            dst_port: 0,
            seq: 1,
            ack: if flags & tcp::flags::ACK != 0 { 1 } else { 0 },
            flags,
            window: 65535,
        }
        .emit(l4)
        .expect("sized"),
        Protocol::Icmp => {
            l4[0] = if stream.ipv6 {
                icmpv6::ECHO_REQUEST
            } else {
                icmp::ECHO_REQUEST
            };
        }
    }
    if stream.protocol != Protocol::Icmp && !v.ports {
        l4[0..2].copy_from_slice(&(stream.src_port.start as u16).to_be_bytes());
        l4[2..4].copy_from_slice(&(stream.dst_port.start as u16).to_be_bytes());
    }
    // The payload after the signature: a recognisable pattern, its sum part of the base.
    for (i, byte) in b[l.signature + signature::LEN..].iter_mut().enumerate() {
        *byte = i as u8;
    }
    let ip_sum = if stream.ipv6 {
        0
    } else {
        let sum = checksum::sum(&b[l.ip..l.l4]);
        if !(v.src_ip || v.dst_ip) {
            b[l.ip + 10..l.ip + 12].copy_from_slice(&checksum::finish(sum).to_be_bytes());
        }
        sum
    };
    let pseudo = if stream.ipv6 {
        checksum::pseudo_v6(
            &Ipv6Addr::from(src),
            &Ipv6Addr::from(dst),
            protocol,
            l4_len as u32,
        )
    } else if stream.protocol == Protocol::Icmp {
        0
    } else {
        checksum::pseudo_v4(
            Ipv4Addr::from(src as u32),
            Ipv4Addr::from(dst as u32),
            protocol,
            l4_len as u16,
        )
    };
    let l4_sum = checksum::combine(&[pseudo, checksum::sum(&b[l.l4..])]);
    Template {
        bytes: b,
        ip_sum,
        l4_sum,
    }
}
