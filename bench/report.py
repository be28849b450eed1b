#!/usr/bin/python3
"""report.py - the side-by-side table from relay_vs_coturn.sh's results.jsonl.

Every line is one tsunagu-turnload phase, labelled "SERVER|LEVEL...". Runs of
the same level and server are reduced to median (min-max); the ratio column is
tsunagu's median over coturn's. `--half-lossless SERVER FILE` prints half of
that server's median lossless rate in messages/s (the latency level).

Kernel crossings (issue 16): one crossing is one datagram the server process
receives or sends through the kernel (a recvmmsg of 8 is 8 crossings). Per
delivered message, in pair mode tsunagu's hand-over takes 1 receive + 1 send
(2), coturn relays through the other allocation's relayed socket (2 receives +
2 sends = 4); in peer mode both servers take 4 (client -> relayed socket ->
peer, peer -> relayed socket -> client); the echo takes 2 per echoed packet.
µs per crossing = server CPU / (messages received x crossings per message).
The echo floor of a level is the batched echo at the same datagram rate as
tsunagu: N sockets x 50 msgs/s for pair, x 100 for peer (docs/performance.md).
"""
import json
import statistics
import sys

NAMES = {"relay": "tsunagu", "coturn": "coturn", "echo1": "echo (1/syscall)",
         "echo64": "echo (mmsg 64)"}
# kernel crossings per delivered message (see above); relayed packets = 2 x messages
CROSSINGS = {("relay", "fixed"): 2, ("coturn", "fixed"): 4, ("relay", "peer"): 4,
             ("coturn", "peer"): 4}


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    return rows


def runs(rows):
    """Group lines into runs: (server, level) -> list of runs (each a list of phases)."""
    out = {}
    for r in rows:
        srv, _, level = r.get("label", "?|?").partition("|")
        if r.get("failed"):
            out.setdefault((srv, level), []).append([])
            continue
        lst = out.setdefault((srv, level), [])
        if r.get("step", 0) == 0 or not lst or not lst[-1]:
            lst.append([r])
        else:
            lst[-1].append(r)
    return out


def lossless(run, max_loss=0.001):
    """Highest offered rate (msgs/s) whose loss stayed under max_loss, and that phase."""
    best = None
    for i, ph in enumerate(run):
        if ph.get("offered_rate", 0) == 0:
            break
        if ph.get("loss", 1) >= max_loss:
            # turnload repeats a lossy step (--retries): only the last try counts
            if i + 1 < len(run) and run[i + 1].get("offered_rate") == ph.get("offered_rate"):
                continue
            break
        best = ph
    return best


def stat(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return (statistics.median(vals), min(vals), max(vals), len(vals))


def fmt(s, digits=1):
    if s is None:
        return "-"
    med, lo, hi, n = s
    f = "%%.%df" % digits
    if n == 1 or lo == hi:
        return f % med
    return (f + " (" + f + "–" + f + ")") % (med, lo, hi)


def ratio(a, b, digits=2):
    if a is None or b is None or not b[0]:
        return "-"
    return ("%%.%df" % digits) % (a[0] / b[0])


def main():
    args = sys.argv[1:]
    if args and args[0] == "--half-lossless":
        g = runs(load(args[2]))
        vals = [lossless(r) for (s, lv), rs in g.items() if s == args[1]
                and lv.startswith("lossless|") for r in rs]
        vals = [v["offered_rate"] for v in vals if v]
        print(int(statistics.median(vals) / 2) if vals else 0)
        return
    g = runs(load(args[0]))
    servers = [s for s in ("relay", "coturn") if any(k[0] == s for k in g)]
    levels = []
    for (s, lv) in g:
        if lv not in levels:
            levels.append(lv)

    def metric(srv, lv, fn):
        vals = []
        for r in g.get((srv, lv), []):
            if not r:
                continue
            try:
                vals.append(fn(r))
            except (KeyError, TypeError, ZeroDivisionError):
                pass
        return stat(vals)

    lines = []
    both = servers == ["relay", "coturn"]
    head = "| measure | " + " | ".join(NAMES[s] + " median (min–max)" for s in servers)
    if both:
        head += " | tsunagu/coturn | issue 5 target"
    lines.append(head + " |")
    lines.append("|" + " --- |" * (head.count("|")))

    def row(name, fn, digits=1, target=None):
        """target: (text, test on the ratio of medians, or on tsunagu's median if own=True)"""
        for lv in levels_matching:
            vals = [metric(s, lv, fn) for s in servers]
            if all(v is None for v in vals):
                continue
            cells = [fmt(v, digits) for v in vals]
            if both:
                cells.append(ratio(vals[0], vals[1]))
                t = ""
                if target and vals[0] is not None:
                    text, test, own = target
                    x = vals[0][0] if own else (vals[0][0] / vals[1][0]
                                                if vals[1] is not None and vals[1][0] else None)
                    if x is not None:
                        t = "%s: %s" % (text, "met" if test(x) else "NOT met")
                cells.append(t)
            lines.append("| %s | %s |" % (name(lv), " | ".join(cells)))

    levels_matching = [lv for lv in levels if lv.startswith("fixed|")]

    def fixed_name(lv):
        _, size, send, n = lv.split("|")
        return "µs server CPU / relayed pkt: %s B, %s, %s allocs x 50 msg/s" % (size, send, n)
    row(fixed_name, lambda r: r[0]["server_us_per_pkt"], 2, ("≤ 1/3", lambda x: x <= 1 / 3, False))
    row(lambda lv: "loss at " + lv.replace("fixed|", "").replace("|", " "),
        lambda r: r[0]["loss"] * 100, 3)
    levels_matching = [lv for lv in levels if lv.startswith("fixed|") and lv.endswith("|1000")]
    row(lambda lv: "peak RSS KB per 1000 allocations (%s)" % lv.split("|", 1)[1].replace("|", " "),
        lambda r: r[0]["server_kb_per_1000_alloc"], 0, ("≤ 1/4", lambda x: x <= 0.25, False))
    levels_matching = [lv for lv in levels if lv.startswith("peer|")]
    row(lambda lv: "UDP peer mode: µs server CPU / relayed pkt: %s B, %s, %s allocs x 50 msg/s"
        % tuple(lv.split("|")[1:]), lambda r: r[0]["server_us_per_pkt"], 2)
    row(lambda lv: "UDP peer mode: loss %% at %s B, %s allocs" % (lv.split("|")[1], lv.split("|")[3]),
        lambda r: r[0]["loss"] * 100, 3)
    levels_matching = [lv for lv in levels if lv.startswith("lossless|170|channel")]
    row(lambda lv: "lossless throughput, relayed pkt/s (loss < 0.1%, 10 allocs, 170 B)",
        lambda r: 2 * lossless(r)["offered_rate"], 0, ("≥ 2x", lambda x: x >= 2, False))
    row(lambda lv: "load generator's own CPU at that rate (fraction of its core)",
        lambda r: lossless(r)["gen_cpu_frac"], 2)
    row(lambda lv: "µs server CPU / pkt at that rate",
        lambda r: lossless(r)["server_us_per_pkt"], 2)
    levels_matching = [lv for lv in levels if lv.startswith("latency|")]
    row(lambda lv: "one-way latency p50 µs at %s msgs/s (half coturn's lossless)" % lv.split("|")[-1],
        lambda r: r[0]["lat_p50_us"], 0)
    row(lambda lv: "one-way latency p99 µs at %s msgs/s" % lv.split("|")[-1],
        lambda r: r[0]["lat_p99_us"], 0, ("below coturn", lambda x: x < 1, False))
    levels_matching = [lv for lv in levels if lv.startswith("flood|")]
    row(lambda lv: "flood %s B: relayed pkt/s" % lv.split("|")[1], lambda r: r[0]["relayed_pps"], 0)
    row(lambda lv: "flood %s B: loss %%" % lv.split("|")[1], lambda r: r[0]["loss"] * 100, 1)
    row(lambda lv: "flood %s B: µs server CPU / pkt" % lv.split("|")[1],
        lambda r: r[0]["server_us_per_pkt"], 2)
    for tr, name in (("tcp", "TCP"), ("tls", "TLS")):
        levels_matching = [lv for lv in levels if lv.startswith(tr + "fixed|")]
        row(lambda lv, name=name: "%s clients: µs server CPU / relayed pkt, 170 B, channel, "
            "%s allocs x 50 msg/s" % (name, lv.split("|")[3]),
            lambda r: r[0]["server_us_per_pkt"], 2)
        row(lambda lv, name=name: "%s clients: loss %% at %s allocs" % (name, lv.split("|")[3]),
            lambda r: r[0]["loss"] * 100, 3)
        levels_matching = [lv for lv in levels if lv.startswith(tr + "flood|")]
        row(lambda lv, name=name: "%s clients, flood: relayed pkt/s" % name,
            lambda r: r[0]["relayed_pps"], 0)
        row(lambda lv, name=name: "%s clients, flood: loss %%" % name,
            lambda r: r[0]["loss"] * 100, 1)
        row(lambda lv, name=name: "%s clients, flood: µs server CPU / pkt" % name,
            lambda r: r[0]["server_us_per_pkt"], 2)
    levels_matching = [lv for lv in levels if lv == "allocrate"]
    row(lambda lv: "Allocate+Refresh(0) cycles/s (32 in flight)", lambda r: r[0]["cycles_per_s"], 0,
        ("≥ 2x", lambda x: x >= 2, False))
    row(lambda lv: "µs server CPU / cycle", lambda r: r[0]["server_us_per_cycle"], 0)
    levels_matching = [lv for lv in levels if lv.startswith("cycles|")]
    row(lambda lv: "RSS MB before %s cycles" % lv.split("|")[1],
        lambda r: r[0]["server_rss_start_kb"] / 1024, 1)
    row(lambda lv: "RSS MB after %s cycles" % lv.split("|")[1],
        lambda r: r[0]["server_rss_kb"] / 1024, 1)
    row(lambda lv: "RSS after / before %s cycles" % lv.split("|")[1],
        lambda r: r[0]["server_rss_kb"] / r[0]["server_rss_start_kb"], 2,
        ("≤ 1.10 (tsunagu's own)", lambda x: x <= 1.10, True))
    print("\n".join(lines))

    # the floor at fixed loads: the bare echo at the same packets/s on the same core
    fl = []
    for lv in sorted({k[1] for k in g if k[1].startswith("fixed|170|raw|")},
                     key=lambda x: int(x.split("|")[-1])):
        n = lv.split("|")[-1]
        cells = []
        for e in ("echo1", "echo64"):
            rs = [r for r in g.get((e, lv), []) if r]
            cells.append(fmt(stat([r[0].get("server_us_per_pkt") for r in rs]), 2))
        fl.append("| %s | %s |" % ("%s sockets x 100 msg/s (= %s allocations x 50)" % (n, n),
                                   " | ".join(cells)))
    if fl:
        print("\n| the floor: UDP echo at the same packet rate | echo (1/syscall) µs CPU / pkt "
              "| echo (mmsg 64) µs CPU / pkt |\n| --- | --- | --- |")
        print("\n".join(fl))

    # per kernel crossing, next to the echo floor at tsunagu's datagram rate (issue 16)
    def per_crossing(srv, lv):
        kind = lv.split("|")[0]
        k = CROSSINGS.get((srv, kind))
        return metric(srv, lv, lambda r: r[0]["server_us_per_pkt"] * 2 / k) if k else None

    def floor_of(lv):
        """the batched echo's µs per crossing at tsunagu's datagram rate for this level"""
        kind, size, _, n = lv.split("|")
        per = 50 if kind == "fixed" else 100
        cands = ["floor|%s|%d|%s" % (size, per, n)]
        if per == 100 and size == "170":
            cands.append("fixed|170|raw|%s" % n)
        for c in cands:
            st = metric("echo64", c, lambda r: r[0]["server_us_per_pkt"] / 2)
            if st:
                return st
        return None

    xl = []
    CROSS_RATIO[:] = []
    for lv in ([lv for lv in levels if lv.startswith("fixed|") and "|raw|" not in lv] +
               [lv for lv in levels if lv.startswith("peer|")]):
        t = per_crossing("relay", lv)
        c = per_crossing("coturn", lv)
        f = floor_of(lv)
        if t is None and c is None:
            continue
        kind, size, send, n = lv.split("|")
        CROSS_RATIO.append((lv, t, f))
        xl.append("| %s, %s B, %s, %s allocs x 50 msg/s | %s | %s | %s | %s | %s |" % (
            "pair" if kind == "fixed" else "peer", size, send, n,
            fmt(t, 2), fmt(c, 2), fmt(f, 2), ratio(t, f), ratio(c, f)))
    if xl:
        print("\n| UDP fixed level (per kernel crossing: a datagram the server receives or sends) "
              "| tsunagu µs / crossing | coturn µs / crossing | echo floor µs / crossing (at "
              "tsunagu's datagram rate) | tsunagu / echo | coturn / echo |\n| --- | --- | --- | --- | --- | --- |")
        print("\n".join(xl))

    # the physical reference, measured in the same run
    ref = []
    for e in ("echo1", "echo64"):
        rs = g.get((e, "lossless|170|raw|10"), [])
        lo = stat([lossless(r)["offered_rate"] for r in rs if r and lossless(r)])
        us = stat([lossless(r)["server_us_per_pkt"] for r in rs if r and lossless(r)])
        # first step (lowest load): the direct loopback round trip, the latency floor
        p50 = stat([r[0]["lat_p50_us"] for r in rs if r])
        p99 = stat([r[0]["lat_p99_us"] for r in rs if r])
        gen = stat([lossless(r)["gen_cpu_frac"] for r in rs if r and lossless(r)])
        if lo:
            ref.append("| %s | %s | %s | %s / %s | %s |" % (NAMES[e], fmt(lo, 0), fmt(us, 2),
                                                           fmt(p50, 0), fmt(p99, 0), fmt(gen, 2)))
    if ref:
        print("\n| UDP echo on the same core | lossless echoed pkt/s | µs CPU / pkt "
              "| round trip p50 / p99 µs at 20k/s | generator CPU at that rate |"
              "\n| --- | --- | --- | --- | --- |")
        print("\n".join(ref))

    # issue 5: tsunagu's lossless rate within 2x of the batched echo's, same run
    relay_ll = stat([2 * lossless(r)["offered_rate"] for r in g.get(("relay", "lossless|170|channel|10"), [])
                     if r and lossless(r)])
    echo_ll = stat([lossless(r)["offered_rate"] for r in g.get(("echo64", "lossless|170|raw|10"), [])
                    if r and lossless(r)])
    if relay_ll and echo_ll:
        x = relay_ll[0] / echo_ll[0]
        print("\ntsunagu lossless relayed pkt/s / batched echo lossless pkt/s = %.2f "
              "(issue 5 target ≥ 0.5: %s)" % (x, "met" if x >= 0.5 else "NOT met"))

    targets(g, metric)

    # noise: other processes' CPU during the measured phases
    other = [r.get("other_cpu_ms", 0) / max(r.get("duration_s", 1), 0.001) / 10
             for rr in g.values() for run in rr for r in run if "other_cpu_ms" in r]
    gen = [r.get("gen_cpu_frac", 0) * 100 for rr in g.values() for run in rr for r in run
           if "gen_cpu_frac" in r]
    if other:
        print("\nnoise: other processes used %.0f%% of one core (median; max %.0f%%) during the "
              "measured phases; the load generator %.0f%% (max %.0f%%) of its core."
              % (statistics.median(other), max(other), statistics.median(gen), max(gen)))
    uc = [r for rr in g.values() for run in rr for r in run if r.get("tool") == "turnutils_uclient"]
    for r in uc:
        print("cross-check turnutils_uclient on coturn: %s" % json.dumps(r))


CROSS_RATIO = []  # (level, tsunagu µs/crossing, echo floor µs/crossing), filled by main


def targets(g, metric):
    """The issue 16 block: every target, the measured figure, met or NOT met."""
    out = []

    def ratio_of(lv, fn):
        a, b = metric("relay", lv, fn), metric("coturn", lv, fn)
        return (a[0] / b[0]) if a and b and b[0] else None

    def verdict(ok):
        return "not measured" if ok is None else ("met" if ok else "NOT met")

    cpu = lambda r: r[0]["server_us_per_pkt"]
    for tr, name in (("tls", "TLS"), ("tcp", "TCP")):
        for n in ("100", "1000"):
            x = ratio_of("%sfixed|170|channel|%s" % (tr, n), cpu)
            out.append(("%s clients: ≤ 0.5x coturn's CPU / relayed pkt" % name,
                        "170 B, %s allocs x 50 msg/s" % n,
                        "-" if x is None else "%.2fx" % x, verdict(None if x is None else x <= 0.5)))
        lv = "%sflood|170|channel|10" % tr
        x = ratio_of(lv, lambda r: r[0]["relayed_pps"])
        lt, lc = (metric(s, lv, lambda r: r[0]["loss"] * 100) for s in ("relay", "coturn"))
        ok = None if x is None or not lt or not lc else (x >= 1.5 and lt[0] < lc[0])
        out.append(("%s clients: ≥ 1.5x coturn's flood rate at lower loss" % name,
                    "flood, 10 allocs, 170 B",
                    "-" if x is None else "%.2fx, loss %.1f%% vs %.1f%%" % (
                        x, lt[0] if lt else -1, lc[0] if lc else -1), verdict(ok)))
    for size in ("170", "1200"):
        x = ratio_of("peer|%s|channel|1000" % size, cpu)
        if x is not None:
            out.append(("UDP peer mode: ≤ 0.5x coturn's CPU / relayed pkt",
                        "%s B, 1000 allocs x 50 msg/s" % size, "%.2fx" % x, verdict(x <= 0.5)))
    for lv, t, f in CROSS_RATIO:
        kind, size, send, n = lv.split("|")
        if n not in ("100", "1000"):
            continue
        x = t[0] / f[0] if t and f and f[0] else None
        out.append(("UDP fixed (%s): ≤ 1.2x the echo floor per kernel crossing"
                    % ("pair" if kind == "fixed" else "peer"),
                    "%s B, %s, %s allocs x 50 msg/s" % (size, send, n),
                    "-" if x is None else "%.2fx (%.2f vs %.2f µs)" % (x, t[0], f[0]),
                    verdict(None if x is None else x <= 1.2)))
    if out:
        print("\n#### issue 16 targets (medians of this run)\n")
        print("| issue 16 target | level | measured (tsunagu vs coturn, or vs echo) | met? |")
        print("| --- | --- | --- | --- |")
        for o in out:
            print("| %s | %s | %s | %s |" % o)
        met = sum(1 for o in out if o[3] == "met")
        print("\nissue 16 targets: %d of %d met" % (met, len(out)))


if __name__ == "__main__":
    main()
