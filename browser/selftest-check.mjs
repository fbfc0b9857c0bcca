#!/usr/bin/env node
// Scenarios and assertions for browser/selftest.sh (the harness against
// browser/fixture-server.mjs, without corsgate).
//
//   node selftest-check.mjs scenarios PAGE_PORT API_PORT TMPDIR > scenarios.json
//   node selftest-check.mjs check RESULTS.jsonl PAGE_PORT API_PORT [MESSAGES.md]
//
// `check` prints one line per assertion, the CORS console messages Chromium
// printed for each error case (also written to MESSAGES.md when given), and a
// closing "N passed, N failed" line; exit status 1 when any assertion failed.

import { readFileSync, writeFileSync } from 'node:fs';

const [cmd, ...rest] = process.argv.slice(2);

// The CORS error cases whose exact Chromium console text we collect:
// scenario name -> [description, expected corsError].
const CASES = {
  'a-simple-no-acao': ['simple GET, no ACAO', 'MissingAllowOriginHeader'],
  'b-preflight-no-acao': ['preflight response lacks ACAO', 'PreflightMissingAllowOriginHeader'],
  'c-method-not-allowed': ['method not allowed by preflight', 'MethodDisallowedByPreflightResponse'],
  'd-header-not-allowed': ['header not allowed by preflight', 'HeaderDisallowedByPreflightResponse'],
  'e-star-with-credentials': ["ACAO '*' with credentials include", 'WildcardOriginNotAllowed'],
  'e2-preflight-star-with-credentials': ["preflight ACAO '*' with credentials include", 'PreflightWildcardOriginNotAllowed'],
  'f-preflight-403': ['preflight answered 403', 'PreflightInvalidStatus'],
  'g-acao-mismatch': ['ACAO names another origin', 'AllowOriginMismatch'],
  'g2-preflight-acao-mismatch': ['preflight ACAO names another origin', 'PreflightAllowOriginMismatch'],
  'h-no-acac-with-credentials': ['ACAC missing with credentials include', 'InvalidAllowCredentials'],
  'h2-preflight-no-acac-with-credentials': ['preflight ACAC missing with credentials include', 'PreflightInvalidAllowCredentials'],
  'i-two-acao': ['two ACAO header lines', 'MultipleAllowOriginValues'],
  'i2-preflight-two-acao': ['preflight with two ACAO header lines', 'PreflightMultipleAllowOriginValues'],
  'xhr-no-acao': ['XMLHttpRequest, no ACAO', 'MissingAllowOriginHeader'],
};

if (cmd === 'scenarios') scenarios(...rest);
else if (cmd === 'check') check(...rest);
else {
  process.stderr.write('usage: selftest-check.mjs scenarios PAGE_PORT API_PORT TMPDIR | check RESULTS.jsonl PAGE_PORT API_PORT [MESSAGES.md]\n');
  process.exit(2);
}

function scenarios(pagePort, apiPort, tmpdir) {
  const page = `http://127.0.0.1:${pagePort}/blank.html`;
  const api = (p) => `http://127.0.0.1:${apiPort}${p}`;
  const put = (path, extra = {}) => ({
    kind: 'fetch',
    url: api(path),
    init: { method: 'PUT', headers: { 'x-foo': '1' }, body: 'hello', ...extra },
    readHeaders: ['x-request-id'],
  });
  const get = (path, extra = {}) => ({ kind: 'fetch', url: api(path), init: extra, readHeaders: ['x-request-id'] });
  const sc = (name, steps) => ({ name, pageUrl: page, steps });
  const out = [
    sc('simple-get-allowed', [get('/allowed', {}), { ...get('/allowed'), readHeaders: ['x-request-id', 'x-secret', 'content-type'] }]),
    sc('preflight-cached', [put('/allowed'), put('/allowed')]),
    sc('preflight-fresh-context', [put('/allowed')]),
    sc('a-simple-no-acao', [get('/denied')]),
    sc('b-preflight-no-acao', [put('/denied')]),
    sc('c-method-not-allowed', [{ ...put('/allowed'), init: { method: 'DELETE' } }]),
    sc('d-header-not-allowed', [{ ...put('/allowed'), init: { method: 'PUT', headers: { 'x-bar': '1' }, body: 'x' } }]),
    sc('e-star-with-credentials', [get('/star', { credentials: 'include' })]),
    sc('e2-preflight-star-with-credentials', [put('/star', { credentials: 'include' })]),
    sc('f-preflight-403', [put('/preflight-403')]),
    sc('g-acao-mismatch', [get('/mismatch')]),
    sc('g2-preflight-acao-mismatch', [put('/mismatch')]),
    sc('h-no-acac-with-credentials', [get('/no-acac', { credentials: 'include' })]),
    sc('h2-preflight-no-acac-with-credentials', [put('/no-acac', { credentials: 'include' })]),
    sc('i-two-acao', [get('/two-acao')]),
    sc('i2-preflight-two-acao', [put('/two-acao')]),
    sc('xhr-no-acao', [{ kind: 'xhr', url: api('/denied'), method: 'GET' }]),
    sc('xhr-allowed-unsafe-header', [
      { kind: 'xhr', url: api('/allowed'), method: 'GET', withCredentials: true, readHeaders: ['x-request-id', 'x-secret'] },
    ]),
    sc('cookie-with-credentials', [
      { kind: 'cookie', url: api('/'), name: 'sid', value: 'abc' },
      get('/allowed', { credentials: 'include' }),
      get('/allowed', { credentials: 'omit' }),
    ]),
    sc('websocket', [
      { kind: 'websocket', url: `ws://127.0.0.1:${apiPort}/ws`, send: 'ping' },
      { kind: 'websocket', url: `ws://127.0.0.1:${apiPort}/ws-reject` },
    ]),
    sc('files-and-timeouts', [
      { kind: 'signalFile', path: `${tmpdir}/reached` },
      { kind: 'waitForFile', path: `${tmpdir}/reached`, timeoutMs: 1000 },
      { kind: 'waitForFile', path: `${tmpdir}/never`, timeoutMs: 200 },
      { ...get('/hang'), timeoutMs: 500 },
      { kind: 'wait', ms: 10 },
      get('/allowed'),
      { kind: 'bogus' },
    ]),
  ];
  process.stdout.write(JSON.stringify({ browserArgs: [], scenarios: out }, null, 1) + '\n');
}

async function check(resultsFile, pagePort, apiPort, messagesFile) {
  const results = readFileSync(resultsFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
  const by = Object.fromEntries(results.map((r) => [r.name, r]));
  let passed = 0;
  let failed = 0;
  const t = (name, cond, detail) => {
    if (cond) passed++;
    else failed++;
    process.stdout.write(`${cond ? 'ok' : 'FAIL'} - ${name}${!cond && detail !== undefined ? `: ${JSON.stringify(detail)}` : ''}\n`);
  };
  const step = (sc, i) => (by[sc] && by[sc].steps[i]) || {};

  t('21 scenarios reported', results.length === 21, results.length);
  t('no scenario error', results.every((r) => !r.error), results.filter((r) => r.error).map((r) => [r.name, r.error]));

  let s = step('simple-get-allowed', 1);
  t('allowed GET resolves with 200', s.ok === true && s.status === 200, s);
  t('exposed header readable', s.headers && s.headers['x-request-id'] === 'rid-1', s.headers);
  t('non-exposed header hidden', s.headers && s.headers['x-secret'] === null, s.headers);
  t('safelisted content-type readable', s.headers && s.headers['content-type'] === 'text/plain', s.headers);
  t('allHeaderNames = safelisted + exposed', JSON.stringify(s.allHeaderNames) === JSON.stringify(['cache-control', 'content-type', 'x-request-id']), s.allHeaderNames);
  t('simple GET sends no preflight', s.preflights && s.preflights.length === 0, s.preflights);
  const origin = `http://127.0.0.1:${pagePort}`;
  t('simple GET recorded with Origin on the wire', s.requests && s.requests.length === 1 && s.requests[0].requestHeaders.origin === origin, s.requests);
  t('allowed GET prints nothing to the console', by['simple-get-allowed'] && by['simple-get-allowed'].console.length === 0, by['simple-get-allowed'] && by['simple-get-allowed'].console);

  s = step('preflight-cached', 0);
  t('first PUT: one preflight', s.ok && s.status === 200 && s.preflights.length === 1, s.preflights);
  const pf = s.preflights && s.preflights[0];
  t('preflight is OPTIONS with ACRM/ACRH', pf && pf.method === 'OPTIONS' && pf.requestHeaders['access-control-request-method'] === 'PUT' && pf.requestHeaders['access-control-request-headers'] === 'x-foo', pf);
  t('preflight response status and headers recorded', pf && pf.status === 204 && pf.responseHeaders['access-control-max-age'] === '600', pf);
  s = step('preflight-cached', 1);
  t('second identical PUT: preflight cache hit, no preflight', s.ok && s.status === 200 && s.preflights.length === 0, s.preflights);
  s = step('preflight-fresh-context', 0);
  t('new scenario, new context: preflight again (cache does not leak)', s.ok && s.preflights.length === 1, s.preflights);

  for (const [name, [, corsError]] of Object.entries(CASES)) {
    s = step(name, 0);
    t(`${name}: rejected`, s.ok === false && s.status === null || (name.startsWith('xhr') && s.ok === false), s);
    t(`${name}: corsError ${corsError}`, s.corsError === corsError, [s.corsError, s.failedParameter]);
    t(`${name}: a CORS console message`, (s.console || []).some((m) => m.includes('blocked by CORS policy')), s.console);
  }
  t('preflighted cases record the preflight', ['b-preflight-no-acao', 'c-method-not-allowed', 'd-header-not-allowed', 'f-preflight-403'].every((n) => step(n, 0).preflights.length === 1));
  t('failed preflight 403 status recorded', step('f-preflight-403', 0).preflights[0]?.status === 403, step('f-preflight-403', 0).preflights);
  t('fetch rejection message', step('a-simple-no-acao', 0).error === 'Failed to fetch', step('a-simple-no-acao', 0).error);

  s = step('xhr-allowed-unsafe-header', 0);
  t('xhr allowed: 200, exposed header readable, other null', s.ok && s.status === 200 && s.headers['x-request-id'] === 'rid-1' && s.headers['x-secret'] === null, s);
  t('xhr unsafe header console message', (s.console || []).includes('Refused to get unsafe header "x-secret"'), s.console);

  t('cookie sent with credentials include', (step('cookie-with-credentials', 1).body || '').includes('cookie=sid=abc'), step('cookie-with-credentials', 1).body);
  t('cookie not sent with credentials omit', !(step('cookie-with-credentials', 2).body || 'x').includes('cookie='), step('cookie-with-credentials', 2).body);

  s = step('websocket', 0);
  t('websocket opens and echoes', s.opened === true && s.received === 'ping', s);
  t('websocket handshake recorded with Origin', s.requests && s.requests.some((r) => r.type === 'WebSocket' && r.status === 101 && r.requestHeaders.origin), s.requests);
  s = step('websocket', 1);
  t('rejected websocket does not open', s.opened === false && !!s.error, s);

  t('signalFile', step('files-and-timeouts', 0).ok === true);
  t('waitForFile sees it', step('files-and-timeouts', 1).ok === true, step('files-and-timeouts', 1));
  t('waitForFile times out', step('files-and-timeouts', 2).ok === false, step('files-and-timeouts', 2));
  s = step('files-and-timeouts', 3);
  t('hung fetch is cut by the step timeout', s.ok === false && /timed out/.test(s.error || '') && s.durationMs < 3000, s);
  t('steps go on after a timeout', step('files-and-timeouts', 5).ok === true && step('files-and-timeouts', 5).status === 200, step('files-and-timeouts', 5));
  t('unknown step kind is a step error', step('files-and-timeouts', 6).ok === false, step('files-and-timeouts', 6));

  // Cross-check the harness's preflight count with what the server saw.
  const seen = await (await fetch(`http://127.0.0.1:${apiPort}/__log`)).json();
  const serverPreflights = seen.filter((r) => r.method === 'OPTIONS').length;
  const harnessPreflights = results.flatMap((r) => r.steps).reduce((n, st) => n + (st.preflights ? st.preflights.length : 0), 0);
  t('preflights counted by the harness = OPTIONS seen by the server', serverPreflights === harnessPreflights, [serverPreflights, harnessPreflights]);

  // The exact texts.
  const lines = ['| case | corsError | failedParameter | console message |', '| --- | --- | --- | --- |'];
  for (const [name, [desc]] of Object.entries(CASES)) {
    s = step(name, 0);
    for (const m of (s.console || []).filter((m) => m.includes('CORS policy'))) {
      lines.push(`| ${desc} | ${s.corsError} | ${s.failedParameter ?? ''} | ${m.replaceAll('|', '\\|')} |`);
    }
  }
  process.stdout.write('\nCORS console messages:\n' + lines.join('\n') + '\n\n');
  if (messagesFile) writeFileSync(messagesFile, lines.join('\n') + '\n');

  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exit(failed ? 1 : 0);
}
