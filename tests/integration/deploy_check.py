"""deploy_check.py RELAY_EXE SIGNAL_EXE - the deployment files in conf/ work
with the daemons as built.

  1. conf/prometheus: `promtool check config` and `promtool test rules` (the
     alert rules' own unit tests, conf/prometheus/tsunagu-alerts.test.yml).
     conf/sysctl.d: every key exists under /proc/sys.
  2. conf/systemd: `systemd-analyze verify` on both units (ExecStart pointed
     at the built binaries) with no warning about them.
  3. The units' ExecStart lines are run as written (binary and config path
     replaced by the build's and by a copy of conf/*.sample on free ports),
     then a real Prometheus scrapes both daemons every second with the
     shipped alert rules loaded: both targets up, every rule evaluates
     without error, and every query of the Grafana dashboard
     (conf/grafana/tsunagu-dashboard.json) returns data.
  4. ExecReload (SIGHUP) reloads both (log line, /healthz still 200) and
     KillSignal (SIGTERM) stops both with exit code 0 inside TimeoutStopSec.

Needs Debian's prometheus (promtool) and systemd (systemd-analyze) packages;
fails naming them when missing. Every process is killed by PID at the end."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONF = os.path.join(ROOT, 'conf')
sys.path.insert(0, HERE)
from ports import free_both  # noqa: E402

RELAY_EXE, SIGNAL_EXE = (os.path.abspath(a) for a in sys.argv[1:3])
MULT = float(os.environ.get('TIMEOUT_MULT', '1'))
procs = []
failures = []


def need(tool, package):
    path = shutil.which(tool)
    if not path:
        sys.exit(f'FAIL: {tool} not found: install the Debian package "{package}"')
    return path


def check(ok, what):
    print(('ok   ' if ok else 'FAIL ') + what, flush=True)
    if not ok:
        failures.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60 * MULT, **kw)


def http_get(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ''


def wait_for(pred, seconds, what):
    end = time.monotonic() + seconds * MULT
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    sys.exit(f'FAIL: timed out waiting for {what}')


def unit_service(path):
    """The [Service] keys of a unit file (last value wins, as in systemd)."""
    keys, section = {}, None
    for line in open(path):
        line = line.strip()
        if not line or line[0] in '#;':
            continue
        if line.startswith('['):
            section = line
        elif section == '[Service]' and '=' in line:
            k, v = line.split('=', 1)
            keys[k] = v
    return keys


def config_from_sample(sample, out, overrides):
    """The sample with some keys replaced (a key missing from it is added)."""
    lines, seen = [], set()
    for line in open(sample):
        m = re.match(r'\s*([a-z0-9-]+)\s*=', line)
        if m and m.group(1) in overrides:
            seen.add(m.group(1))
            line = f'{m.group(1)} = {overrides[m.group(1)]}\n'
        lines.append(line)
    lines += [f'{k} = {v}\n' for k, v in overrides.items() if k not in seen]
    with open(out, 'w') as f:
        f.writelines(lines)


def start_from_unit(unit, exe, conf_path, log_path):
    svc = unit_service(unit)
    argv = shlex.split(svc['ExecStart'])
    check(os.path.basename(argv[0]) == os.path.basename(exe),
          f'{os.path.basename(unit)}: ExecStart runs {os.path.basename(exe)}')
    check('--config' in argv, f'{os.path.basename(unit)}: ExecStart passes --config')
    argv[0] = exe
    argv[argv.index('--config') + 1] = conf_path
    log = open(log_path, 'w')
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    return p, svc


def dashboard_queries():
    d = json.load(open(os.path.join(CONF, 'grafana', 'tsunagu-dashboard.json')))
    out = []
    for panel in d['panels']:
        for t in panel.get('targets', []):
            # cluster panels: signaling runs without --redis here, so those queries
            # must only be valid (their data: dashboard_coverage, in cluster mode)
            out.append((panel['title'], t['expr'],
                        'cluster mode only' in panel.get('description', '')))
    return out


def main():
    promtool = need('promtool', 'prometheus')
    prometheus = need('prometheus', 'prometheus')
    analyze = need('systemd-analyze', 'systemd')
    tmp = tempfile.mkdtemp(prefix='tsunagu-deploy-')
    try:
        # 1. Prometheus files, checked by Prometheus' own tool
        r = run([promtool, 'check', 'config', 'prometheus.yml'],
                cwd=os.path.join(CONF, 'prometheus'))
        check(r.returncode == 0, 'promtool check config conf/prometheus/prometheus.yml' +
              ('' if r.returncode == 0 else ': ' + r.stdout + r.stderr))
        r = run([promtool, 'test', 'rules', 'tsunagu-alerts.test.yml'],
                cwd=os.path.join(CONF, 'prometheus'))
        check(r.returncode == 0 and 'SUCCESS' in r.stdout,
              'promtool test rules: the alert rules fire (and stay quiet) as their tests say' +
              ('' if r.returncode == 0 else ': ' + r.stdout + r.stderr))

        # kernel settings: every key names a real sysctl of this kernel
        for fn in sorted(os.listdir(os.path.join(CONF, 'sysctl.d'))):
            for line in open(os.path.join(CONF, 'sysctl.d', fn)):
                line = line.strip()
                if not line or line[0] in '#;':
                    continue
                key = line.split('=', 1)[0].strip()
                check('=' in line and os.path.exists('/proc/sys/' + key.replace('.', '/')),
                      f'conf/sysctl.d/{fn}: {key} is a sysctl of this kernel')

        # 2. systemd units
        units = {}
        for name, exe in (('tsunagu-relay', RELAY_EXE), ('tsunagu-signal', SIGNAL_EXE)):
            src = os.path.join(CONF, 'systemd', name + '.service')
            dst = os.path.join(tmp, name + '.service')
            text = open(src).read().replace('/usr/local/bin/' + name, exe)
            open(dst, 'w').write(text)
            units[name] = dst
            r = run([analyze, 'verify', dst])
            noise = [ln for ln in (r.stdout + r.stderr).splitlines() if name in ln]
            check(r.returncode == 0 and not noise,
                  f'systemd-analyze verify {name}.service' +
                  ('' if not noise else ': ' + '; '.join(noise)))

        # 3. the daemons as the units start them, scraped by a real Prometheus
        rp, mp, sp, pp = (free_both() for _ in range(4))
        lo = 20000 + (os.getpid() % 90) * 100
        relay_conf = os.path.join(tmp, 'relay.conf')
        config_from_sample(os.path.join(CONF, 'relay.conf.sample'), relay_conf, {
            'listen': f'127.0.0.1:{rp}', 'metrics-listen': f'127.0.0.1:{mp}',
            'relay-ports': f'{lo}-{lo + 99}', 'threads': '1', 'drain-seconds': '2',
            # the sample leaves credentials commented out, and a relay without any
            # refuses to start (docs/relay.md)
            'auth-secret': 'deploy-check-secret'})
        sig_conf = os.path.join(tmp, 'signaling.conf')
        config_from_sample(os.path.join(CONF, 'signaling.conf.sample'), sig_conf, {
            'listen': f'127.0.0.1:{sp}', 'drain-seconds': '2'})
        relay, relay_svc = start_from_unit(units['tsunagu-relay'], RELAY_EXE, relay_conf,
                                           os.path.join(tmp, 'relay.log'))
        sig, sig_svc = start_from_unit(units['tsunagu-signal'], SIGNAL_EXE, sig_conf,
                                       os.path.join(tmp, 'signal.log'))
        wait_for(lambda: http_get(f'http://127.0.0.1:{mp}/healthz')[0] == 200, 15,
                 'the relay /healthz')
        wait_for(lambda: http_get(f'http://127.0.0.1:{sp}/healthz')[0] == 200, 15,
                 'the signaling /healthz')

        prom_dir = os.path.join(tmp, 'prom')
        os.mkdir(prom_dir)
        shutil.copy(os.path.join(CONF, 'prometheus', 'tsunagu-alerts.yml'), prom_dir)
        shipped = open(os.path.join(CONF, 'prometheus', 'prometheus.yml')).read()
        # the shipped scrape config, with this run's ports and a 1 s interval
        test_cfg = (shipped.replace('127.0.0.1:9641', f'127.0.0.1:{mp}')
                    .replace('127.0.0.1:8080', f'127.0.0.1:{sp}')
                    .replace('15s', '1s'))
        check(test_cfg.count(f'127.0.0.1:{mp}') == 1 and test_cfg.count(f'127.0.0.1:{sp}') == 1,
              'prometheus.yml names the default relay and signaling metrics addresses')
        open(os.path.join(prom_dir, 'prometheus.yml'), 'w').write(test_cfg)
        prom_log = open(os.path.join(tmp, 'prometheus.log'), 'w')
        prom = subprocess.Popen(
            [prometheus, '--config.file=' + os.path.join(prom_dir, 'prometheus.yml'),
             '--storage.tsdb.path=' + os.path.join(prom_dir, 'data'),
             f'--web.listen-address=127.0.0.1:{pp}'],
            stdout=prom_log, stderr=subprocess.STDOUT)
        procs.append(prom)
        api = f'http://127.0.0.1:{pp}/api/v1/'

        def query(expr):
            code, body = http_get(api + 'query?' + urllib.parse.urlencode({'query': expr}))
            if code != 200:
                return None
            return json.loads(body)['data']['result']

        def targets_up():
            code, body = http_get(api + 'targets')
            if code != 200:
                return False
            act = json.loads(body)['data']['activeTargets']
            return len(act) == 2 and all(t['health'] == 'up' for t in act) and act

        act = wait_for(targets_up, 30, 'Prometheus to scrape both daemons')
        check(sorted(t['labels']['job'] for t in act) == ['tsunagu-relay', 'tsunagu-signal'],
              'Prometheus scrapes both jobs, both up')
        # a few scrapes, so that rate() over [5s] has two samples
        time.sleep(4)

        def rules_evaluated():
            code, body = http_get(api + 'rules')
            if code != 200:
                return False
            rules = [r for g in json.loads(body)['data']['groups'] for r in g['rules']]
            return rules if rules and all(r.get('lastEvaluation', '').startswith('20')
                                          and not r['lastEvaluation'].startswith('0001')
                                          for r in rules) else False

        rules = wait_for(rules_evaluated, 20, 'every alert rule to be evaluated once')
        bad = [r['name'] + ': ' + r.get('lastError', '') for r in rules if r['health'] != 'ok']
        check(len(rules) >= 10 and not bad,
              f'{len(rules)} alert rules evaluate against the live metrics without error' +
              ('' if not bad else ': ' + '; '.join(bad)))
        firing = [r['name'] for r in rules if r.get('state') == 'firing']
        # up == 1, nothing dropped, nothing restarted: nothing may fire on a healthy pair
        # (the restart rules see one start time each, so changes() is 0)
        check(not firing, 'no alert fires on a healthy relay and signaling' +
              ('' if not firing else ': ' + ', '.join(firing)))

        for title, expr, cluster_only in dashboard_queries():
            q = expr.replace('$__rate_interval', '5s').replace('$instance', '.*')
            res = query(q)
            if cluster_only:
                check(res is not None, f'dashboard "{title}": {q[:90]} is a valid query '
                      '(cluster mode only: no data without --redis)')
            else:
                check(bool(res), f'dashboard "{title}": {q[:90]} returns data')

        # 4. ExecReload and the stop signal, as systemd would send them
        for name, p, svc, log, health in (
                ('tsunagu-relay', relay, relay_svc, 'relay.log', f'http://127.0.0.1:{mp}/healthz'),
                ('tsunagu-signal', sig, sig_svc, 'signal.log', f'http://127.0.0.1:{sp}/healthz')):
            check(svc.get('ExecReload', '').endswith('kill -HUP $MAINPID'),
                  f'{name}: ExecReload sends SIGHUP to the main process')
            p.send_signal(signal.SIGHUP)
            logf = os.path.join(tmp, log)
            wait_for(lambda: 'reloaded' in open(logf).read(), 10, f'{name} to log its reload')
            check(p.poll() is None and http_get(health)[0] == 200,
                  f'{name}: alive and healthy after SIGHUP')
            check(svc.get('KillSignal') == 'SIGTERM', f'{name}: KillSignal=SIGTERM (the drain)')
            limit = float(svc['TimeoutStopSec'])
            sample = os.path.join(CONF, 'relay.conf.sample' if 'relay' in name
                                  else 'signaling.conf.sample')
            drain = int(re.search(r'^drain-seconds\s*=\s*(\d+)', open(sample).read(), re.M)
                        .group(1))
            check(limit > drain, f'{name}: TimeoutStopSec {limit:g} > the sample\'s '
                  f'drain-seconds {drain}')
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(timeout=limit * MULT)
            except subprocess.TimeoutExpired:
                rc = None
            check(rc == 0, f'{name}: SIGTERM stops it with exit code 0 '
                  f'(got {rc}) in {time.monotonic() - t0:.1f} s < TimeoutStopSec {limit:g}')
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if failures:
            for f in ('relay.log', 'signal.log', 'prometheus.log'):
                path = os.path.join(tmp, f)
                if os.path.exists(path):
                    print(f'--- {f} (tail)')
                    print(''.join(open(path).readlines()[-15:]))
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        sys.exit(f'FAIL: {len(failures)} check(s) failed')
    print('deploy_check: all checks passed')


if __name__ == '__main__':
    main()
