#!/usr/bin/python3
"""layering: the house rules on how files depend on each other, checked on the
built code so that they cannot drift.

Usage: layering.py SOURCE_ROOT LIB.a [LIB.a ...]

Three checks (STYLE.md s.1, issue 17's constraints):
1. no call circle between object files: from `nm` of every member of the
   given static libraries, file A -> file B when A uses a symbol B defines;
   a strongly connected component of more than one file is a circle (two
   files that call each other cannot be read or tested alone);
2. no include circle between the project's own headers in common/, relay/,
   signaling/ and tools/;
3. no source file over MAX_LINES lines in those directories.

Prints TAP: one line per check, with the offending files named."""
import os
import re
import subprocess
import sys

MAX_LINES = 1000
DIRS = ("common", "relay", "signaling", "tools")


def sccs(graph):
    """Tarjan's strongly connected components, iteratively (no recursion
    limit to hit on a big graph). Returns the components of size > 1."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def object_graph(libs):
    defs, uses = {}, {}
    for lib in libs:
        res = subprocess.run(["nm", "-A", "--no-sort", lib], capture_output=True, text=True,
                             check=True)
        for line in res.stdout.splitlines():
            # "lib.a:member.o: 0000000000000000 T name" or "lib.a:member.o:                  U name"
            m = re.match(r"^(.*?):([^:]+\.o):\s*(?:[0-9a-f]+\s+)?([A-Za-z])\s+(\S+)$", line)
            if not m:
                continue
            obj = os.path.basename(lib) + ":" + os.path.basename(m.group(2))
            kind, sym = m.group(3), m.group(4)
            uses.setdefault(obj, set())
            if kind == "U":
                uses[obj].add(sym)
            elif kind in "TDBRC" or kind in "VW":
                defs.setdefault(sym, obj)
    graph = {o: set() for o in uses}
    for obj, syms in uses.items():
        for s in syms:
            d = defs.get(s)
            if d and d != obj:
                graph[obj].add(d)
    return graph


def include_graph(root):
    headers = {}
    for d in DIRS:
        for dp, _, fs in os.walk(os.path.join(root, d)):
            for f in fs:
                if f.endswith(".h"):
                    headers[f] = os.path.join(dp, f)
    graph = {}
    for name, path in headers.items():
        with open(path, encoding="utf-8") as fh:
            inc = re.findall(r'^\s*#\s*include\s+"([^"]+)"', fh.read(), re.M)
        graph[name] = {os.path.basename(i) for i in inc if os.path.basename(i) in headers}
    return graph


def long_files(root):
    out = []
    for d in DIRS:
        for dp, _, fs in os.walk(os.path.join(root, d)):
            for f in fs:
                if f.endswith((".c", ".h")):
                    p = os.path.join(dp, f)
                    with open(p, encoding="utf-8") as fh:
                        n = sum(1 for _ in fh)
                    if n > MAX_LINES:
                        out.append(f"{os.path.relpath(p, root)} ({n} lines)")
    return out


def main():
    root, libs = sys.argv[1], sys.argv[2:]
    if not libs:
        print("usage: layering.py SOURCE_ROOT LIB.a...", file=sys.stderr)
        return 2
    checks = []
    g = object_graph(libs)
    # a library with no member parsed means nm's format changed: fail, not pass
    empty = [lib for lib in libs if not any(o.startswith(os.path.basename(lib) + ":") for o in g)]
    checks.append((not empty, f"nm read {len(g)} object files from {len(libs)} libraries"
                   + "".join("\n#   nothing read from " + e for e in empty)))
    circles = sccs(g)
    checks.append((not circles, "no call circle between files"
                   + "".join("\n#   circle: " + " <-> ".join(c) for c in circles)))
    icircles = sccs(include_graph(root))
    checks.append((not icircles, "no include circle between headers"
                   + "".join("\n#   circle: " + " <-> ".join(c) for c in icircles)))
    big = long_files(root)
    checks.append((not big, f"no file over {MAX_LINES} lines in {', '.join(DIRS)}"
                   + "".join("\n#   " + b for b in big)))
    print(f"1..{len(checks)}")
    for i, (ok, what) in enumerate(checks, 1):
        print(f"{'ok' if ok else 'not ok'} {i} - {what}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
