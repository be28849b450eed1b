"""dashboard_coverage.py RELAY_EXE SIGNAL_EXE - every metric either daemon
exports has a panel in conf/grafana/tsunagu-dashboard.json, or is listed in
conf/grafana/metrics-not-on-dashboard.txt as deliberately left out
(issue 12 item 7).

Starts tsunagu-relay and tsunagu-signal on loopback (signaling in cluster
mode against a real redis-server on a unix socket in a temporary directory,
so that the cluster metrics are exported too), scrapes both /metrics, and
compares the metric families ("# TYPE" lines) with the metrics the
dashboard's queries name for that daemon's job. Fails on:
  - a metric with neither a panel nor a line in the list (named);
  - a list entry the daemon does not export (stale), or that has a panel;
  - a dashboard query naming a tsunagu-relay/tsunagu-signal metric that
    daemon does not export (a typo, or a metric that was removed).
Every process is killed by PID at the end."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONF = os.path.join(ROOT, 'conf', 'grafana')
sys.path.insert(0, HERE)
from ports import free_both  # noqa: E402

MULT = float(os.environ.get('TIMEOUT_MULT', '1'))
JOBS = {'relay': 'tsunagu-relay', 'signal': 'tsunagu-signal'}
HIST_SUFFIX = re.compile(r'_(bucket|sum|count)$')
procs = []
failures = []


def check(ok, what):
    print(('ok   ' if ok else 'FAIL ') + what, flush=True)
    if not ok:
        failures.append(what)


def scrape(port, what):
    deadline = time.time() + 15 * MULT
    while time.time() < deadline:
        for p in procs:
            if p.poll() is not None:
                sys.exit(f'FAIL: {p.args[0]} exited at start-up ({p.returncode})')
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=2) as r:
                text = r.read().decode()
            return {m.group(1): m.group(2) for m in
                    re.finditer(r'^# TYPE (\S+) (\S+)$', text, re.M)}, text
        except OSError:
            time.sleep(0.1)
    sys.exit(f'FAIL: {what} /metrics did not answer')


def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get('panels', []))


def dashboard_metrics(families):
    """{job: {family: [panel titles]}} for the daemons' jobs. A query's jobs:
    job="X", or job=~"A|B", or both daemons when it names no job."""
    d = json.load(open(os.path.join(CONF, 'tsunagu-dashboard.json')))
    known = set(families['relay']) | set(families['signal'])
    out = {j: {} for j in JOBS.values()}
    for p in panels(d['panels']):
        for t in p.get('targets', []):
            expr = t.get('expr', '')
            # each selector: name{labels}
            for m in re.finditer(r'\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?', expr):
                name, labels = m.group(1), m.group(2) or ''
                fam = name if name in known else HIST_SUFFIX.sub('', name)
                if not (fam.startswith('tsunagu_') or fam.startswith('process_')):
                    continue
                jm = re.search(r'job\s*(=~|=)\s*"([^"]*)"', labels)
                jobs = (list(JOBS.values()) if not jm else
                        [j for j in JOBS.values() if j == jm.group(2)] if jm.group(1) == '='
                        else [j for j in JOBS.values() if re.fullmatch(jm.group(2), j)])
                if jm and jm.group(1) == '=' and jm.group(2) not in JOBS.values():
                    continue  # another job's metric (the canary bot, ...)
                for j in jobs:
                    out[j].setdefault(fam, []).append(p.get('title', '?'))
    return out


def left_out():
    entries = {}
    for n, line in enumerate(open(os.path.join(CONF, 'metrics-not-on-dashboard.txt')), 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        check(len(parts) >= 2 and parts[0] in JOBS,
              f'metrics-not-on-dashboard.txt:{n}: "DAEMON METRIC [why]" ({line!r})')
        if len(parts) >= 2 and parts[0] in JOBS:
            entries.setdefault(parts[0], set()).add(parts[1])
    return entries


def main():
    relay_exe, signal_exe = (os.path.abspath(a) for a in sys.argv[1:3])
    redis = shutil.which('redis-server')
    if not redis:
        sys.exit('FAIL: redis-server not found: install the Debian package "redis-server"')
    tmp = tempfile.mkdtemp(prefix='tsunagu-dashcov-')
    try:
        sock = os.path.join(tmp, 'redis.sock')
        log = open(os.path.join(tmp, 'procs.log'), 'w')
        procs.append(subprocess.Popen([redis, '--port', '0', '--unixsocket', sock, '--save', '',
                                       '--appendonly', 'no', '--dir', tmp],
                                      stdout=log, stderr=subprocess.STDOUT))
        deadline = time.time() + 10 * MULT
        while not os.path.exists(sock):
            if time.time() > deadline or procs[0].poll() is not None:
                sys.exit('FAIL: redis-server did not start')
            time.sleep(0.05)
        rp, mp, sp = free_both(), free_both(), free_both()
        lo = 20000 + (os.getpid() % 90) * 100
        procs.append(subprocess.Popen(
            [relay_exe, '--listen', f'127.0.0.1:{rp}', '--metrics-listen', f'127.0.0.1:{mp}',
             '--relay-ports', f'{lo}-{lo + 99}', '--threads', '1', '--auth-secret', 'cov'],
            stdout=log, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(
            [signal_exe, '--listen', f'127.0.0.1:{sp}', '--redis', 'unix://' + sock,
             '--admin-token', 'cov'], stdout=log, stderr=subprocess.STDOUT))
        families = {'relay': scrape(mp, 'tsunagu-relay')[0]}
        fam_sig, text = scrape(sp, 'tsunagu-signal')
        families['signal'] = fam_sig
        check('tsunagu_signal_redis_up' in fam_sig,
              'signaling runs in cluster mode (its cluster metrics are in the scrape)')
        dash = dashboard_metrics(families)
        skip = left_out()
        for daemon, fams in families.items():
            job = JOBS[daemon]
            listed = skip.get(daemon, set())
            covered = [f for f in fams if f in dash[job]]
            missing = sorted(f for f in fams if f not in dash[job] and f not in listed)
            check(not missing, f'{daemon}: every one of its {len(fams)} metrics has a panel or '
                  f'is listed as left out ({len(covered)} with a panel, '
                  f'{len(listed & set(fams))} listed)' +
                  ('' if not missing else '; neither: ' + ', '.join(missing)))
            stale = sorted(listed - set(fams))
            check(not stale, f'{daemon}: no list entry names a metric it does not export' +
                  ('' if not stale else ': ' + ', '.join(stale)))
            both = sorted(listed & set(dash[job]))
            check(not both, f'{daemon}: no listed metric has a panel after all' +
                  ('' if not both else ': ' + ', '.join(both)))
            ghosts = sorted(f for f in dash[job] if f not in fams)
            check(not ghosts, f'{daemon}: every metric its panels query is exported' +
                  ('' if not ghosts else ': ' + ', '.join(
                      f'{g} ({dash[job][g][0]})' for g in ghosts)))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        sys.exit(f'FAIL: {len(failures)} check(s) failed')
    print('ok - the dashboard covers every metric of both daemons')


if __name__ == '__main__':
    main()
