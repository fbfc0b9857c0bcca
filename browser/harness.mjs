#!/usr/bin/env node
// corsgate browser harness: runs CORS scenarios in a real headless Chromium and
// prints one JSON object per scenario (JSONL) on stdout. Diagnostics go to stderr.
//
//   node browser/harness.mjs SCENARIOS.json      (or "-" to read stdin)
//
// Input: {"browserArgs": [...], "scenarios": [...]} or a bare array of scenarios.
// See browser/README.md for the full format. Exit status: 0 when every scenario
// was run (whatever the fetches did: judging is the caller's job), 2 on harness
// errors (bad input, Chromium would not start, whole-run timeout, signal).

import { chromium } from 'playwright-core';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const BASE_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DEFAULT_STEP_TIMEOUT_MS = 10_000;
const DEFAULT_SETTLE_MS = 150;
const DEFAULT_TOTAL_TIMEOUT_MS = 300_000;
const BODY_LIMIT = 2000;
const DEBUG_CDP = !!process.env.HARNESS_DEBUG_CDP;

const log = (...a) => process.stderr.write(`harness: ${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser = null;
let exiting = false;

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (!b) return;
  try {
    await withTimeout(b.close(), 10_000, 'closing Chromium');
  } catch (e) {
    log(`could not close Chromium cleanly: ${e.message}`);
  }
}

async function finish(code) {
  if (exiting) return;
  exiting = true;
  await closeBrowser();
  await new Promise((r) => process.stdout.write('', r));
  process.exit(code);
}

// Playwright decorates its errors with ANSI colours and a call log: keep the text.
function errMsg(e) {
  return String((e && e.message) || e).replace(/\u001b\[[0-9;]*m/g, '').trim();
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what}: timed out after ${ms} ms`), { timedOut: true })), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function readInput(file) {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  const input = JSON.parse(text);
  const top = Array.isArray(input) ? { scenarios: input } : input;
  if (!top || !Array.isArray(top.scenarios)) throw new Error('input must be an array of scenarios or {"scenarios": [...]}');
  const extra = [...(top.browserArgs || []), ...(top.extraArgs || [])];
  if (!extra.every((a) => typeof a === 'string')) throw new Error('browserArgs must be strings');
  return { ...top, extraArgs: extra };
}

function lowerKeys(h) {
  if (!h) return null;
  const out = {};
  for (const [k, v] of Object.entries(h)) {
    const key = k.toLowerCase();
    out[key] = key in out ? `${out[key]}\n${v}` : v;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Recorder: CDP + Playwright listeners for one page, attributing everything to
// the step that was running when it happened.

class Recorder {
  constructor(page, cdp) {
    this.page = page;
    this.cdp = cdp;
    this.step = null; // index of the running step; null while loading the page
    this.requests = new Map(); // requestId -> record
    this.order = [];
    this.console = [];
    this.pendingExtra = new Map(); // requestId -> {request?: {...}, response?: {...}}
  }

  rec(id) {
    let r = this.requests.get(id);
    if (!r) {
      r = { requestId: id, step: this.step, url: null, method: null, type: null, preflight: false };
      this.requests.set(id, r);
      this.order.push(r);
      const extra = this.pendingExtra.get(id);
      if (extra) {
        this.pendingExtra.delete(id);
        Object.assign(r, extra);
      }
    }
    return r;
  }

  // ExtraInfo events may come before or after the main event for the same id.
  extra(id, fields) {
    const r = this.requests.get(id);
    if (r) Object.assign(r, fields);
    else this.pendingExtra.set(id, { ...(this.pendingExtra.get(id) || {}), ...fields });
  }

  addConsole(via, level, source, text, url) {
    this.console.push({ step: this.step, via, level, source, text, url: url || undefined });
  }

  async start() {
    const on = (ev, fn) =>
      this.cdp.on(ev, (p) => {
        if (DEBUG_CDP) log(`cdp ${ev} ${JSON.stringify(p)}`);
        try {
          fn(p);
        } catch (e) {
          log(`error handling ${ev}: ${e.stack}`);
        }
      });

    on('Network.requestWillBeSent', (p) => {
      if (p.redirectResponse) {
        // Same requestId is reused across redirects: close the previous hop.
        const prev = this.requests.get(p.requestId);
        if (prev) {
          prev.status = p.redirectResponse.status;
          prev.statusText = p.redirectResponse.statusText;
          prev.responseHeaders = prev.responseHeaders || lowerKeys(p.redirectResponse.headers);
          prev.redirectedTo = p.request.url;
          this.requests.delete(p.requestId);
        }
      }
      const r = this.rec(p.requestId);
      r.url = p.request.url;
      r.method = p.request.method;
      r.type = p.type || null;
      r.initiator = p.initiator ? p.initiator.type : null;
      r.preflight = p.type === 'Preflight' || (p.initiator && p.initiator.type === 'preflight');
      if (r.preflight && p.initiator && p.initiator.requestId) r.preflightFor = p.initiator.requestId;
      r.requestHeaders = r.requestHeaders || lowerKeys(p.request.headers);
    });
    on('Network.requestWillBeSentExtraInfo', (p) => {
      this.extra(p.requestId, { requestHeaders: lowerKeys(p.headers), wireRequestHeaders: true });
    });
    on('Network.responseReceived', (p) => {
      const r = this.rec(p.requestId);
      if (p.type === 'Preflight') r.preflight = true;
      r.type = r.type || p.type;
      r.status = p.response.status;
      r.statusText = p.response.statusText;
      if (!r.wireResponseHeaders) r.responseHeaders = lowerKeys(p.response.headers);
      r.fromDiskCache = !!p.response.fromDiskCache;
      r.remoteAddress = p.response.remoteIPAddress ? `${p.response.remoteIPAddress}:${p.response.remotePort}` : undefined;
    });
    on('Network.responseReceivedExtraInfo', (p) => {
      const fields = { responseHeaders: lowerKeys(p.headers), wireResponseHeaders: true };
      if (p.statusCode) fields.status = p.statusCode;
      this.extra(p.requestId, fields);
    });
    on('Network.loadingFinished', (p) => {
      const r = this.requests.get(p.requestId);
      if (r) r.finished = true;
    });
    on('Network.loadingFailed', (p) => {
      const r = this.rec(p.requestId);
      r.type = r.type || p.type;
      r.errorText = p.errorText;
      if (p.canceled) r.canceled = true;
      if (p.blockedReason) r.blockedReason = p.blockedReason;
      if (p.corsErrorStatus) {
        r.corsError = p.corsErrorStatus.corsError;
        r.failedParameter = p.corsErrorStatus.failedParameter;
      }
    });
    on('Network.webSocketCreated', (p) => {
      const r = this.rec(p.requestId);
      r.url = p.url;
      r.method = 'GET';
      r.type = 'WebSocket';
    });
    on('Network.webSocketWillSendHandshakeRequest', (p) => {
      this.rec(p.requestId).requestHeaders = lowerKeys(p.request.headers);
    });
    on('Network.webSocketHandshakeResponseReceived', (p) => {
      const r = this.rec(p.requestId);
      r.status = p.response.status;
      r.statusText = p.response.statusText;
      r.responseHeaders = lowerKeys(p.response.headers);
    });
    on('Network.webSocketFrameError', (p) => {
      this.rec(p.requestId).errorText = p.errorMessage;
    });

    on('Log.entryAdded', (p) => {
      const e = p.entry;
      this.addConsole('log', e.level, e.source, e.text, e.url);
    });
    on('Runtime.consoleAPICalled', (p) => {
      const text = (p.args || [])
        .map((a) => ('value' in a ? (typeof a.value === 'string' ? a.value : JSON.stringify(a.value)) : a.unserializableValue || a.description || a.type))
        .join(' ');
      const level = p.type === 'warning' ? 'warning' : p.type;
      this.addConsole('console-api', level, 'console-api', text);
    });
    on('Runtime.exceptionThrown', (p) => {
      const d = p.exceptionDetails;
      const text = d.exception && d.exception.description ? `${d.text} ${d.exception.description}` : d.text;
      this.addConsole('exception', 'error', 'javascript', text, d.url);
    });

    this.page.on('console', (m) => this.addConsole('page', m.type(), 'playwright', m.text(), m.location().url));
    this.page.on('pageerror', (e) => this.addConsole('pageerror', 'error', 'javascript', e.message));

    await this.cdp.send('Network.enable', {});
    await this.cdp.send('Log.enable', {});
    await this.cdp.send('Runtime.enable', {});
  }

  // Playwright's page 'console' event repeats what the CDP Log/Runtime events
  // already gave us; drop each such duplicate (same step, same text).
  dedupedConsole() {
    const cdp = this.console.filter((c) => c.via !== 'page' && c.via !== 'pageerror');
    const used = new Set();
    const out = [];
    for (const c of this.console) {
      if (c.url && isFavicon(c.url)) continue;
      if (c.via === 'page') {
        const twin = cdp.find((d) => !used.has(d) && d.step === c.step && d.text === c.text);
        if (twin) {
          used.add(twin);
          continue;
        }
      } else if (c.via === 'pageerror') {
        if (cdp.some((d) => d.via === 'exception' && d.step === c.step && d.text.includes(c.text))) continue;
      }
      out.push(c);
    }
    return out;
  }

  requestsOf(step) {
    return this.order
      .filter((r) => r.step === step && !(r.initiator === 'other' && isFavicon(r.url)))
      .map(cleanRequest);
  }
}

// Chromium asks every page's origin for /favicon.ico on its own; that request
// (and a 404 console line for it) is noise for CORS scenarios, so it is dropped.
function isFavicon(url) {
  try {
    return new URL(url).pathname === '/favicon.ico';
  } catch {
    return false;
  }
}

function cleanRequest(r) {
  const out = {};
  for (const [k, v] of Object.entries(r)) {
    if (v !== undefined && k !== 'step' && k !== 'wireRequestHeaders' && k !== 'wireResponseHeaders') out[k] = v;
  }
  out.wireHeaders = !!(r.wireRequestHeaders || r.wireResponseHeaders);
  return out;
}

// ---------------------------------------------------------------------------
// In-page step implementations (serialised into the page by page.evaluate).

async function pageFetch({ url, init, readHeaders, timeoutMs, bodyLimit }) {
  const out = { ok: false, status: null, error: null, headers: {}, allHeaderNames: [], body: null };
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new DOMException(`step timed out after ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
  try {
    const resp = await fetch(url, { ...(init || {}), signal: ctrl.signal });
    out.ok = true;
    out.status = resp.status;
    out.statusText = resp.statusText;
    out.responseOk = resp.ok;
    out.type = resp.type;
    out.redirected = resp.redirected;
    out.url = resp.url;
    for (const h of readHeaders || []) out.headers[h] = resp.headers.get(h);
    out.allHeaderNames = [...resp.headers.keys()];
    try {
      const text = await resp.text();
      out.body = text.slice(0, bodyLimit);
      out.bodyLength = text.length;
    } catch (e) {
      out.bodyError = String((e && e.message) || e);
    }
  } catch (e) {
    out.error = String((e && e.message) || e);
    out.errorName = e && e.name;
    for (const h of readHeaders || []) out.headers[h] = null;
  } finally {
    clearTimeout(timer);
  }
  return out;
}

function pageXhr({ url, method, headers, withCredentials, body, readHeaders, timeoutMs, bodyLimit }) {
  return new Promise((resolve) => {
    const out = { ok: false, status: null, error: null, headers: {}, allHeaderNames: [], body: null };
    const x = new XMLHttpRequest();
    const fail = (msg) => () => {
      out.status = x.status;
      out.error = msg;
      for (const h of readHeaders || []) out.headers[h] = null;
      resolve(out);
    };
    try {
      x.open(method || 'GET', url, true);
      x.withCredentials = !!withCredentials;
      x.timeout = timeoutMs;
      for (const [k, v] of Object.entries(headers || {})) x.setRequestHeader(k, v);
    } catch (e) {
      out.error = String((e && e.message) || e);
      resolve(out);
      return;
    }
    x.onload = () => {
      out.ok = true;
      out.status = x.status;
      out.statusText = x.statusText;
      for (const h of readHeaders || []) out.headers[h] = x.getResponseHeader(h);
      out.allHeaderNames = x
        .getAllResponseHeaders()
        .trim()
        .split(/\r?\n/)
        .filter(Boolean)
        .map((l) => l.slice(0, l.indexOf(':')).trim().toLowerCase());
      const text = x.responseText || '';
      out.body = text.slice(0, bodyLimit);
      out.bodyLength = text.length;
      resolve(out);
    };
    x.onerror = fail('XMLHttpRequest network error');
    x.ontimeout = fail(`step timed out after ${timeoutMs} ms`);
    x.onabort = fail('XMLHttpRequest aborted');
    try {
      x.send(body === undefined ? null : body);
    } catch (e) {
      fail(String((e && e.message) || e))();
    }
  });
}

function pageWebSocket({ url, protocols, send, timeoutMs }) {
  return new Promise((resolve) => {
    const out = { opened: false, error: null };
    let ws;
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        ws.close(1000);
      } catch {}
      resolve(out);
    };
    const timer = setTimeout(() => {
      out.error = out.error || `step timed out after ${timeoutMs} ms`;
      end();
    }, timeoutMs);
    try {
      ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
    } catch (e) {
      out.error = String((e && e.message) || e);
      clearTimeout(timer);
      resolve(out);
      return;
    }
    ws.onopen = () => {
      out.opened = true;
      out.protocol = ws.protocol;
      if (send === undefined || send === null) end();
      else ws.send(send);
    };
    ws.onmessage = (ev) => {
      out.received = typeof ev.data === 'string' ? ev.data : '[binary]';
      end();
    };
    ws.onerror = () => {
      out.error = 'WebSocket error';
    };
    ws.onclose = (ev) => {
      out.closeCode = ev.code;
      out.closeReason = ev.reason;
      if (!out.opened && !out.error) out.error = 'WebSocket closed before opening';
      end();
    };
  });
}

// ---------------------------------------------------------------------------

async function runStep(context, page, step, timeoutMs) {
  const kind = step.kind;
  switch (kind) {
    case 'fetch':
      return page.evaluate(pageFetch, {
        url: step.url,
        init: step.init || {},
        readHeaders: step.readHeaders || [],
        timeoutMs,
        bodyLimit: BODY_LIMIT,
      });
    case 'xhr':
      return page.evaluate(pageXhr, {
        url: step.url,
        method: step.method,
        headers: step.headers || {},
        withCredentials: step.withCredentials,
        body: step.body,
        readHeaders: step.readHeaders || [],
        timeoutMs,
        bodyLimit: BODY_LIMIT,
      });
    case 'websocket':
      return page.evaluate(pageWebSocket, { url: step.url, protocols: step.protocols, send: step.send, timeoutMs });
    case 'cookie': {
      const c = { name: step.name, value: String(step.value ?? '') };
      if (step.url) c.url = step.url;
      else Object.assign(c, { domain: step.domain, path: step.path || '/' });
      for (const k of ['httpOnly', 'secure', 'sameSite', 'expires']) if (step[k] !== undefined) c[k] = step[k];
      await context.addCookies([c]);
      return { ok: true };
    }
    case 'getCookies':
      return { ok: true, cookies: await context.cookies(step.urls || step.url || []) };
    case 'wait':
      await sleep(step.ms || 0);
      return { ok: true };
    case 'waitForFile': {
      const start = Date.now();
      const limit = step.timeoutMs || 5000;
      while (!existsSync(step.path)) {
        if (Date.now() - start >= limit) return { ok: false, error: `file ${step.path} did not appear within ${limit} ms` };
        await sleep(25);
      }
      return { ok: true, waitedMs: Date.now() - start };
    }
    case 'signalFile':
      mkdirSync(dirname(step.path), { recursive: true });
      writeFileSync(step.path, '');
      return { ok: true };
    case 'goto': {
      const resp = await page.goto(step.url, { waitUntil: 'load', timeout: timeoutMs });
      return { ok: true, status: resp ? resp.status() : null };
    }
    case 'eval': {
      // Runs an expression (or async function body via an IIFE) in the page.
      const value = await page.evaluate(step.expression);
      return { ok: true, value };
    }
    default:
      return { ok: false, error: `unknown step kind ${JSON.stringify(kind)}` };
  }
}

async function runScenario(scenario, index, defaults) {
  const name = scenario.name || `scenario-${index}`;
  const result = { name, steps: [], console: [] };
  const settleMs = scenario.settleMs ?? defaults.settleMs;
  const context = await withTimeout(browser.newContext(scenario.contextOptions || {}), 15_000, 'creating browser context');
  let rec = null;
  try {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    rec = new Recorder(page, cdp);
    await rec.start();
    if (scenario.pageUrl) {
      const resp = await withTimeout(
        page.goto(scenario.pageUrl, { waitUntil: 'load', timeout: defaults.stepTimeoutMs }),
        defaults.stepTimeoutMs + 2000,
        `loading ${scenario.pageUrl}`,
      );
      result.pageStatus = resp ? resp.status() : null;
    }
    const steps = scenario.steps || [];
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      const timeoutMs = step.timeoutMs || scenario.stepTimeoutMs || defaults.stepTimeoutMs;
      rec.step = i;
      const started = Date.now();
      let out;
      try {
        out = await withTimeout(runStep(context, page, step, timeoutMs), timeoutMs + 2000, `step ${i} (${step.kind})`);
      } catch (e) {
        out = { ok: false, error: errMsg(e) };
        if (e.timedOut) out.timedOut = true;
      }
      out = { kind: step.kind, ...(step.name ? { name: step.name } : {}), ...out, durationMs: Date.now() - started };
      const settle = step.settleMs ?? settleMs;
      if (settle > 0 && !['wait', 'waitForFile', 'signalFile', 'cookie', 'getCookies'].includes(step.kind)) await sleep(settle);
      if (['fetch', 'xhr', 'websocket', 'goto', 'eval'].includes(step.kind)) {
        const requests = rec.requestsOf(i);
        out.requests = requests;
        out.preflights = requests.filter((r) => r.preflight);
        const failed = requests.find((r) => !r.preflight && r.corsError) || requests.find((r) => r.corsError);
        out.corsError = failed ? failed.corsError : null;
        out.failedParameter = failed ? failed.failedParameter ?? null : null;
      }
      out.console = rec.dedupedConsole().filter((c) => c.step === i).map((c) => c.text);
      result.steps.push(out);
    }
    rec.step = steps.length;
  } catch (e) {
    result.error = errMsg(e);
    log(`scenario ${JSON.stringify(name)}: ${result.error}`);
  } finally {
    if (rec) result.console = rec.dedupedConsole().map(({ url, ...c }) => (url ? { ...c, url } : c));
    try {
      await withTimeout(context.close(), 10_000, 'closing browser context');
    } catch (e) {
      log(`scenario ${JSON.stringify(name)}: ${e.message}`);
    }
  }
  return result;
}

async function main() {
  const file = process.argv[2];
  if (!file || process.argv.length > 3) {
    log('usage: node harness.mjs SCENARIOS.json   (or - for stdin)');
    return finish(2);
  }
  let input;
  try {
    input = readInput(file);
  } catch (e) {
    log(`bad input ${file}: ${e.message}`);
    return finish(2);
  }
  const totalTimeoutMs = Number(input.totalTimeoutMs || process.env.HARNESS_TOTAL_TIMEOUT_MS || DEFAULT_TOTAL_TIMEOUT_MS);
  const watchdog = setTimeout(() => {
    log(`whole run timed out after ${totalTimeoutMs} ms`);
    finish(2);
  }, totalTimeoutMs);
  watchdog.unref();

  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      log(`got ${sig}, closing Chromium`);
      finish(2);
    });
  }

  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const args = [...BASE_ARGS, ...input.extraArgs];
  try {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args,
      timeout: 30_000,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
  } catch (e) {
    log(`could not launch Chromium at ${executablePath}: ${errMsg(e)}`);
    return finish(2);
  }
  log(`Chromium ${browser.version()} (${executablePath}); ${input.scenarios.length} scenario(s)`);

  const defaults = {
    stepTimeoutMs: Number(input.stepTimeoutMs || DEFAULT_STEP_TIMEOUT_MS),
    settleMs: Number(input.settleMs ?? DEFAULT_SETTLE_MS),
  };
  for (let i = 0; i < input.scenarios.length; i++) {
    if (exiting) return;
    let result;
    try {
      result = await runScenario(input.scenarios[i], i, defaults);
    } catch (e) {
      // Could not even create a context: the browser is gone.
      log(`scenario ${i}: ${e.message}`);
      return finish(2);
    }
    process.stdout.write(JSON.stringify(result) + '\n');
  }
  return finish(0);
}

process.on('unhandledRejection', (e) => {
  log(`unhandled rejection: ${(e && e.stack) || e}`);
  finish(2);
});
main().catch((e) => {
  log(`harness error: ${(e && e.stack) || e}`);
  finish(2);
});
