#!/usr/bin/python3
"""soak_plot.py - an SVG of a soak run's TSV (tests/chaos/chaos.py --soak):
one panel per quantity (RSS, descriptors, CPU of each daemon; call loss,
jitter and MOS; signal latency p50/p95) against time. Plain SVG written by
hand: no plotting library.

usage: soak_plot.py soak.tsv soak.svg"""
import sys

PANELS = [("RSS (MiB)", "_rss_mib"), ("open descriptors", "_fds"), ("CPU (% of a core)", "_cpu_pct"),
          ("call quality", ("loss_pct", "jitter_ms", "mos")),
          ("signal latency (ms)", ("sig_p50_ms", "sig_p95_ms"))]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
W, PH, ML, MR, MT = 980, 170, 60, 250, 30


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        head = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(head, l.rstrip("\n").split("\t"))) for l in f if l.strip()]

    def col(c):
        out = []
        for r in rows:
            try:
                out.append((float(r["t_s"]), float(r[c])))
            except (KeyError, ValueError):
                pass
        return out

    parts = []
    y0 = MT
    for title, sel in PANELS:
        cols = [c for c in head if c.endswith(sel)] if isinstance(sel, str) else [c for c in sel if c in head]
        series = [(c, col(c)) for c in cols]
        series = [(c, s) for c, s in series if s]
        if not series:
            continue
        xs = [p[0] for _, s in series for p in s]
        ys = [p[1] for _, s in series for p in s]
        x_lo, x_hi = min(xs), max(xs) or 1
        y_lo, y_hi = min(0, min(ys)), max(ys)
        if y_hi <= y_lo:
            y_hi = y_lo + 1
        y_hi *= 1.1
        pw = W - ML - MR

        def X(x):
            return ML + (x - x_lo) / ((x_hi - x_lo) or 1) * pw

        def Y(y):
            return y0 + PH - (y - y_lo) / (y_hi - y_lo) * PH

        parts.append('<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>' % (
            ML, y0 - 8, esc(title)))
        parts.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (
            ML, y0, pw, PH))
        for k in range(5):
            v = y_lo + (y_hi - y_lo) * k / 4
            parts.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end">%.3g</text>' % (
                ML - 4, Y(v) + 3, v))
            parts.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>' % (
                ML, ML + pw, Y(v), Y(v)))
        for k in range(6):
            v = x_lo + (x_hi - x_lo) * k / 5
            parts.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%.0f s</text>' % (
                X(v), y0 + PH + 12, v))
        for i, (c, s) in enumerate(series):
            color = COLORS[i % len(COLORS)]
            pts = " ".join("%.1f,%.1f" % (X(x), Y(y)) for x, y in s)
            parts.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (
                color, pts))
            parts.append('<text x="%d" y="%d" font-size="11" fill="%s">%s (%.3g .. %.3g)</text>' % (
                ML + pw + 8, y0 + 14 + 14 * i, color, esc(c), min(p[1] for p in s),
                max(p[1] for p in s)))
        y0 += PH + 50
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">'
           '<rect width="100%%" height="100%%" fill="white"/>%s</svg>\n' % (W, y0, "".join(parts)))
    with open(dst, "w") as f:
        f.write(svg)


if __name__ == "__main__":
    main()
