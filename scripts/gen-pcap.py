#!/usr/bin/env python3
"""Writes a pcap of Ethernet/IPv4/UDP frames, for demos and benchmarks on virtual ports.

usage: gen-pcap.py OUT.pcap [--count N] [--size BYTES] [--flows N] [--dst-net A.B.C]
                   [--ipv6] [--em-flow]

Frames are --size bytes without the FCS (64 = the minimum Ethernet frame, 60 + 4 FCS on the
wire, so 60 here), with valid IPv4 header checksums; flows vary the source address and port. --ipv6 writes
IPv6/UDP to 2001:200:0:1::/64 instead (at least 62 bytes); --em-flow makes every frame l3fwd's
built-in exact-match flow (198.18.1.0 from 198.18.1.1, or 2001:200:0:1:: from ...::1, UDP 9 -> 9).
"""
import argparse
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(i: int, size: int, flows: int, dst_net: str) -> bytes:
    flow = i % flows
    src_ip = bytes([10, 0, (flow >> 8) & 0xFF, flow & 0xFF])
    dst_ip = bytes(int(x) for x in dst_net.split(".")) + bytes([1 + flow % 254])
    payload_len = size - 14 - 20 - 8
    udp = struct.pack("!HHHH", 1024 + flow % 60000, 9, 8 + payload_len, 0) + bytes(payload_len)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = bytes.fromhex("020000000001" "020000000002") + struct.pack("!H", 0x0800)
    return eth + ip + udp


def frame6(i: int, size: int, flows: int, em_flow: bool) -> bytes:
    flow = i % flows
    net = bytes.fromhex("20010200000000010000000000000000")
    if em_flow:
        src, dst, sport = net[:15] + b"\x01", net, 9
    else:
        src = bytes.fromhex("20010db8000000000000000000000000")[:14] + struct.pack("!H", flow)
        dst, sport = net[:15] + bytes([1 + flow % 254]), 1024 + flow
    payload_len = max(size, 62) - 14 - 40 - 8
    udp = struct.pack("!HHHH", sport, 9, 8 + payload_len, 0) + bytes(payload_len)
    pseudo = src + dst + struct.pack("!IxxxB", len(udp), 17)
    udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + src + dst
    eth = bytes.fromhex("020000000001" "020000000002") + struct.pack("!H", 0x86DD)
    return eth + ip + udp


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=1024)
    p.add_argument("--size", type=int, default=60, help="frame bytes without FCS (>= 42)")
    p.add_argument("--flows", type=int, default=256)
    p.add_argument("--dst-net", default="198.18.1", help="first three octets of the destination")
    p.add_argument("--ipv6", action="store_true", help="IPv6/UDP to 2001:200:0:1::/64")
    p.add_argument("--em-flow", action="store_true", help="only l3fwd's built-in exact-match flow")
    a = p.parse_args()
    if a.size < 42 or a.size > 9000:
        print(f"gen-pcap.py: error: --size {a.size} must be from 42 (headers) to 9000", file=sys.stderr)
        return 2
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(a.count):
            if a.ipv6:
                data = frame6(i, a.size, max(1, a.flows), a.em_flow)
            elif a.em_flow:
                data = frame(0, a.size, 1, a.dst_net)
                data = data[:26] + bytes([198, 18, 1, 1, 198, 18, 1, 0]) + struct.pack("!H", 9) + data[36:]
                ip = data[14:34]
                ip = ip[:10] + b"\0\0" + ip[12:]
                data = data[:24] + struct.pack("!H", checksum(ip)) + data[26:]
            else:
                data = frame(i, a.size, max(1, a.flows), a.dst_net)
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(data), len(data)) + data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
