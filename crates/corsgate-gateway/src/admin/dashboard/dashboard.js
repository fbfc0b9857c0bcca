// The corsgate admin dashboard. Served by the admin listener with a
// Content-Security-Policy that runs this file only. Everything shown comes
// from the listener's JSON and is written with textContent: origins, paths
// and headers are chosen by whoever sent the refused requests, and must
// never become markup.
'use strict';

const REFRESH_MS = 5000;
const PAGE_SIZE = 50;
const TOKEN_KEY = 'corsgate-admin-token';

const state = { offset: 0, route: '', needToken: false, lastRefusals: null };

// --- DOM helpers: text only ------------------------------------------------

function el(tag, options, ...children) {
  const node = document.createElement(tag);
  if (options) {
    if (options.cls) node.className = options.cls;
    if (options.text !== undefined && options.text !== null) node.textContent = String(options.text);
    if (options.title) node.title = options.title;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function td(text, cls) {
  return el('td', { text, cls });
}

function replaceRows(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
}

function byId(id) {
  return document.getElementById(id);
}

function list(value) {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.join(', ');
  return String(value);
}

function setStatus(text, isError) {
  const status = byId('status');
  status.textContent = text;
  status.className = isError ? 'error' : 'muted';
}

// --- The token: asked for once, kept in this tab's session storage -----------

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

function showTokenForm(show) {
  byId('token-form').hidden = !show;
  byId('forget-token').hidden = show || !token();
}

async function api(path, init) {
  const headers = new Headers((init && init.headers) || {});
  const t = token();
  if (t) headers.set('Authorization', `Bearer ${t}`);
  const response = await fetch(path, { ...(init || {}), headers, cache: 'no-store', credentials: 'omit' });
  if (response.status === 401) {
    state.needToken = true;
    showTokenForm(true);
    throw new Error('the admin token is needed (server.admin_token_file)');
  }
  return response;
}

async function getJson(path) {
  const response = await api(path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// --- Requests: totals, the chart, refusals by reason -------------------------

function renderStats(stats) {
  const totals = stats.totals;
  byId('totals').replaceChildren(
    el('div', { cls: 'allowed' }, el('b', { text: totals.allowed }), 'allowed'),
    el('div', { cls: 'rejected' }, el('b', { text: totals.rejected }), 'refused'),
    el('div', { cls: 'pass' }, el('b', { text: totals.pass }), 'not CORS, or CORS off'),
  );
  const reasons = Object.entries(totals.by_reason)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => el('tr', null, td(reason, 'mono'), td(n, 'num')));
  if (reasons.length === 0) reasons.push(el('tr', null, td('nothing refused yet', 'muted'), td('')));
  replaceRows(byId('reasons'), reasons);
  drawChart(stats.history, stats.interval_seconds);
}

function drawChart(history, interval) {
  const canvas = byId('chart');
  const ctx = canvas.getContext('2d');
  const width = canvas.width;
  const height = canvas.height;
  ctx.clearRect(0, 0, width, height);
  const points = history.slice(-60);
  const max = Math.max(1, ...points.map((p) => p.allowed + p.pass + p.rejected));
  const slots = 60;
  const bar = width / slots;
  const colors = {
    allowed: getComputedStyle(document.documentElement).getPropertyValue('--allowed').trim() || 'green',
    pass: getComputedStyle(document.documentElement).getPropertyValue('--pass').trim() || 'grey',
    rejected: getComputedStyle(document.documentElement).getPropertyValue('--rejected').trim() || 'red',
  };
  const top = 14;
  const usable = height - top;
  points.forEach((point, i) => {
    const x = (slots - points.length + i) * bar;
    let y = height;
    for (const key of ['allowed', 'pass', 'rejected']) {
      const h = (point[key] / max) * usable;
      ctx.fillStyle = colors[key];
      ctx.fillRect(x + 1, y - h, Math.max(1, bar - 2), h);
      y -= h;
    }
  });
  ctx.fillStyle = '#66707c';
  ctx.font = '11px sans-serif';
  ctx.fillText(`max ${max} per ${interval} s; last ${Math.round((slots * interval) / 60)} minutes`, 4, 11);
  byId('chart-legend').replaceChildren(
    ...['allowed', 'pass', 'rejected'].map((key) =>
      el('span', null, el('span', { cls: `swatch bg-${key}` }), key === 'pass' ? 'not CORS / off' : key === 'rejected' ? 'refused' : 'allowed'),
    ),
  );
}

// --- Routes -----------------------------------------------------------------

function renderRoutes(routes, stats) {
  const counts = new Map(stats.routes.map((r) => [r.route, r]));
  const select = byId('refusals-route');
  const chosen = select.value;
  const options = [el('option', { text: 'all routes' })];
  options[0].value = '';
  const rows = routes.routes.map((route) => {
    const option = el('option', { text: route.label });
    option.value = route.name;
    options.push(option);
    const policy = route.policy || {};
    const c = counts.get(route.name) || { allowed: 0, pass: 0, rejected: 0 };
    return el(
      'tr',
      null,
      el('td', { title: route.name }, el('span', { cls: 'mono', text: route.label })),
      td(route.upstream, 'mono'),
      td(route.cors + (route.policy_name ? ` (policy ${route.policy_name})` : '') + (route.debug ? ', debug' : '')),
      td(route.cors === 'off' ? '—' : list(policy.allow_origins) || '(none)', 'mono'),
      td(route.cors === 'off' ? '—' : list(policy.allow_methods), 'mono'),
      td(route.cors === 'off' ? '—' : list(policy.allow_headers), 'mono'),
      td(route.cors === 'off' ? '—' : String(!!policy.allow_credentials)),
      td(c.allowed, 'num allowed'),
      td(c.pass, 'num pass'),
      td(c.rejected, 'num rejected'),
    );
  });
  replaceRows(byId('routes'), rows);
  select.replaceChildren(...options);
  select.value = chosen;
}

// --- Refusals ---------------------------------------------------------------

function renderFix(fix) {
  const box = el('div');
  if (!fix) return box;
  if (fix.error) {
    box.append(el('div', { cls: 'error', text: `explain: ${fix.error}` }));
    return box;
  }
  if (fix.verdict && fix.verdict !== 'blocked') {
    box.append(el('div', { cls: 'muted', text: `now: ${fix.verdict} (the configuration running no longer refuses it as sent)` }));
  }
  for (const f of fix.fixes || []) {
    const item = el('div', { cls: 'fix' });
    item.append(el('div', { text: `in ${f.key}:` }));
    item.append(el('pre', { cls: 'mono', text: f.line }));
    item.append(el('div', { cls: 'muted', text: f.why }));
    if (f.also_opens && f.also_opens.length) item.append(el('div', { cls: 'muted', text: `this also opens: ${f.also_opens.join(', ')}` }));
    box.append(item);
  }
  if ((!fix.fixes || fix.fixes.length === 0) && fix.notes) {
    for (const note of fix.notes) box.append(el('div', { cls: 'muted', text: note }));
  }
  return box;
}

function requestText(last) {
  let text = `${last.method} ${last.url}`;
  if (last.class === 'preflight') {
    text += ` (preflight for ${last.requested_method || '?'}`;
    if (last.requested_headers) text += `, headers ${last.requested_headers}`;
    text += ')';
  }
  return text;
}

function renderRefusals(log) {
  state.lastRefusals = log;
  const first = log.matching === 0 ? 0 : log.offset + 1;
  const last = Math.min(log.offset + log.entries.length, log.matching);
  byId('refusals-summary').textContent =
    `${log.total} refusals since start; ${log.tracked} distinct (route, origin, reason) kept of at most ${log.capacity}` +
    (log.evictions ? `; ${log.evictions} gave way to newer ones (a count may include up to "±" refusals of the entry it replaced)` : '');
  byId('refusals-page').textContent = `${first}–${last} of ${log.matching}`;
  byId('refusals-prev').disabled = log.offset === 0;
  byId('refusals-next').disabled = log.offset + log.entries.length >= log.matching;
  const rows = log.entries.map((entry) =>
    el(
      'tr',
      null,
      td(entry.count_error ? `${entry.count} ±${entry.count_error}` : entry.count, 'num'),
      td(entry.route, 'mono nowrap'),
      td(entry.origin, 'mono origin'),
      td(entry.reason, 'mono'),
      el('td', null, el('div', { cls: 'mono', text: requestText(entry.last) }), el('div', { cls: 'muted', text: `id ${entry.last.request_id}` })),
      td(entry.last_seen),
      el('td', null, renderFix(entry.fix)),
    ),
  );
  if (rows.length === 0) rows.push(el('tr', null, el('td', { cls: 'muted', text: 'no refusal recorded' })));
  replaceRows(byId('refusals'), rows);
  replaceRows(
    byId('recent'),
    log.recent.map((r) =>
      el('tr', null, td(r.time), td(r.route, 'mono'), td(r.origin, 'mono'), td(r.reason, 'mono'), td(requestText(r), 'mono'), td(r.request_id, 'mono')),
    ),
  );
}

async function loadRefusals() {
  const query = new URLSearchParams({ offset: String(state.offset), limit: String(PAGE_SIZE) });
  if (state.route) query.set('route', state.route);
  renderRefusals(await getJson(`/refusals?${query}`));
}

// --- Shadow divergences (when a shadow configuration runs) --------------------

function decisionText(d) {
  if (!d) return '';
  let text = d.allowed ? 'allowed' : `refused${d.reason ? ` (${d.reason})` : ''}`;
  if (d.route) text = `${d.route}: ${text}`;
  return text;
}

async function loadShadow() {
  const panel = byId('shadow-panel');
  const response = await api('/shadow');
  if (response.status === 404) {
    panel.hidden = true;
    return;
  }
  if (!response.ok) throw new Error(`/shadow: ${response.status}`);
  const shadow = await response.json();
  panel.hidden = false;
  const c = shadow.candidate || {};
  byId('shadow-candidate').textContent = `candidate ${c.path || ''}, loaded ${c.loaded_at || ''} (generation ${c.generation ?? ''})`;
  replaceRows(
    byId('shadow-counts'),
    (shadow.counts || []).map((row) => el('tr', null, td(row.route, 'mono'), td(row.kind, 'mono'), td(row.count, 'num'))),
  );
  replaceRows(
    byId('shadow-recent'),
    (shadow.recent || []).map((d) =>
      el('tr', null, td(d.time), td(d.kind, 'mono'), td(d.origin, 'mono'), td(`${d.method} ${d.path}`, 'mono'), td(decisionText(d.live)), td(decisionText(d.candidate))),
    ),
  );
}

// --- Explain ----------------------------------------------------------------

function headerLines(text) {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

async function explain(event) {
  event.preventDefault();
  const out = byId('explain-result');
  out.replaceChildren(el('span', { cls: 'muted', text: 'asking the engine…' }));
  const body = {
    origin: byId('explain-origin').value.trim(),
    url: byId('explain-url').value.trim(),
    method: byId('explain-method').value.trim() || 'GET',
    headers: headerLines(byId('explain-headers').value),
    credentials: byId('explain-credentials').value,
  };
  // On a client-scoped route: the client, given or named by the body.
  const client = byId('explain-client').value.trim();
  if (client) body.client = client;
  const data = byId('explain-data').value;
  if (data) body.data = data;
  try {
    const response = await api('/explain', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const result = await response.json();
    if (!response.ok) {
      out.replaceChildren(el('div', { cls: 'error', text: result.error || `${response.status}` }));
      return;
    }
    const verdict = el('div', { cls: `verdict ${result.verdict === 'blocked' ? 'rejected' : 'allowed'}`, text: `Verdict: ${result.verdict}` });
    verdict.id = 'explain-verdict';
    const parts = [verdict];
    if (result.route) parts.push(el('div', { cls: 'muted', text: `route: ${result.route}` }));
    if (result.console_message) parts.push(el('div', null, 'Chromium prints: ', el('span', { cls: 'mono', text: result.console_message })));
    if (result.clients) {
      const c = result.clients;
      const who = c.client ? `client ${c.client} (named by ${c.named_by}; ${c.registered ? 'registered' : 'not registered'})` : 'no client named';
      parts.push(el('div', { cls: 'muted', text: `${who}; decided by ${c.decided_by}; ${c.registry}, revision ${c.registry_revision}` }));
    }
    for (const engine of result.engines || []) {
      const line = el('div', { cls: 'muted' }, `${engine.engine}: ${engine.verdict || 'not predicted'}`);
      if ((engine.console_messages || []).length) line.append(' — ', el('span', { cls: 'mono', text: engine.console_messages[0] }));
      else if (engine.note) line.append(` (${engine.note})`);
      parts.push(line);
    }
    if ((result.fixes || []).length) parts.push(renderFix({ verdict: result.verdict, fixes: result.fixes }));
    for (const note of result.notes || []) parts.push(el('div', { cls: 'muted', text: `note: ${note}` }));
    const raw = el('details', null, el('summary', { text: 'JSON' }), el('pre', { cls: 'mono', text: JSON.stringify(result, null, 2) }));
    parts.push(raw);
    out.replaceChildren(...parts);
  } catch (e) {
    out.replaceChildren(el('div', { cls: 'error', text: String(e.message || e) }));
  }
}

// --- Refresh ----------------------------------------------------------------

async function refresh() {
  try {
    const [stats, routes] = await Promise.all([getJson('/stats'), getJson('/routes')]);
    renderStats(stats);
    renderRoutes(routes, stats);
    await loadRefusals();
    await loadShadow();
    state.needToken = false;
    showTokenForm(false);
    setStatus(`updated ${new Date().toLocaleTimeString()}`, false);
  } catch (e) {
    setStatus(String(e.message || e), true);
  }
}

function start() {
  byId('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    try {
      sessionStorage.setItem(TOKEN_KEY, byId('token').value.trim());
    } catch {}
    byId('token').value = '';
    refresh();
  });
  byId('forget-token').addEventListener('click', () => {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {}
    showTokenForm(true);
  });
  byId('refusals-prev').addEventListener('click', () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    loadRefusals().catch((e) => setStatus(String(e.message || e), true));
  });
  byId('refusals-next').addEventListener('click', () => {
    state.offset += PAGE_SIZE;
    loadRefusals().catch((e) => setStatus(String(e.message || e), true));
  });
  byId('refusals-route').addEventListener('change', (event) => {
    state.route = event.target.value;
    state.offset = 0;
    loadRefusals().catch((e) => setStatus(String(e.message || e), true));
  });
  byId('explain-form').addEventListener('submit', explain);
  refresh();
  setInterval(() => {
    if (!state.needToken) refresh();
  }, REFRESH_MS);
}

start();
