// WebKit driver for browser/harness.mjs: Debian's WebKitGTK MiniBrowser
// (package libwebkit2gtk-4.1-0, the engine of webkit2gtk-driver) under its own
// Xvfb. The interface is in browser/README.md ("Drivers").
//
// Why no WebDriver: WebKitWebDriver runs MiniBrowser with --automation, and
// that web view ignores --enable-write-console-messages-to-stdout, which is the
// only place WebKitGTK prints its CORS messages ("Origin … is not allowed by
// Access-Control-Allow-Origin", "Fetch API cannot load … due to access control
// checks."); it has no BiDi and no network events either. So MiniBrowser runs
// without a driver, and this file gives it everything a driver would:
//
//  - MiniBrowser's console lines (printed on its stderr, unbuffered) are read
//    as they come and attributed to steps by marker lines the page prints
//    (`console.log` of a fresh id) before every answer it sends;
//  - every request goes through a recording HTTP proxy of ours on 127.0.0.1
//    (`--proxy`): it sees the wire requests exactly as WebKit sent them,
//    preflights included, with the answers as WebKit got them; it resolves
//    `localhost` and `*.localhost` to 127.0.0.1 and refuses anything that is
//    not loopback;
//  - the proxy appends a control script to every top-level HTML document it
//    passes through; the script asks the proxy for the next command (run a
//    function or an expression, navigate, print a marker) on the page's own
//    origin under /__corsgate_harness__/, which the proxy answers itself:
//    same-origin, so no CORS of its own and nothing that reaches a server.
//
// Isolation: a MiniBrowser process has one cookie jar, one preflight cache and
// one HTTP cache, and starting one costs one to three seconds of two busy cores
// (three processes). So a browser runs the next scenario too when nothing in it
// can reach that scenario: no cookie was ever set or sent in it, and none of
// the scenario's URLs was answered in it (documents answered with no-store
// aside), so no cached preflight or response can apply; the proxy sees all
// of that. Any other scenario (and every one with `eval` or `cookie` steps,
// or after a step that timed out) gets a fresh process with a fresh HOME,
// started ahead of time while the current one runs.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFavicon, sleep } from './util.mjs';

export const engine = 'webkit';

const MINIBROWSER = process.env.MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const XVFB = process.env.XVFB || '/usr/bin/Xvfb';
const CONTROL = '/__corsgate_harness__/';
// The host an opaque-origin (data:) page reaches the proxy's control endpoint on.
const CONTROL_HOST = 'corsgate-harness.invalid';
const READY_TIMEOUT_MS = 30_000;
// How many browsers start ahead of the scenario that needs them: start-up is
// most of a scenario's time, and waits on its subprocesses as much as on CPU.
const PRELAUNCH = Math.max(1, Number(process.env.HARNESS_WEBKIT_PRELAUNCH || 1));
const MARK = 'corsgate-harness-mark ';
const DEBUG = !!process.env.HARNESS_DEBUG_WEBKIT;
const log = (...a) => process.stderr.write(`harness: webkit: ${a.join(' ')}\n`);

// Every process this driver started and that still runs: if the harness exits
// without closing the driver (an exception, process.exit), they go with it.
// (A SIGKILL of the harness leaves them; the runner's own time limit closes
// the driver well before the suite's kill.)
const running = new Set();
function track(child) {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

// What MiniBrowser prints for a console message (WebKit's
// PageConsoleClient): `[URL:LINE:COLUMN: ]CONSOLE [SOURCE ]LEVEL TEXT`.
const CONSOLE_LINE = /^(?:(\S+):(\d+):(\d+): )?CONSOLE (?:([A-Z][A-Z ]*?) )?(LOG|INFO|WARN|ERROR|DEBUG) (.*)$/;

/** Parses one line of MiniBrowser's output; null when it is not a console message. */
export function parseConsoleLine(line) {
  const m = CONSOLE_LINE.exec(line);
  if (!m) return null;
  const [, url, , , source, level, text] = m;
  const out = {
    level: level === 'WARN' ? 'warning' : level.toLowerCase(),
    source: source ? source.toLowerCase() : 'console-api',
    text,
  };
  if (url) out.url = url;
  return out;
}

// ---------------------------------------------------------------------------
// The control script, in every page the harness drives. Self-contained: it is
// served as text.

function controlScript() {
  const base = (location.origin === 'null' ? 'http://corsgate-harness.invalid' : location.origin) + '/__corsgate_harness__/';
  let n = 0;
  const mark = () => {
    const id = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}.${n++}`;
    console.log('corsgate-harness-mark ' + id);
    return id;
  };
  async function run(cmd) {
    try {
      switch (cmd.type) {
        case 'call':
          return { ok: true, value: await (0, eval)(`(${cmd.fn})`)(cmd.arg) };
        case 'eval':
          return { ok: true, value: await (0, eval)(cmd.expression) };
        case 'navigate':
          // No new history entry: window.close() stays allowed.
          location.replace(cmd.url);
          return null;
        case 'close':
          window.close();
          return null;
        default:
          return { ok: true };
      }
    } catch (e) {
      return { ok: false, error: String((e && e.message) || e) };
    }
  }
  async function loop() {
    let reply = { hello: location.href };
    for (let i = 0; i < 100000; i++) {
      reply.mark = mark();
      let cmd;
      try {
        const r = await fetch(base + 'next', {
          method: 'POST',
          headers: { 'content-type': 'text/plain' },
          body: JSON.stringify(reply),
          credentials: 'omit',
          cache: 'no-store',
        });
        cmd = await r.json();
      } catch {
        return; // navigating away, or the harness is gone
      }
      const result = await run(cmd);
      if (!result) return; // navigating: the next page says hello
      reply = { id: cmd.id, ...result };
    }
  }
  loop();
}

const CONTROL_JS = `(${controlScript})();\n`;
const controlTag = (origin) => `<script src="${origin}${CONTROL}control.js"></script>`;

// ---------------------------------------------------------------------------
// Xvfb: one per harness run, on a display it picks itself (-displayfd), so
// runs beside each other never race for a number.

async function startXvfb() {
  const x = track(
    spawn(XVFB, ['-displayfd', '3', '-nolisten', 'tcp', '-screen', '0', '1280x800x24'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    }),
  );
  let stderr = '';
  x.stderr.on('data', (d) => (stderr += d));
  let early;
  const display = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`Xvfb did not start within 10 s: ${stderr}`)), 10_000);
    x.stdio[3].on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(`:${out.trim()}`);
      }
    });
    x.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${XVFB}: ${e.message}`));
    });
    early = (code) => {
      clearTimeout(timer);
      reject(new Error(`Xvfb exited (${code}): ${stderr}`));
    };
    x.once('exit', early);
  });
  x.removeListener('exit', early);
  return { process: x, display };
}

async function stop(child, what) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!done) {
    log(`${what} (pid ${child.pid}) ignored SIGTERM; killing it`);
    child.kill('SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  }
}

// ---------------------------------------------------------------------------
// The recording proxy of one browser.

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

// Where the proxy connects for a host the page named: loopback only.
function loopbackAddress(hostname) {
  const h = hostname.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return '127.0.0.1';
  if (LOOPBACK_V4.test(h)) return h;
  if (h === '[::1]' || h === '::1') return '::1';
  return null;
}

function headerMap(raw) {
  const out = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (k === 'proxy-connection' || k === 'proxy-authorization') continue;
    out[k] = k in out ? `${out[k]}\n${raw[i + 1]}` : raw[i + 1];
  }
  return out;
}

function withoutProxyHeaders(raw) {
  const out = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (k === 'proxy-connection' || k === 'proxy-authorization') continue;
    out.push(raw[i], raw[i + 1]);
  }
  return out;
}

class Browser {
  constructor(display, id) {
    this.display = display;
    this.id = id;
    this.step = null;
    this.requests = [];
    this.console = [];
    this.marks = new Set(); // marker ids seen on stderr
    this.markWaiters = new Map(); // id -> resolve
    this.pending = null; // {id, resolve, reject} of the command the page runs
    this.held = null; // the page's POST /next, waiting for a command
    this.queue = []; // commands for the page not yet sent
    this.helloWaiters = [];
    this.seq = 0;
    this.lastDocument = null;
    this.exited = false;
    this.output = '';
    // What an earlier scenario in this browser may have left behind (see
    // mayRun): URLs whose answers WebKit may have cached, and whether its
    // cookie jar may hold anything.
    this.cached = new Set();
    this.dirty = false;
  }

  // Whether `scenario` can run in this browser as in a fresh one: nothing
  // in the cookie jar (no cookie was ever set or sent here), and none of the
  // scenario's URLs answered here before, except documents answered with
  // no-store; so no preflight-cache or HTTP-cache entry can apply to it.
  mayRun(scenario) {
    if (this.dirty || this.failure || this.exited || !this.held) return false;
    const urls = [scenario.pageUrl];
    for (const step of scenario.steps || []) {
      // eval can do anything, cookies leave the jar dirty: a fresh browser.
      if (['eval', 'cookie'].includes(step.kind)) return false;
      urls.push(step.url, ...(step.urls || []));
    }
    return urls.filter(Boolean).every((u) => !this.cached.has(u));
  }

  // Empties the records for the next scenario, once the page has printed
  // everything the last one caused.
  async reset() {
    await this.command({ type: 'mark' });
    this.requests = [];
    this.console = [];
  }

  async start() {
    this.home = mkdtempSync(join(tmpdir(), 'corsgate-webkit-'));
    this.proxy = http.createServer((req, res) => this.onRequest(req, res));
    this.proxy.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    this.proxy.on('connect', (req, socket) => socket.end('HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\n\r\n'));
    this.proxy.on('clientError', (_e, socket) => socket.destroy());
    await new Promise((resolve, reject) => {
      this.proxy.once('error', reject);
      this.proxy.listen(0, '127.0.0.1', resolve);
    });
    const port = this.proxy.address().port;
    const hello = this.waitHello();
    this.child = track(spawn(
      MINIBROWSER,
      [
        '--enable-write-console-messages-to-stdout=true',
        // goto() of a data: URL is the harness's navigation, not the page's.
        '--allow-top-navigation-to-data-urls=true',
        `--proxy=http://127.0.0.1:${port}`,
        `http://${CONTROL_HOST}${CONTROL}park`,
      ],
      {
        env: {
          ...process.env,
          DISPLAY: this.display,
          HOME: this.home,
          XDG_CONFIG_HOME: join(this.home, '.config'),
          XDG_CACHE_HOME: join(this.home, '.cache'),
          XDG_DATA_HOME: join(this.home, '.local/share'),
          NO_AT_BRIDGE: '1',
          // Blank pages need no accelerated compositing, which under Xvfb
          // would be OpenGL in software on the CPU the tests share.
          WEBKIT_DISABLE_COMPOSITING_MODE: '1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ));
    this.child.on('error', (e) => this.fail(new Error(`could not start ${MINIBROWSER}: ${e.message}`)));
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      this.fail(new Error(`MiniBrowser exited (${signal || code}): ${this.output.slice(-2000)}`));
    });
    let partial = '';
    const onData = (d) => {
      partial += d;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        this.onLine(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
      }
    };
    this.child.stdout.on('data', onData);
    this.child.stderr.on('data', onData);
    await hello;
  }

  fail(err) {
    this.failure = this.failure || err;
    if (this.pending) this.pending.reject(err);
    this.pending = null;
    for (const w of this.helloWaiters.splice(0)) w.reject(err);
  }

  onLine(line) {
    if (DEBUG) log(`[${this.id}] ${line}`);
    const c = parseConsoleLine(line);
    if (!c) {
      if (this.output.length < 100_000) this.output += line + '\n';
      return;
    }
    if (c.source === 'console-api' && c.text.startsWith(MARK)) {
      const id = c.text.slice(MARK.length);
      this.marks.add(id);
      const w = this.markWaiters.get(id);
      if (w) {
        this.markWaiters.delete(id);
        w();
      }
      return;
    }
    if (c.url && isFavicon(c.url)) return;
    this.console.push({ step: this.step, via: 'stderr', ...c });
  }

  waitMark(id) {
    if (this.marks.has(id)) return Promise.resolve();
    return new Promise((r) => this.markWaiters.set(id, r));
  }

  waitHello() {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const timer = setTimeout(
        () => reject(new Error(`MiniBrowser's page did not load within ${READY_TIMEOUT_MS} ms; its output: ${this.output.slice(-1000)}`)),
        READY_TIMEOUT_MS,
      );
      this.helloWaiters.push({
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  // Runs one command in the page; resolves with its result once the page's
  // marker line has been read too, so every console line it printed before
  // answering belongs to the step that was running.
  command(cmd) {
    if (this.failure) return Promise.reject(this.failure);
    // A command still running (its step timed out): the page is in an
    // unknown state, not one to hand to another scenario.
    if (this.pending) this.dirty = true;
    const id = ++this.seq;
    const done = new Promise((resolve, reject) => (this.pending = { id, resolve, reject }));
    this.queue.push({ id, ...cmd });
    this.flush();
    return done;
  }

  flush() {
    if (!this.held || !this.queue.length) return;
    const res = this.held;
    this.held = null;
    const body = JSON.stringify(this.queue.shift());
    res.writeHead(200, this.controlHeaders({ 'content-type': 'application/json' }));
    res.end(body);
  }

  controlHeaders(extra) {
    // An opaque-origin page reaches us cross-origin.
    return { 'cache-control': 'no-store', 'access-control-allow-origin': '*', ...extra };
  }

  async onControl(req, res, url) {
    const what = url.pathname.slice(CONTROL.length);
    if (what === 'control.js') {
      res.writeHead(200, this.controlHeaders({ 'content-type': 'text/javascript' }));
      return res.end(CONTROL_JS);
    }
    if (what === 'park') {
      res.writeHead(200, this.controlHeaders({ 'content-type': 'text/html; charset=utf-8' }));
      return res.end(`<!doctype html><title>corsgate harness</title>${controlTag('')}`);
    }
    if (what === 'cookie') return this.onCookie(req, res, url);
    if (what !== 'next' || req.method !== 'POST') {
      res.writeHead(404, this.controlHeaders());
      return res.end();
    }
    let body = '';
    for await (const chunk of req) body += chunk;
    let reply;
    try {
      reply = JSON.parse(body);
    } catch {
      res.writeHead(400, this.controlHeaders());
      return res.end();
    }
    await this.waitMark(reply.mark);
    if (this.held) this.held.destroy();
    this.held = res;
    res.on('close', () => {
      if (this.held === res) this.held = null;
    });
    if (reply.hello !== undefined) {
      this.page = reply.hello;
      for (const w of this.helloWaiters.splice(0)) w.resolve(reply.hello);
    } else if (this.pending && reply.id === this.pending.id) {
      const p = this.pending;
      this.pending = null;
      if (reply.ok) p.resolve(reply.value);
      else p.reject(new Error(reply.error));
    }
    this.flush();
  }

  // A top-level navigation to COOKIE_ORIGIN/__corsgate_harness__/cookie sets
  // (`set=` a Set-Cookie line) and reads (the Cookie header the browser sent)
  // cookies as the origin's own server would. The answer is a control page: a
  // redirect back could not return to a data: page.
  onCookie(req, res, url) {
    const set = url.searchParams.get('set');
    this.cookieSeen = req.headers.cookie || '';
    const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' };
    if (set) headers['set-cookie'] = set;
    res.writeHead(200, headers);
    res.end(`<!doctype html><title>corsgate harness</title>${controlTag('')}`);
  }

  onRequest(req, res) {
    let url;
    try {
      url = new URL(req.url);
    } catch {
      res.writeHead(400);
      return res.end();
    }
    if (url.pathname.startsWith(CONTROL)) return this.onControl(req, res, url).catch((e) => log(`control: ${e.stack}`));
    const address = loopbackAddress(url.hostname);
    if (!address || url.protocol !== 'http:') {
      // Never the real network.
      res.writeHead(502, { 'content-type': 'text/plain' });
      return res.end('the harness proxy only reaches loopback');
    }
    const record = {
      url: req.url,
      method: req.method,
      type: req.headers['sec-fetch-dest'] || null,
      preflight: req.method === 'OPTIONS' && 'access-control-request-method' in req.headers,
      requestHeaders: headerMap(req.rawHeaders),
      wireHeaders: true,
    };
    const step = this.step;
    this.requests.push({ step, record });
    const document = req.headers['sec-fetch-dest'] === 'document';
    if ('cookie' in req.headers) this.dirty = true;
    const upstream = http.request({
      host: address,
      port: url.port || 80,
      method: req.method,
      path: url.pathname + url.search,
      headers: withoutProxyHeaders(req.rawHeaders),
      setHost: false,
      agent: false,
    });
    upstream.on('response', (up) => {
      record.status = up.statusCode;
      record.statusText = up.statusMessage;
      if ('set-cookie' in up.headers) this.dirty = true;
      if (!(document && /no-store/i.test(up.headers['cache-control'] || ''))) this.cached.add(req.url);
      record.responseHeaders = headerMap(up.rawHeaders);
      if (up.headers.location && up.statusCode >= 300 && up.statusCode < 400) {
        record.redirectedTo = new URL(up.headers.location, req.url).href;
      }
      const html = /^text\/html/i.test(up.headers['content-type'] || '') && !up.headers['content-encoding'];
      if (document) this.lastDocument = record;
      if (document && html) {
        // The control script goes at the end of the document.
        const chunks = [];
        up.on('data', (c) => chunks.push(c));
        up.on('end', () => {
          const body = Buffer.concat([...chunks, Buffer.from(controlTag(''))]);
          const raw = [];
          for (let i = 0; i + 1 < up.rawHeaders.length; i += 2) {
            const k = up.rawHeaders[i].toLowerCase();
            if (k !== 'content-length' && k !== 'transfer-encoding') raw.push(up.rawHeaders[i], up.rawHeaders[i + 1]);
          }
          raw.push('content-length', String(body.length));
          res.writeHead(up.statusCode, up.statusMessage, raw);
          res.end(body);
        });
        return;
      }
      res.writeHead(up.statusCode, up.statusMessage, up.rawHeaders);
      up.pipe(res);
    });
    upstream.on('error', (e) => {
      // The browser sees the connection fail, as it would without the proxy.
      record.errorText = e.code || e.message;
      res.destroy();
    });
    req.pipe(upstream);
  }

  // A WebSocket handshake (sent to the proxy as an absolute-URI GET with
  // Upgrade): recorded, then spliced to the server.
  onUpgrade(req, socket, head) {
    let url;
    try {
      url = new URL(req.url);
    } catch {
      return socket.destroy();
    }
    const address = loopbackAddress(url.hostname);
    if (!address) return socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
    const record = {
      url: req.url,
      method: 'GET',
      type: 'WebSocket',
      preflight: false,
      requestHeaders: headerMap(req.rawHeaders),
      wireHeaders: true,
    };
    this.requests.push({ step: this.step, record });
    this.cached.add(req.url);
    if ('cookie' in req.headers) this.dirty = true;
    const port = Number(url.port || 80);
    const up = net.connect({ host: address, port });
    up.on('error', (e) => {
      record.errorText = e.code || e.message;
      socket.destroy();
    });
    socket.on('error', () => up.destroy());
    up.on('connect', () => {
      const raw = withoutProxyHeaders(req.rawHeaders);
      let text = `GET ${url.pathname}${url.search} HTTP/1.1\r\n`;
      for (let i = 0; i + 1 < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
      up.write(text + '\r\n');
      if (head && head.length) up.write(head);
      let buffered = Buffer.alloc(0);
      const onHead = (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0 && buffered.length < 65536) return;
        up.off('data', onHead);
        const lines = buffered.subarray(0, end < 0 ? buffered.length : end).toString('latin1').split('\r\n');
        const status = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] || '');
        if (status) {
          record.status = Number(status[1]);
          record.statusText = status[2];
        }
        const rawHeaders = [];
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          if (i > 0) rawHeaders.push(l.slice(0, i).trim(), l.slice(i + 1).trim());
        }
        record.responseHeaders = headerMap(rawHeaders);
        socket.write(buffered);
        up.pipe(socket);
        socket.pipe(up);
      };
      up.on('data', onHead);
    });
  }

  requestsOf(step) {
    return this.requests
      .filter((r) => r.step === step && !(r.record.type === 'image' && isFavicon(r.record.url)) && !isFavicon(r.record.url))
      .map((r) => ({ ...r.record }));
  }

  async close() {
    // Closing its only window makes MiniBrowser quit and reap its web and
    // network processes; a signal would leave them to an init that may not.
    if (this.child && !this.exited && this.held) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.queue.push({ id: ++this.seq, type: 'close' });
      this.flush();
      await Promise.race([exited, sleep(5000)]);
    }
    await stop(this.child, 'MiniBrowser');
    for (const w of this.markWaiters.values()) w();
    this.markWaiters.clear();
    if (this.held) this.held.destroy();
    this.proxy.closeAllConnections();
    await new Promise((r) => this.proxy.close(r));
    try {
      rmSync(this.home, { recursive: true, force: true });
    } catch (e) {
      log(`could not remove ${this.home}: ${e.message}`);
    }
  }
}

// The URL a goto() loads: a data: HTML page gets the control script inline,
// reaching the proxy on CONTROL_HOST (its origin is opaque).
function withControl(url) {
  if (!/^data:text\/html[,;]/i.test(url) || url.includes('__corsgate_harness__')) return url;
  return url + encodeURIComponent(controlTag(`http://${CONTROL_HOST}`));
}

function session(b) {
  const navigate = async (url) => {
    const hello = b.waitHello();
    b.lastDocument = null;
    b.command({ type: 'navigate', url: withControl(url) }).catch(() => {});
    // The navigation's own command never answers: the next page says hello.
    b.pending = null;
    await hello;
    return b.lastDocument;
  };
  // Top-level navigation to `origin` and back: cookies as that site's server.
  const viaOrigin = async (origin, query) => {
    const back = b.page;
    const target = new URL(`${CONTROL}cookie`, origin);
    for (const [k, v] of Object.entries(query)) target.searchParams.set(k, v);
    b.cookieSeen = null;
    await navigate(target.href);
    const seen = b.cookieSeen;
    await navigate(back);
    return seen;
  };
  return {
    setStep(index) {
      b.step = index;
    },
    async goto(url) {
      const doc = await navigate(url);
      return { status: doc ? doc.status : url.startsWith('data:') ? 200 : null };
    },
    evaluate: (fn, arg) => b.command({ type: 'call', fn: String(fn), arg }),
    evaluateExpression: (expression) => b.command({ type: 'eval', expression }),
    async addCookies(cookies) {
      b.dirty = true;
      for (const c of cookies) {
        let origin;
        let path = c.path || '/';
        if (c.url) {
          const u = new URL(c.url);
          origin = u.origin;
          if (!c.path) path = u.pathname.slice(0, u.pathname.lastIndexOf('/') + 1) || '/';
        } else {
          origin = `${c.secure ? 'https' : 'http'}://${String(c.domain).replace(/^\./, '')}`;
        }
        let line = `${c.name}=${c.value}; Path=${path}`;
        if (c.domain) line += `; Domain=${c.domain}`;
        if (c.httpOnly) line += '; HttpOnly';
        if (c.secure) line += '; Secure';
        if (c.sameSite) line += `; SameSite=${c.sameSite}`;
        if (c.expires && c.expires > 0) line += `; Expires=${new Date(c.expires * 1000).toUTCString()}`;
        await viaOrigin(origin, { set: line });
      }
    },
    // The cookies WebKit sends to each URL (names and values: what the
    // Cookie header carries; HttpOnly ones included).
    async cookies(urls) {
      const out = [];
      for (const url of urls) {
        const seen = await viaOrigin(new URL(url).origin, {});
        for (const pair of (seen || '').split(';')) {
          const i = pair.indexOf('=');
          if (i > 0) out.push({ name: pair.slice(0, i).trim(), value: pair.slice(i + 1).trim(), url });
        }
      }
      return out;
    },
    async settle(_step, _result, ms) {
      await sleep(ms);
      // A marker after the pause: every console line printed before it has
      // been read, and is the step's.
      await b.command({ type: 'mark' });
    },
    // MiniBrowser without WebDriver has no way to hand out its pixels.
    async screenshot() {
      throw new Error('the WebKit driver takes no screenshots (MiniBrowser without WebDriver has no API for it)');
    },
    requests: (step) => b.requestsOf(step),
    console: () => b.console.map((c) => ({ ...c })),
    close: () => b.close(),
  };
}

function version(display) {
  try {
    return execFileSync(MINIBROWSER, ['--version'], { encoding: 'utf8', env: { ...process.env, DISPLAY: display } }).trim();
  } catch {
    return 'WebKitGTK (version unknown)';
  }
}

/** Starts Xvfb and the first MiniBrowsers; see browser/README.md for the contract. */
export async function launch({ browserArgs = [], prefs = {} } = {}) {
  if (browserArgs.length) log('webkit takes no browserArgs');
  if (Object.keys(prefs).length) log('webkit takes no prefs');
  const xvfb = await startXvfb();
  let count = 0;
  const start = () => {
    const b = new Browser(xvfb.display, ++count);
    const ready = b.start().then(
      () => b,
      async (e) => {
        await b.close().catch(() => {});
        throw e;
      },
    );
    ready.catch(() => {});
    return ready;
  };
  const warm = [];
  const closing = new Set();
  const retire = (b) => {
    const done = b.close().catch((e) => log(`closing MiniBrowser ${b.id}: ${e.message}`));
    closing.add(done);
    done.finally(() => closing.delete(done));
  };
  const topUp = () => {
    while (warm.length < PRELAUNCH) warm.push(start());
  };
  topUp();
  let current = null; // the browser of the last scenario, while it may be reused
  let launched = 0;
  let reused = 0;
  return {
    engine,
    version: version(xvfb.display),
    executablePath: MINIBROWSER,
    display: xvfb.display,
    async newScenario({ scenario } = {}) {
      let b = current;
      current = null;
      if (b && scenario && b.mayRun(scenario)) {
        await b.reset();
        reused++;
      } else {
        if (b) retire(b);
        if (!warm.length) topUp();
        try {
          b = await warm.shift();
        } catch (e) {
          // One more try: on two cores shared with other work a start-up can
          // stall past the limit once in a while.
          log(`${e.message}; starting another MiniBrowser`);
          b = await start();
        }
        topUp();
        launched++;
      }
      const s = session(b);
      // The runner goes on with the next scenario while this browser is
      // either kept for it or exits.
      s.close = () => {
        if (scenario && !b.failure) current = b;
        else retire(b);
        return Promise.resolve();
      };
      return s;
    },
    stats: () => ({ launched, reused }),
    async close() {
      log(`${launched} browser(s) for ${launched + reused} scenario(s)`);
      if (current) retire(current);
      current = null;
      const left = await Promise.all(warm.splice(0).map((w) => w.catch(() => null)));
      await Promise.all(left.filter(Boolean).map((b) => b.close()));
      await Promise.all([...closing]);
      await stop(xvfb.process, 'Xvfb');
    },
  };
}
