#!/usr/bin/env python3
"""Benchmarks of Sluice's apps on virtual ports, side by side in one invocation.

l2fwd, pipeline, l3fwd, pktgen, handoff and idle are the benchmarks; see below.

l2fwd: sluice-l2fwd, DPDK's own l2fwd (built from the installed example) and
`dpdk-testpmd --forward-mode=macswap`, each forwarding on the same one lcore from a
net_pcap source (64-byte UDP frames replayed with infinite_rx=1) to a net_null sink.
The apps run alternately, --runs times each, --seconds per run. Each run's figure is the
median of its per-second rates after a 2-second warm-up; the table shows each app's median
over its runs and Sluice's ratio to each reference. The machines are shared and noisy: only
figures from the same invocation are comparable.

pipeline: sluice-l2fwd run to completion on one lcore beside --mode pipeline on two (RX on
one, the stage and TX on the other), same ports and source, alternating, median Mpps each.

l3fwd: sluice-l3fwd and DPDK's own l3fwd (its build copy without the RX checksum offload
request), one forwarding lcore each, a net_pcap source of 64-byte UDP frames (to
198.18.1.0/24 for LPM, the built-in exact-match flow for EM; IPv6 likewise) and a net_null
sink. Both are measured the same way: port 1's opackets read twice over rte_telemetry
(/ethdev/stats), after the warm-up and at the end of the run. One table row per lookup and
family: each app's median over --runs runs, and the median of the runs' ratios. Each run
is a pair, in turn one app first then the other (ABBA; the default 4 runs balance it).

pktgen: transmit-only rate of sluice-pktgen on one lcore into a net_null port beside
`dpdk-testpmd --forward-mode=txonly --txpkts=64` (so pktgen sends 68-byte frames, the same 64
bytes of data), measured alike by telemetry, alternating; then the memif pair pktgen ->
sluice-l3fwd -> pktgen: the zero-loss rate by pktgen's own RFC 2544 search, and rate and
latency at 50% and 90% of it.

handoff: engine/examples/handoff.rs, net_null port 0 -> a relay stage -> net_null port 1 with
--idle off, in three ways: the stage sends each packet itself (off); it hands each to its
instance on a second worker on the same lcore, which sends it (same); or on another lcore
(other). Median Mpps of port 1 per way, alternating, and CPU cycles per packet (TSC rate x
lcores polling / rate): same - off is what a handoff costs a packet, ring push and pop and the
second worker's pass included; other shows what two cores make of it.

impair: sluice-impair with no impairment beside sluice-l2fwd (which rewrites MACs as well),
the same net_pcap source and net_null sink on one lcore, alternating, median Mpps of port 1;
then pktgen -> sluice-impair with 1 ms of delay -> pktgen over memif: the zero-loss rate by
pktgen's RFC 2544 search, a run at it, and the memory the delay holds (the most packets held
at once, 2,176 bytes of pool each) beside the pool sluice-impair sized for its limit.

kv: pktgen --workload kv -> sluice-kv over memif, --sessions of them (default 100,000), 90%
GET, 64-byte values, uniform keys over 1M: the highest request rate with no error, timeout or
unanswered request (and sent within 3% of the rate asked), by bisection from 1M requests/s
with 2 s trials; then a run at half of it for latency (timed from each request's scheduled
time), the share of sluice-kv's polls that had packets, its peak RSS and the handshake rate.

idle: sluice-l2fwd with no traffic at all (two net_null ports with no-rx=1) for --seconds,
with --idle adaptive and with --idle off; CPU time of the process from /proc/PID/stat, as a
percentage of one core.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP_SAMPLES = 2
# How long an app may take to start before its first report, beyond the seconds it runs.
STARTUP_ALLOWANCE = 15


def vdevs(pcap):
    return ["--vdev", f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "--vdev", "net_null0,no-rx=1"]


def eal(prefix, lcores, pcap):
    extra = os.environ.get("SLUICE_EAL_ARGS", "").split()
    return ["-l", lcores, "-m", "256", "--no-pci", "--in-memory", f"--file-prefix={prefix}",
            "--log-level=*:warning", *extra, *vdevs(pcap)]


def sluice_rates(out):
    """Port 1's TX rate from each periodic line of sluice-l2fwd."""
    return [float(m.group(1)) * 1e6 for m in re.finditer(r"port 1: rx [\d.]+ Mpps tx ([\d.]+) Mpps", out)]


def dpdk_l2fwd_rates(out):
    """DPDK l2fwd prints cumulative 'Packets sent' per port once a second: difference them."""
    sent = [int(m.group(1)) for m in re.finditer(r"Statistics for port 1 -+\s*Packets sent:\s+(\d+)", out)]
    return [b - a for a, b in zip(sent, sent[1:])]


def testpmd_rates(out):
    """testpmd's 'Tx-pps' of port 1 in each --stats-period report."""
    rates, port = [], None
    for line in out.splitlines():
        m = re.search(r"NIC statistics for port (\d+)", line)
        if m:
            port = int(m.group(1))
        m = re.search(r"Tx-pps:\s+(\d+)", line)
        if m and port == 1:
            rates.append(int(m.group(1)))
    return rates


def apps(pcap, lcore):
    l2fwd_args = ["--", "-p", "0x3", "-q", "2", "-T", "1"]
    sluice_args = [*l2fwd_args, "--idle", "off"]
    return [
        ("sluice-l2fwd", [f"{ROOT}/target/release/sluice-l2fwd", *eal("sluice-bench", str(lcore), pcap), *sluice_args],
         sluice_rates),
        ("dpdk l2fwd (C)", [f"{ROOT}/target/bench/dpdk-l2fwd/build/l2fwd", *eal("bench-l2fwd", str(lcore), pcap),
                            *l2fwd_args], dpdk_l2fwd_rates),
        # testpmd needs its main lcore beside the forwarding one; it forwards on `lcore`.
        ("dpdk-testpmd macswap", ["dpdk-testpmd", *eal("bench-testpmd", f"{lcore - 1},{lcore}", pcap), "--",
                                  "--forward-mode=macswap", "--nb-cores=1", "--stats-period=1"], testpmd_rates),
    ]


def measure(name, cmd, parse, seconds):
    """An app's median rate over `seconds` of its own per-second reports, the first
    WARMUP_SAMPLES left out. The run lasts until that many reports are out, not a fixed time:
    testpmd takes a second or two to start, and would otherwise report fewer seconds."""
    # testpmd exits when its standard input closes: keep a pipe open for the whole run.
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    lines = []
    reader = threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True)
    reader.start()
    deadline = time.monotonic() + seconds + STARTUP_ALLOWANCE
    while (time.monotonic() < deadline and proc.poll() is None
           and len(parse("".join(lines))) < seconds):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(timeout=10)
    out = "".join(lines)
    for prefix in ("sluice-bench", "bench-l2fwd", "bench-testpmd"):
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
    rates = parse(out)[WARMUP_SAMPLES:]
    if not rates:
        sys.exit(f"bench.py: error: no rate samples from {name}; its output ends with:\n{out[-2000:]}")
    return statistics.median(rates) / 1e6


def in_turn(contenders, r):
    """The order of run `r`: as given, then reversed, and so on (ABBA), so that a machine that
    speeds up or slows down over the invocation favours no contender by going first."""
    return contenders if r % 2 == 0 else contenders[::-1]


def alternate(title, contenders, runs, seconds, rate=measure, label=""):
    """Runs each (name, cmd, how) in turn (`in_turn`), `runs` times, its Mpps given by
    rate(name, cmd, how, seconds) (by default `measure`, where `how` parses the output);
    returns {name: [Mpps per run]}. A None title prints none; `label` heads each run's line."""
    results = {name: [] for name, _, _ in contenders}
    if title:
        print(f"{title}, {runs} runs x {seconds} s, alternating")
    for r in range(runs):
        for name, cmd, how in in_turn(contenders, r):
            mpps = rate(name, cmd, how, seconds)
            results[name].append(mpps)
            print(f"  {label}run {r + 1}: {name:<30} {mpps:7.2f} Mpps", flush=True)
    return results


def table(results, ours):
    medians = {name: statistics.median(v) for name, v in results.items()}
    print()
    print(f"| app | runs (Mpps) | median Mpps | {ours} / app |")
    print("| --- | --- | --- | --- |")
    for name, values in results.items():
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {medians[name]:.2f} | "
              f"{medians[ours] / medians[name]:.2f}x |")


def bench_l2fwd(a, pcap, lcore):
    results = alternate(f"l2fwd: net_pcap (64-byte UDP, infinite_rx) -> net_null, forwarding on lcore {lcore}",
                        apps(pcap, lcore), a.runs, a.seconds)
    table(results, "sluice-l2fwd")


def bench_pipeline(a, pcap, lcore):
    l2fwd = f"{ROOT}/target/release/sluice-l2fwd"
    args = ["--", "-p", "0x3", "-q", "2", "-T", "1", "--idle", "off"]
    contenders = [
        (f"rtc on lcore {lcore}", [l2fwd, *eal("sluice-bench", str(lcore), pcap), *args], sluice_rates),
        (f"pipeline on lcores {lcore - 1},{lcore}",
         [l2fwd, *eal("sluice-bench", f"{lcore - 1},{lcore}", pcap), *args, "--mode", "pipeline"], sluice_rates),
    ]
    results = alternate("pipeline: sluice-l2fwd run to completion vs pipelined, same ports", contenders, a.runs,
                        a.seconds)
    table(results, contenders[0][0])


def telemetry(prefix, command):
    """One rte_telemetry command to the process whose --file-prefix is `prefix`."""
    import json
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2")
        s.recv(4096)
        s.send(command.encode())
        return json.loads(s.recv(1 << 16))


def l3fwd_rate(name, cmd, prefix, seconds, port=1):
    """A port's TX rate between the end of the warm-up and the end of the run, by telemetry."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    try:
        time.sleep(WARMUP_SAMPLES)
        first, t0 = telemetry(prefix, f"/ethdev/stats,{port}")["/ethdev/stats"]["opackets"], time.monotonic()
        time.sleep(seconds - WARMUP_SAMPLES)
        last, t1 = telemetry(prefix, f"/ethdev/stats,{port}")["/ethdev/stats"]["opackets"], time.monotonic()
    except (OSError, KeyError, ValueError) as e:
        proc.kill()
        out, _ = proc.communicate()
        sys.exit(f"bench.py: error: cannot read {name}'s port counters ({e}); its output ends with:\n{out[-2000:]}")
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
    return (last - first) / (t1 - t0) / 1e6


def bench_l3fwd(a, lcore):
    ours = f"{ROOT}/target/release/sluice-l3fwd"
    ref = f"{ROOT}/target/bench/dpdk-l3fwd/build/l3fwd"
    gen = [sys.executable, f"{ROOT}/scripts/gen-pcap.py"]
    rows = [("LPM", "IPv4", "lpm", []), ("LPM", "IPv6", "lpm", ["--ipv6"]),
            ("EM", "IPv4", "em", ["--em-flow"]), ("EM", "IPv6", "em", ["--ipv6", "--em-flow"])]
    config = ["--config", f"(0,0,{lcore}),(1,0,{lcore})"]
    print(f"l3fwd: net_pcap (64-byte UDP, infinite_rx) -> net_null, forwarding on lcore {lcore}, "
          f"{a.runs} runs x {a.seconds} s each, alternating")
    table_rows = []
    for lookup, family, method, gen_flags in rows:
        pcap = f"{ROOT}/target/bench/l3fwd-{method}-{family}.pcap"
        subprocess.run([*gen, pcap, "--count", "1024", "--size", "60", "--dst-net", "198.18.1",
                        *gen_flags], check=True)
        v6 = ["--ipv6"] if family == "IPv6" else []
        contenders = [
            ("sluice-l3fwd", [ours, *eal("bench-sl3", str(lcore), pcap), "--", "-p", "0x3", *config,
                              "--lookup", method, *v6, "--idle", "off"], "bench-sl3"),
            ("dpdk l3fwd (C)", [ref, *eal("bench-l3", str(lcore), pcap), "--", "-p", "0x3", *config,
                                "--lookup", method, *v6, "--parse-ptype"], "bench-l3"),
        ]
        results = alternate(None, contenders, a.runs, a.seconds, rate=l3fwd_rate, label=f"{lookup} {family} ")
        ours_m, ref_m = (statistics.median(results[n]) for n in ("sluice-l3fwd", "dpdk l3fwd (C)"))
        # The two runs of a pair are seconds apart; the machine's drift over the
        # invocation cancels in their ratio, not in the ratio of the medians.
        paired = statistics.median(s / c for s, c in zip(results["sluice-l3fwd"], results["dpdk l3fwd (C)"]))
        table_rows.append(f"| {lookup} | {family} | {ours_m:.2f} | {ref_m:.2f} | {paired:.2f}x |")
    print()
    print("| lookup | family | sluice-l3fwd Mpps | dpdk l3fwd (C) Mpps | ratio (median of the runs' ratios) |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(table_rows))


def bench_pktgen(a, lcore):
    ours = f"{ROOT}/target/release/sluice-pktgen"
    extra = os.environ.get("SLUICE_EAL_ARGS", "").split()

    def null_eal(prefix, lcores):
        return ["-l", lcores, "-m", "256", "--no-pci", "--in-memory", f"--file-prefix={prefix}",
                "--log-level=*:warning", *extra, "--vdev", "net_null0,no-rx=1"]
    # testpmd's --txpkts=64 is 64 bytes of data: a 68-byte frame, so pktgen sends --size 68.
    contenders = [
        ("sluice-pktgen", [ours, *null_eal("bench-pg", str(lcore)), "--", "--rx-port", "none", "--quiet",
                           "--size", "68"], "bench-pg"),
        ("dpdk-testpmd txonly", ["dpdk-testpmd", *null_eal("bench-tp", f"{lcore - 1},{lcore}"), "--",
                                 "--forward-mode=txonly", "--txpkts=64", "--nb-cores=1"], "bench-tp"),
    ]
    results = alternate(f"pktgen: transmit only into net_null on lcore {lcore}", contenders, a.runs, a.seconds,
                        rate=lambda name, cmd, prefix, seconds: l3fwd_rate(name, cmd, prefix, seconds, port=0))
    table(results, "sluice-pktgen")
    print()
    memif_pair(a, lcore)


def memif_pair(a, lcore):
    """pktgen (memif server, lcore - 1) -> sluice-l3fwd (client, lcore) -> pktgen: the zero-loss
    rate by pktgen's RFC 2544 search, then rate and latency at 50% and 90% of it."""
    l3fwd = f"{ROOT}/target/release/sluice-l3fwd"
    pair = MemifPair(lcore, lambda eal: [l3fwd, *eal, "--", "-p", "0x3", "--config",
                                         f"(0,0,{lcore}),(1,0,{lcore})", "--idle", "off"])
    print(f"pktgen -> sluice-l3fwd -> pktgen over memif: pktgen on lcore {lcore - 1}, l3fwd on lcore {lcore}, "
          "64-byte UDP to 198.18.1.0/24")
    ndr = pair.zero_loss_rate()
    print(f"  zero-loss rate (RFC 2544, 2 s trials, 2% resolution): {ndr:.3f} Mpps")
    rows = []
    for share in (50, 90):
        j, _ = pair.run(["--rate", f"{int(ndr * 1e6 * share / 100)}pps", "--duration", str(a.seconds)])
        lat = j["total"]["latency_us"] or {}
        rows.append(f"| {share}% | {j['tx'][0]['mpps']:.3f} | {j['rx'][0]['mpps']:.3f} | {j['total']['loss_pct']:.4f}% "
                    f"| {lat.get('p50', 0):.1f} | {lat.get('p99', 0):.1f} |")
        print(f"  {share}% of it: {rows[-1]}", flush=True)
    pair.close()
    print()
    print(f"zero-loss rate: {ndr:.3f} Mpps")
    print("| load | tx Mpps | rx Mpps | loss | latency p50 us | latency p99 us |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


class MemifPair:
    """pktgen (memif server, lcore - 1) -> a forwarder (memif client, lcore) -> pktgen."""

    def __init__(self, lcore, forwarder):
        import tempfile
        self.lcore, self.forwarder = lcore, forwarder
        self.extra = os.environ.get("SLUICE_EAL_ARGS", "").split()
        self.work = tempfile.mkdtemp(prefix="sluice-bench-")
        self.socks = [f"{self.work}/m0.sock", f"{self.work}/m1.sock"]

    def eal(self, prefix, lcores, role):
        args = ["-l", lcores, "-m", "256", "--no-pci", f"--file-prefix={prefix}", "--huge-unlink",
                "--log-level=*:warning", *self.extra]
        for i, s in enumerate(self.socks):
            args += ["--vdev", f"net_memif{i},role={role},socket={s}"]
        return args

    def run(self, pktgen_args):
        """One pktgen run with the forwarder beside it: pktgen's JSON and the forwarder's output."""
        import json
        pktgen = f"{ROOT}/target/release/sluice-pktgen"
        report = f"{self.work}/run.json"
        gen = subprocess.Popen([pktgen, *self.eal("bench-pgm", str(self.lcore - 1), "server"), "--",
                                "--tx-port", "0", "--rx-port", "1", "--quiet", "--size", "64", *pktgen_args,
                                "--json", report],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        seen, head = 0, ""
        while seen < 2:
            line = gen.stdout.readline()
            if not line:
                break
            head += line
            seen += line.count("net_memif")
        fwd = subprocess.Popen(self.forwarder(self.eal("bench-fwm", str(self.lcore), "client")),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace")
        out = head + gen.stdout.read()
        gen.wait()
        fwd.send_signal(signal.SIGINT)
        fwd_out, _ = fwd.communicate(timeout=60)
        if gen.returncode != 0:
            sys.exit(f"bench.py: error: sluice-pktgen failed:\n{out[-2000:]}")
        with open(report) as f:
            return json.load(f), fwd_out

    def zero_loss_rate(self):
        """pktgen's RFC 2544 search, 2 s trials, 2% resolution; Mpps."""
        j, _ = self.run(["--rfc2544", "--trial", "2", "--resolution", "2"])
        return j["rfc2544"][0]["zero_loss_mpps"]

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)


def bench_kv(a, lcore):
    """pktgen --workload kv (memif server, lcore - 1) -> sluice-kv (lcore): the highest request
    rate with no error, timeout or unanswered request, by bisection; then a run at half of it."""
    import json
    import tempfile
    pktgen, kv = f"{ROOT}/target/release/sluice-pktgen", f"{ROOT}/target/release/sluice-kv"
    extra = os.environ.get("SLUICE_EAL_ARGS", "").split()
    work = tempfile.mkdtemp(prefix="sluice-bench-")
    sock = f"{work}/kv.sock"
    sessions = a.sessions

    def eal_for(prefix, lcores, role, hugepages=512):
        return ["-l", lcores, "-m", str(hugepages), "--no-pci", f"--file-prefix={prefix}", "--huge-unlink",
                "--log-level=*:warning", *extra, "--vdev", f"net_memif0,role={role},socket={sock},rsize=14"]

    # The benchmark's appliance lets handshakes through as fast as pktgen opens sessions; the
    # flood runs keep sluice-kv's guard as it ships.
    open_guard = ["--handshake-share", "1", "--guard-rate", "1000000000", "--guard-burst", "1000000",
                  "--guard-sources", str(4 * sessions)]

    def control(path, command):
        import socket
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(5)
                c.connect(path)
                c.sendall(f"{command}\n".encode())
                reply = b""
                while not reply.endswith(b"ok\n") and b"error" not in reply:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
                return reply.decode(errors="replace")
        except OSError:
            return ""

    def run(rate, seconds, n=sessions, handshakes=100000, pg_extra=(), kv_extra=None, get_ratio=0.9,
            memory="1G", hugepages=128, pg_hugepages=512):
        report = f"{work}/kv.json"
        gen = subprocess.Popen([pktgen, *eal_for("bench-pgkv", str(lcore - 1), "server", pg_hugepages), "--",
                                "--workload", "kv",
                                "--server", "10.0.0.1", "--sessions", str(n), "--handshake-rate", str(handshakes),
                                "--rate", f"{int(rate)}pps", "--duration", str(seconds), "--get-ratio", str(get_ratio),
                                "--keys", "1000000", "--value-size", "64", "--json", report, *pg_extra],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        head = ""
        while "net_memif" not in head:
            line = gen.stdout.readline()
            if not line:
                break
            head += line
        server = subprocess.Popen([kv, *eal_for("bench-kv", str(lcore), "client", hugepages), "--",
                                   "--addr", "10.0.0.1/8", "--idle", "off", "--sessions-max", str(n), "--memory", memory,
                                   *(open_guard if kv_extra is None else kv_extra), "--stats-period", "1",
                                   "--control", f"{work}/control.sock"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace")
        out = head + gen.stdout.read()
        gen.wait()
        # Its peak resident memory: the process's own pages and the hugepages it maps (the
        # store's among them), which RSS leaves out.
        with open(f"/proc/{server.pid}/status") as f:
            status = f.read()
        rss = sum(int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) * 1024
                  for field in ("VmHWM", "HugetlbPages"))
        time.sleep(1.1)  # the stage publishes its figures once a second
        j_stats = control(f"{work}/control.sock", "stats")
        server.send_signal(signal.SIGINT)
        account, _ = server.communicate(timeout=60)
        if gen.returncode != 0:
            sys.exit(f"bench.py: error: sluice-pktgen failed:\n{out[-2000:]}")
        with open(report) as f:
            j = json.load(f)
        j["account"] = account
        j["appliance"] = dict((k, int(v)) for k, v in re.findall(r"^(\w+) (\d+)$", j_stats, re.M))
        # The share of the appliance's cycles at work, second by second: the seconds of
        # requests are the busiest (the median of the busiest `seconds - 1` of them).
        shares = sorted((float(x) for x in re.findall(r"lcore \d+: (\d+)% at work", account)), reverse=True)
        top = shares[:max(1, seconds - 1)]
        at_work = top[len(top) // 2] if top else float("nan")
        return j, rss, at_work

    parts = set(a.parts.split(","))
    unknown = parts - {"rate", "flood", "memory", "handshakes"}
    if unknown:
        sys.exit(f"bench.py: error: unknown --parts {','.join(sorted(unknown))}: "
                 "expected rate, flood, memory or handshakes")
    if "rate" in parts:
        bench_kv_rate(a, lcore, run, sessions)
    if "flood" in parts:
        bench_kv_flood(a, run)
    if "memory" in parts:
        bench_kv_memory(run)
    if "handshakes" in parts:
        bench_kv_handshakes(run)
    shutil.rmtree(work, ignore_errors=True)


def bench_kv_rate(a, lcore, run, sessions):
    """The highest request rate with no error, timeout or unanswered request, sent on
    schedule (99% of the rate asked: requests that wait for a server that fell behind are not
    sent), by bisection; then runs at it and at half of it."""
    def clean(j):
        r = j["requests"]
        return (not j["errors"] and r["timeouts"] == 0 and r["unmatched"] == 0 and r["sent"] > 0
                and r["answered"] == r["sent"] and r["sent_per_second"] >= 0.99 * r["asked_per_second"])

    print(f"kv: pktgen --workload kv (lcore {lcore - 1}) -> sluice-kv (lcore {lcore}) over memif, {sessions} sessions, "
          "90% GET, 64-byte values, uniform keys over 1M")
    low, high = 0.0, 4e6
    for trial in range(7):
        rate = 1e6 if trial == 0 else (low + high) / 2
        # Trials as long as the runs: a server slower than the rate falls behind by a little
        # a second, which a short trial's sessions can absorb.
        j, _, _ = run(rate, a.seconds)
        ok = clean(j)
        r = j["requests"]
        print(f"  {rate / 1e6:.3f} M requests/s asked: sent {r['sent_per_second'] / 1e6:.3f} M/s, "
              f"answered {r['answered']} of {r['sent']}, timeouts {r['timeouts']}, unmatched {r['unmatched']}, "
              f"errors {j['errors']}, sessions {j['sessions']['open']}: "
              f"{'clean' if ok else 'not clean'}", flush=True)
        if ok:
            low = rate
        else:
            high = rate
    if not low:
        sys.exit("bench.py: error: no rate was clean")
    print()
    print(f"highest rate with no error, timeout or unanswered request: {low / 1e6:.3f} M requests/s")
    print("| load | requests/s | errors and timeouts | p50 us | p90 us | p99 us | p99.9 us | pktgen paused | cycles at work "
          "| sluice-kv RSS and hugepages | sessions | handshakes/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for load in (1.0, 0.5):
        j, rss, at_work = run(low * load, a.seconds)
        lat, hs, r = j["latency_us"] or {}, j["sessions"], j["requests"]
        print(f"| {load:.0%} | {r['answered_per_second'] / 1e6:.3f} M | {sum(j['errors'].values()) + r['timeouts']} "
              f"| {lat.get('p50', 0):.1f} | {lat.get('p90', 0):.1f} | {lat.get('p99', 0):.1f} | {lat.get('p99_9', 0):.1f} "
              f"| {j['generator_pauses']['ms'] / r['seconds'] / 10:.2f}% | {at_work:.0f}% | {rss / 2**20:.0f} MiB | {hs['open']} | {hs['per_second']:.0f} |", flush=True)


def bench_kv_flood(a, run):
    """A spoofed HELLO flood at 10x the requests, against the guard as it ships (whose
    handshake budget opens the sessions slowly: 1,000 of them at 400 a second)."""
    legit, flood, n = 50000, 500000, 1000
    print()
    print(f"HELLO flood: {n} sessions sending {legit} requests/s, then the same with {flood} spoofed HELLOs/s "
          "from 198.18.0.0/15; sluice-kv with its default guard")
    rows = []
    for flood_args in ([], ["--flood", f"hello:{flood}"]):
        j, _, _ = run(legit, a.seconds, n=n, handshakes=400, pg_extra=flood_args, kv_extra=[])
        # The final account's figures: the last of each name (the report lines come first).
        acc = j["account"]
        count = lambda name: int(([0] + re.findall(rf"{name} (\d+)", acc))[-1])
        rows.append((j, count("guard_handshakes"), count("kv_welcome"), count("guard_evicted")))
    base = rows[0][0]["requests"]["answered_per_second"]
    print("| flood HELLOs/s | answered requests/s | goodput kept | p50 us | p99 us | p99.9 us | timeouts "
          "| flood answered | bytes back / sent | guard drops | sessions made | guard evictions |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for j, dropped, welcomes, evicted in rows:
        r, lat, f = j["requests"], j["latency_us"] or {}, j["flood"]
        ratio = f["bytes_answered"] / f["bytes_sent"] if f["bytes_sent"] else 0.0
        print(f"| {f['sent_per_second']:.0f} | {r['answered_per_second']:.0f} | {r['answered_per_second'] / base:.3f} "
              f"| {lat.get('p50', 0):.1f} | {lat.get('p99', 0):.1f} | {lat.get('p99_9', 0):.1f} | {r['timeouts']} "
              f"| {f['answers']} | {ratio:.3f} | {dropped} | {welcomes} | {evicted} |")


def bench_kv_handshakes(run):
    """New sessions a second: pktgen opens 500,000 sessions with 550,000 HELLOs a second asked
    (each session two round trips: HELLO, RETRY, HELLO with its cookie, WELCOME), the guard
    open as in the rate runs."""
    n, asked = 500000, 550000
    print()
    print(f"handshakes: {n} sessions opened by pktgen, {asked} HELLOs a second asked")
    print("| sessions opened | new sessions a second | HELLOs sent again | HELLOs that found no room |")
    print("| --- | --- | --- | --- |")
    j, _, _ = run(1000, 1, n=n, handshakes=asked)
    hs = j["sessions"]
    print(f"| {hs['open']} | {hs['per_second']:.0f} | {hs['hellos_again']} | {hs['hellos_not_sent']} |")


def bench_kv_memory(run):
    """1M sessions, then 1M sessions and 1M keys (PUTs only, 5 a key on average, which leave
    99% of the keys stored), against 1,000 sessions: sluice-kv's peak RSS plus the hugepages
    it maps, and what a session adds. Sessions open at 50,000 a second."""
    print()
    print("memory: sluice-kv's peak RSS and hugepages, with its store of 1.3 GB (1M slots) in hugepages")
    guard = ["--handshake-share", "1", "--guard-rate", "1000000000", "--guard-burst", "1000000"]
    mib = 2**20
    results = []
    for n, get_ratio, seconds, rate in ((1000, 1.0, 2, 100000), (1000000, 1.0, 2, 100000),
                                        (1000000, 0.0, 10, 500000)):
        j, rss, _ = run(rate, seconds, n=n, handshakes=50000, kv_extra=guard, get_ratio=get_ratio, memory="1300M",
                        pg_hugepages=256)
        results.append((n, j["sessions"]["open"], j["appliance"].get("keys", 0), rss))
    print("| sessions open | keys stored | sluice-kv RSS and hugepages |")
    print("| --- | --- | --- |")
    for _, open_, keys, rss in results:
        print(f"| {open_} | {keys} | {rss / mib:.0f} MiB ({rss / 2**30:.2f} GiB) |")
    (_, open0, _, rss0), (_, open1, _, rss1) = results[0], results[1]
    if open1 > open0:
        print(f"bytes a session: {(rss1 - rss0) / (open1 - open0):.0f}")


def bench_impair(a, pcap, lcore):
    impair = f"{ROOT}/target/release/sluice-impair"
    contenders = [
        ("sluice-impair (no impairment)", [impair, *eal("sluice-bench", str(lcore), pcap), "--", "--ports", "0,1"],
         sluice_rates),
        ("sluice-l2fwd", [f"{ROOT}/target/release/sluice-l2fwd", *eal("sluice-bench", str(lcore), pcap),
                          "--", "-p", "0x3", "-q", "2", "-T", "1", "--idle", "off"], sluice_rates),
    ]
    results = alternate(f"impair: net_pcap (64-byte UDP, infinite_rx) -> net_null, on lcore {lcore}",
                        contenders, a.runs, a.seconds)
    table(results, "sluice-impair (no impairment)")
    print()
    netem = "delay 1ms limit 100000"
    pair = MemifPair(lcore, lambda eal: [impair, *eal, "--", "--a-to-b", netem])
    print(f"pktgen -> sluice-impair '{netem}' -> pktgen over memif: pktgen on lcore {lcore - 1}, "
          f"sluice-impair on lcore {lcore}, 64-byte frames")
    ndr = pair.zero_loss_rate()
    j, out = pair.run(["--rate", f"{int(ndr * 1e6)}pps", "--duration", str(a.seconds)])
    pair.close()
    held = max([int(h) for h in re.findall(r"held (\d+)", out)] or [0])
    pool = re.search(r"mbufs in use: \d+ of (\d+)", out)
    mbufs = int(pool.group(1)) if pool else 0
    lat = j["total"]["latency_us"] or {}
    print()
    print("| delay | zero-loss Mpps | at it: loss | latency p50 us | p99 us | most held | memory held | pool |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| 1 ms | {ndr:.3f} | {j['total']['loss_pct']:.4f}% | {lat.get('p50', 0):.1f} | {lat.get('p99', 0):.1f} "
          f"| {held} | {held * 2176 / 2**20:.0f} MiB | {mbufs} mbufs, {mbufs * 2176 / 2**20:.0f} MiB |")


def bench_handoff(a, lcore):
    binary = f"{ROOT}/target/release/examples/handoff"
    extra = os.environ.get("SLUICE_EAL_ARGS", "").split()
    tsc = {}

    def rates(out):
        m = re.search(r"tsc_hz (\d+)", out)
        if m:
            tsc["hz"] = int(m.group(1))
        return sluice_rates(out)

    def cmd(way):
        return [binary, "-l", f"{lcore - 1},{lcore}", "-m", "256", "--no-pci", "--in-memory",
                "--file-prefix=sluice-bench", "--log-level=*:warning", *extra,
                "--vdev", "net_null0", "--vdev", "net_null1,no-rx=1", "--", "--handoff", way]

    ways = [("off", 1), ("same", 1), ("other", 2)]
    contenders = [(f"handoff {way}", cmd(way), rates) for way, _ in ways]
    results = alternate(f"handoff: net_null -> relay stage -> net_null, worker lcore {lcore}", contenders,
                        a.runs, a.seconds)
    hz = tsc.get("hz")
    cycles = {}
    print()
    print("| way | lcores | runs (Mpps) | median Mpps | cycles per packet |")
    print("| --- | --- | --- | --- | --- |")
    for (name, values), (_, lcores) in zip(results.items(), ways):
        mpps = statistics.median(values)
        cycles[name] = lcores * hz / (mpps * 1e6) if hz else float("nan")
        print(f"| {name} | {lcores} | {', '.join(f'{v:.2f}' for v in values)} | {mpps:.2f} | "
              f"{cycles[name]:.1f} |")
    print(f"\na handoff costs {cycles['handoff same'] - cycles['handoff off']:.1f} cycles per packet "
          f"(same - off, TSC at {hz / 1e9 if hz else float('nan'):.2f} GHz)")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_idle(a, lcore):
    l2fwd = f"{ROOT}/target/release/sluice-l2fwd"
    print(f"idle: sluice-l2fwd on lcore {lcore} with no traffic (net_null, no-rx=1), CPU over {a.seconds} s")
    for policy in ("adaptive", "off"):
        cmd = [l2fwd, "-l", str(lcore), "-m", "256", "--in-memory", "--log-level=*:warning",
               *os.environ.get("SLUICE_EAL_ARGS", "").split(),
               "--vdev", "net_null0,no-rx=1", "--vdev", "net_null1,no-rx=1",
               "--", "-p", "0x3", "-q", "2", "-T", "0", "--idle", policy]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)  # start-up and the idle policy's own ramp
        before, start = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(a.seconds)
        used, wall = cpu_seconds(proc.pid) - before, time.monotonic() - start
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        print(f"| --idle {policy} | {100 * used / wall:.1f}% of a core |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmark", choices=["l2fwd", "l3fwd", "pipeline", "idle", "pktgen", "handoff", "impair", "kv"])
    p.add_argument("--sessions", type=int, default=100000, help="kv: sessions (default 100000)")
    p.add_argument("--parts", default="rate,flood,memory,handshakes",
                   help="kv: which parts, comma-separated (default rate,flood,memory,handshakes)")
    p.add_argument("--runs", type=int, default=None, help="per contender (default 3; l3fwd: 4)")
    p.add_argument("--seconds", type=int, default=None, help="per run (default 8; idle: 10)")
    a = p.parse_args()
    a.seconds = a.seconds or (10 if a.benchmark == "idle" else 8)
    a.runs = a.runs or (4 if a.benchmark == "l3fwd" else 3)
    if a.seconds < WARMUP_SAMPLES + 2:
        sys.exit(f"bench.py: error: --seconds must be at least {WARMUP_SAMPLES + 2}")
    lcore = (os.cpu_count() or 2) - 1
    if lcore < 1:
        sys.exit("bench.py: error: needs at least 2 CPUs (a main lcore and a forwarding lcore)")
    if a.benchmark == "idle":
        bench_idle(a, lcore)
        return 0
    if a.benchmark == "l3fwd":
        os.makedirs(f"{ROOT}/target/bench", exist_ok=True)
        bench_l3fwd(a, lcore)
        return 0
    if a.benchmark == "pktgen":
        bench_pktgen(a, lcore)
        return 0
    if a.benchmark == "handoff":
        bench_handoff(a, lcore)
        return 0
    if a.benchmark == "kv":
        bench_kv(a, lcore)
        return 0
    os.makedirs(f"{ROOT}/target/bench", exist_ok=True)
    pcap = f"{ROOT}/target/bench/udp64.pcap"
    subprocess.run([sys.executable, f"{ROOT}/scripts/gen-pcap.py", pcap, "--count", "1024", "--size", "60"],
                   check=True)
    if a.benchmark == "l2fwd":
        bench_l2fwd(a, pcap, lcore)
    elif a.benchmark == "impair":
        bench_impair(a, pcap, lcore)
    else:
        bench_pipeline(a, pcap, lcore)
    return 0


if __name__ == "__main__":
    sys.exit(main())
