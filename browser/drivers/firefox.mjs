// Firefox driver for browser/harness.mjs: Debian's firefox-esr, headless,
// driven by puppeteer-core over WebDriver BiDi (no geckodriver: Firefox speaks
// BiDi itself). The interface is in browser/README.md ("Drivers").
//
// What Firefox reports, and how it reaches the results:
// - Requests: BiDi `network.beforeRequestSent` / `responseStarted` /
//   `responseCompleted` / `fetchError`, per browsing context. A CORS preflight
//   is its own OPTIONS request there, sent with `Access-Control-Request-Method`
//   and without an initiator type (the page's own requests have `fetch`,
//   `xmlhttprequest`, ...). There is no structured CORS reason like Chromium's
//   `corsErrorStatus`: `corsError` is always null, the console text is the reason.
// - Console: Firefox logs "Cross-Origin Request Blocked: ..." as a
//   `javascript` error entry (BiDi `log.entryAdded`), not as a console-API
//   call; a refused preflight gives two entries, the reason and then
//   "(Reason: CORS request did not succeed). Status code: (null).".
// - A fresh user context (BiDi `browser.createUserContext`, puppeteer's
//   `createBrowserContext`) per scenario: no preflight cache or cookies leak.

import puppeteer from 'puppeteer-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errMsg, isFavicon, sleep } from './util.mjs';

export const engine = 'firefox';

// Quiet, deterministic start-up: no first-run pages, updates, telemetry or
// background connections that would show up as requests or console lines.
const BASE_PREFS = {
  'app.update.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'datareporting.policy.dataSubmissionEnabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'toolkit.telemetry.reportingpolicy.firstRun': false,
};
// How long a refused request's console entries may take to arrive after the
// page saw the error (Firefox logs them from the network process).
const MESSAGE_WAIT_MS = 2000;
const CORS_BLOCKED = 'Cross-Origin Request Blocked:';
const DID_NOT_SUCCEED = '(Reason: CORS request did not succeed)';

function headerMap(list) {
  if (!list) return null;
  const out = {};
  for (const h of list) {
    const key = h.name.toLowerCase();
    const value = h.value && h.value.type === 'string' ? h.value.value : h.value && h.value.value;
    out[key] = key in out ? `${out[key]}\n${value}` : value;
  }
  return out;
}

// BiDi's initiatorType / destination → the harness's request types.
function requestType(request, preflight) {
  if (preflight) return 'Other';
  switch (request.initiatorType) {
    case 'fetch':
      return 'Fetch';
    case 'xmlhttprequest':
      return 'XHR';
    default:
      break;
  }
  if (request.destination === 'document') return 'Document';
  return request.initiatorType || request.destination || 'Other';
}

class Recorder {
  constructor(contextId) {
    this.contextId = contextId;
    this.step = null;
    this.requests = new Map(); // BiDi request id -> the current hop's record
    this.order = [];
    this.console = [];
    this.waiters = new Set();
  }

  notify() {
    for (const w of this.waiters) w();
  }

  onRequest(p) {
    const req = p.request;
    const prev = this.requests.get(req.request);
    if (prev && prev.redirectCount !== p.redirectCount) {
      // BiDi keeps the request id across redirects: close the previous hop.
      prev.redirectedTo = req.url;
    } else if (prev) {
      prev.requestHeaders = headerMap(req.headers);
      return;
    }
    const requestHeaders = headerMap(req.headers);
    // BiDi reports a WebSocket handshake as the http(s) request it is.
    const websocket = (requestHeaders.upgrade || '').toLowerCase() === 'websocket';
    const preflight = req.method === 'OPTIONS' && !req.initiatorType && 'access-control-request-method' in requestHeaders;
    const r = {
      requestId: req.request,
      step: this.step,
      url: websocket ? req.url.replace(/^http/, 'ws') : req.url,
      method: req.method,
      type: websocket ? 'WebSocket' : requestType(req, preflight),
      preflight,
      initiator: preflight ? 'preflight' : p.initiator ? p.initiator.type : null,
      requestHeaders,
      redirectCount: p.redirectCount,
    };
    if (preflight) {
      // The request it is for: the latest request to the same URL not answered yet.
      const target = [...this.order].reverse().find((o) => !o.preflight && o.url === r.url && o.status == null && !o.errorText);
      if (target) r.preflightFor = target.requestId;
    }
    this.requests.set(req.request, r);
    this.order.push(r);
    this.notify();
  }

  onResponse(p) {
    const r = this.requests.get(p.request.request);
    if (!r) return;
    r.status = p.response.status;
    r.statusText = p.response.statusText;
    r.responseHeaders = headerMap(p.response.headers);
    r.requestHeaders = headerMap(p.request.headers) || r.requestHeaders;
    r.fromDiskCache = !!p.response.fromCache;
    this.notify();
  }

  onFetchError(p) {
    const r = this.requests.get(p.request.request);
    if (!r) return;
    r.errorText = p.errorText;
    this.notify();
  }

  onLog(p) {
    const source = p.type === 'console' ? 'console-api' : p.type;
    const via = p.type === 'console' ? 'console-api' : 'log';
    this.console.push({ step: this.step, via, level: p.level, source, text: p.text });
    this.notify();
  }

  requestsOf(step) {
    return this.order
      .filter((r) => r.step === step && !(isFavicon(r.url) && r.type !== 'Fetch' && r.type !== 'XHR'))
      .map(({ step: _s, redirectCount: _c, ...r }) => ({ ...r, corsError: null, wireHeaders: true }));
  }

  // Resolves when `done()` holds or after `ms`.
  until(done, ms) {
    return new Promise((resolve) => {
      if (done()) return resolve(true);
      const check = () => {
        if (done()) finish(true);
      };
      const timer = setTimeout(() => finish(false), ms);
      const finish = (v) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      this.waiters.add(check);
    });
  }
}

/** Starts Firefox; see browser/README.md for the contract. */
export async function launch({ browserArgs = [], prefs = {}, log = () => {} } = {}) {
  const executablePath = process.env.FIREFOX || '/usr/bin/firefox-esr';
  // Firefox writes caches and a profile lock under HOME: a scratch one of its
  // own, removed on close (puppeteer removes its temporary profile itself).
  const home = mkdtempSync(join(tmpdir(), 'corsgate-firefox-home-'));
  let browser;
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath,
      headless: true,
      args: browserArgs,
      extraPrefsFirefox: { ...BASE_PREFS, ...prefs },
      env: { ...process.env, HOME: home, MOZ_CRASHREPORTER_DISABLE: '1' },
      timeout: 30_000,
      protocolTimeout: 30_000,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
  } catch (e) {
    rmSync(home, { recursive: true, force: true });
    throw new Error(`could not launch Firefox at ${executablePath}: ${errMsg(e)}`);
  }
  // "firefox/153.8.0" → "153.8.0"
  const version = (await browser.version()).replace(/^firefox\//i, '');

  // Every BiDi event of the browser, routed to the scenario whose browsing
  // context it belongs to.
  const recorders = new Map(); // browsing context id -> Recorder
  const conn = browser.connection;
  const route = (context, fn) => {
    const rec = context && recorders.get(context);
    if (!rec) return;
    try {
      fn(rec);
    } catch (e) {
      log(`firefox: error handling an event: ${e.stack}`);
    }
  };
  conn.on('network.beforeRequestSent', (p) => route(p.context, (r) => r.onRequest(p)));
  conn.on('network.responseStarted', (p) => route(p.context, (r) => r.onResponse(p)));
  conn.on('network.responseCompleted', (p) => route(p.context, (r) => r.onResponse(p)));
  conn.on('network.fetchError', (p) => route(p.context, (r) => r.onFetchError(p)));
  conn.on('log.entryAdded', (p) => route(p.source && p.source.context, (r) => r.onLog(p)));

  return {
    engine,
    version,
    executablePath,
    async newScenario() {
      const context = await browser.createBrowserContext();
      try {
        const page = await context.newPage();
        const id = page.mainFrame()._id;
        const rec = new Recorder(id);
        recorders.set(id, rec);
        return session(context, page, rec, () => recorders.delete(id));
      } catch (e) {
        await context.close().catch(() => {});
        throw e;
      }
    },
    async close() {
      try {
        await browser.close();
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    },
  };
}

function session(context, page, rec, forget) {
  return {
    setStep(index) {
      rec.step = index;
    },
    async goto(url, timeoutMs) {
      const resp = await page.goto(url, { waitUntil: 'load', timeout: timeoutMs });
      return { status: resp ? resp.status() : null };
    },
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    evaluateExpression: (expression) => page.evaluate(expression),
    screenshot: (path, fullPage) => page.screenshot({ path, fullPage }),
    addCookies: (cookies) => page.setCookie(...cookies),
    cookies: (urls) => page.cookies(...urls),
    async settle(step, result, ms) {
      await sleep(ms);
      // A refused request's console entries come from the network process,
      // after the page already saw the error: wait for them (bounded), so they
      // are attributed to this step. Two entries when a preflight failed.
      if (!['fetch', 'xhr'].includes(result.kind) || result.ok) return;
      const mine = () => rec.console.filter((c) => c.step === step && c.text.startsWith(CORS_BLOCKED));
      const preflightFailed = () => rec.requestsOf(step).some((r) => r.preflight && r.errorText);
      await rec.until(() => {
        const entries = mine();
        if (!entries.length) return false;
        return !preflightFailed() || entries.some((c) => c.text.includes(DID_NOT_SUCCEED));
      }, MESSAGE_WAIT_MS);
    },
    requests: (step) => rec.requestsOf(step),
    console: () => rec.console.filter((c) => !(c.url && isFavicon(c.url))),
    async close() {
      forget();
      await context.close();
    },
  };
}
