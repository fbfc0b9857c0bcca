// Chromium driver for browser/harness.mjs: Debian's chromium, driven by
// playwright-core over the Chrome DevTools Protocol. The interface is in
// browser/README.md ("Drivers").
//
// Raw CDP sessions give what Chromium alone reports: every preflight as its
// own request, the real wire headers (`*ExtraInfo` events) and the structured
// `corsErrorStatus` of a refused request.

import { chromium } from 'playwright-core';
import { errMsg, isFavicon, lowerKeys, sleep } from './util.mjs';

export const engine = 'chromium';

const BASE_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DEBUG_CDP = !!process.env.HARNESS_DEBUG_CDP;
const log = (...a) => process.stderr.write(`harness: ${a.join(' ')}\n`);

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

function cleanRequest(r) {
  const out = {};
  for (const [k, v] of Object.entries(r)) {
    if (v !== undefined && k !== 'step' && k !== 'wireRequestHeaders' && k !== 'wireResponseHeaders') out[k] = v;
  }
  out.wireHeaders = !!(r.wireRequestHeaders || r.wireResponseHeaders);
  return out;
}


/** Starts Chromium; see browser/README.md for the contract. */
export async function launch({ browserArgs = [], prefs = {} } = {}) {
  if (Object.keys(prefs).length) log('chromium takes no prefs: use browserArgs');
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  let browser;
  try {
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: [...BASE_ARGS, ...browserArgs],
      timeout: 30_000,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
  } catch (e) {
    throw new Error(`could not launch Chromium at ${executablePath}: ${errMsg(e)}`);
  }
  return {
    engine,
    version: browser.version(),
    executablePath,
    async newScenario({ contextOptions = {} } = {}) {
      // A fresh browser context (own network context): no preflight cache or
      // cookies from an earlier scenario.
      const context = await browser.newContext(contextOptions);
      try {
        const page = await context.newPage();
        const cdp = await context.newCDPSession(page);
        const rec = new Recorder(page, cdp);
        await rec.start();
        return session(context, page, rec);
      } catch (e) {
        await context.close().catch(() => {});
        throw e;
      }
    },
    close: () => browser.close(),
  };
}

function session(context, page, rec) {
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
    addCookies: (cookies) => context.addCookies(cookies),
    cookies: (urls) => context.cookies(urls),
    settle: (_step, _result, ms) => sleep(ms),
    requests: (step) => rec.requestsOf(step),
    console: () => rec.dedupedConsole(),
    close: () => context.close(),
  };
}
