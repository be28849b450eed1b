// status.js - the status page of tsunagu-signal: polls /status.json (same
// origin) every 5 s and draws the last hour as inline SVG. No external
// scripts. With an admin token configured the JSON needs it: taken from the
// URL fragment (#token=...) or asked for; kept in sessionStorage only.
'use strict';

const REFRESH_MS = 5000;
const W = 720, H = 120, PAD = 28;
let token = '';

function fragmentToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : '';
}

function setText(id, v) { document.getElementById(id).textContent = v; }

function state(text, err) {
  const e = document.getElementById('state');
  e.textContent = text;
  e.className = err ? 'err' : '';
}

const SVG = 'http://www.w3.org/2000/svg';
function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// One plot: values v over times t (unix s), y from 0 to the max.
function plot(id, title, t, v) {
  const box = document.getElementById(id);
  const svg = el('svg', {width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-points': v.length});
  const max = Math.max(1, ...v);
  const t1 = t.length ? t[t.length - 1] : 0, t0 = t1 - 3600;
  const x = (s) => PAD + (W - 2 * PAD) * (s - t0) / 3600;
  const y = (n) => H - PAD / 2 - (H - PAD) * n / max;
  svg.appendChild(el('text', {x: PAD, y: 12, 'font-size': 11}, `${title} (max ${+max.toFixed(2)})`));
  svg.appendChild(el('line', {x1: PAD, y1: y(0), x2: W - PAD, y2: y(0), stroke: '#999'}));
  if (v.length) {
    const pts = v.map((n, i) => `${x(t[i]).toFixed(1)},${y(n).toFixed(1)}`).join(' ');
    svg.appendChild(el('polyline', {points: pts, fill: 'none', stroke: '#2a6', 'stroke-width': 1.5}));
  }
  svg.appendChild(el('text', {x: PAD, y: H - 2, 'font-size': 10}, '-60 min'));
  svg.appendChild(el('text', {x: W - PAD - 20, y: H - 2, 'font-size': 10}, 'now'));
  box.replaceChildren(svg);
}

function render(s) {
  setText('members', s.members);
  setText('rooms', s.rooms);
  setText('connections', s.connections);
  setText('mps', (+s.messages_per_s).toFixed(1));
  const body = document.querySelector('#relays tbody');
  body.replaceChildren();
  for (const r of s.relays) {
    const tr = document.createElement('tr');
    for (const v of [r.url, r.health]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  const h = s.history;
  plot('plot-members', 'members', h.t, h.members);
  plot('plot-rooms', 'rooms', h.t, h.rooms);
  plot('plot-mps', 'messages/s', h.t, h.messages_per_s);
  state(`updated ${new Date(s.now * 1000).toISOString()}${s.node ? ' - node ' + s.node : ''}` +
        `${s.draining ? ' - draining' : ''}`, false);
}

async function refresh() {
  try {
    const headers = token ? {Authorization: 'Bearer ' + token} : {};
    const r = await fetch('/status.json', {headers, cache: 'no-store'});
    if (r.status === 401) {
      document.getElementById('auth').style.display = 'block';
      state('admin token required', true);
      return;
    }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    document.getElementById('auth').style.display = 'none';
    render(await r.json());
  } catch (e) {
    state('cannot reach the server: ' + e.message, true);
  }
}

document.getElementById('auth').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = document.getElementById('token').value;
  sessionStorage.setItem('tsunagu-admin-token', token);
  refresh();
});

token = fragmentToken() || sessionStorage.getItem('tsunagu-admin-token') || '';
refresh();
setInterval(refresh, REFRESH_MS);
