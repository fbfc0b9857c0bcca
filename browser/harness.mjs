#!/usr/bin/env node
// corsgate browser harness: runs CORS scenarios in one real headless browser
// engine and prints one JSON object per scenario (JSONL) on stdout.
// Diagnostics go to stderr.
//
//   node browser/harness.mjs SCENARIOS.json      (or "-" to read stdin)
//
// This file is the engine-neutral runner: it reads the input, runs the
// scenarios one after another with their time limits and writes the results.
// Everything that talks to a browser is a driver in drivers/ENGINE.mjs,
// written against the interface in browser/README.md ("Drivers").
//
// Input: {"engine": "chromium"|"firefox"|"webkit", "browserArgs": [...],
// "prefs": {...}, "scenarios": [...]} or a bare array of scenarios (Chromium).
// See browser/README.md for the full format. Exit status: 0 when every scenario
// was run (whatever the fetches did: judging is the caller's job), 2 on harness
// errors (bad input, the browser would not start, whole-run timeout, signal).

import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pageFetch, pageXhr, pageWebSocket } from './page-steps.mjs';
import { errMsg, sleep, withTimeout } from './drivers/util.mjs';

const ENGINES = ['chromium', 'firefox', 'webkit'];
const DEFAULT_STEP_TIMEOUT_MS = 10_000;
const DEFAULT_SETTLE_MS = 150;
const DEFAULT_TOTAL_TIMEOUT_MS = 300_000;
const BODY_LIMIT = 2000;
// Steps that go over the network: their requests and the step-level
// `preflights` / `corsError` are reported.
const NETWORK_STEPS = ['fetch', 'xhr', 'websocket', 'goto', 'eval'];
// Steps after which nothing can arrive late: no settle pause.
const NO_SETTLE_STEPS = ['wait', 'waitForFile', 'signalFile', 'cookie', 'getCookies'];

const log = (...a) => process.stderr.write(`harness: ${a.join(' ')}\n`);

let browser = null;
let exiting = false;

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (!b) return;
  try {
    await withTimeout(b.close(), 10_000, `closing ${b.engine}`);
  } catch (e) {
    log(`could not close ${b.engine} cleanly: ${e.message}`);
  }
}

async function finish(code) {
  if (exiting) return;
  exiting = true;
  await closeBrowser();
  await new Promise((r) => process.stdout.write('', r));
  process.exit(code);
}

function readInput(file) {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  const input = JSON.parse(text);
  const top = Array.isArray(input) ? { scenarios: input } : input;
  if (!top || !Array.isArray(top.scenarios)) throw new Error('input must be an array of scenarios or {"scenarios": [...]}');
  const extra = [...(top.browserArgs || []), ...(top.extraArgs || [])];
  if (!extra.every((a) => typeof a === 'string')) throw new Error('browserArgs must be strings');
  const engine = top.engine ?? 'chromium';
  if (!ENGINES.includes(engine)) throw new Error(`engine ${JSON.stringify(engine)} is not one of ${ENGINES.join(', ')}`);
  const prefs = top.prefs ?? {};
  if (typeof prefs !== 'object' || Array.isArray(prefs)) throw new Error('prefs must be an object of preference names to values');
  return { ...top, engine, prefs, extraArgs: extra };
}

// ---------------------------------------------------------------------------

async function runStep(session, step, timeoutMs) {
  const kind = step.kind;
  switch (kind) {
    case 'fetch':
      return session.evaluate(pageFetch, {
        url: step.url,
        init: step.init || {},
        readHeaders: step.readHeaders || [],
        timeoutMs,
        bodyLimit: BODY_LIMIT,
      });
    case 'xhr':
      return session.evaluate(pageXhr, {
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
      return session.evaluate(pageWebSocket, { url: step.url, protocols: step.protocols, send: step.send, timeoutMs });
    case 'cookie': {
      const c = { name: step.name, value: String(step.value ?? '') };
      if (step.url) c.url = step.url;
      else Object.assign(c, { domain: step.domain, path: step.path || '/' });
      for (const k of ['httpOnly', 'secure', 'sameSite', 'expires']) if (step[k] !== undefined) c[k] = step[k];
      await session.addCookies([c]);
      return { ok: true };
    }
    case 'getCookies':
      return { ok: true, cookies: await session.cookies([].concat(step.urls || step.url || [])) };
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
    case 'goto':
      return { ok: true, ...(await session.goto(step.url, timeoutMs)) };
    case 'eval':
      // An expression (or an async IIFE) evaluated in the page.
      return { ok: true, value: await session.evaluateExpression(step.expression) };
    case 'screenshot':
      // A PNG of the page as it is now, at step.path (fullPage: the whole page).
      if (!session.screenshot) return { ok: false, error: `the ${browser.engine} driver takes no screenshot` };
      mkdirSync(dirname(step.path), { recursive: true });
      await session.screenshot(step.path, !!step.fullPage);
      return { ok: true, path: step.path };
    default:
      return { ok: false, error: `unknown step kind ${JSON.stringify(kind)}` };
  }
}

async function runScenario(scenario, index, defaults) {
  const name = scenario.name || `scenario-${index}`;
  const result = { name, engine: browser.engine, engineVersion: browser.version, steps: [], console: [] };
  const settleMs = scenario.settleMs ?? defaults.settleMs;
  const session = await withTimeout(
    browser.newScenario({ contextOptions: scenario.contextOptions || {}, scenario }),
    15_000,
    'creating browser context',
  );
  try {
    session.setStep(null);
    if (scenario.pageUrl) {
      const loaded = await withTimeout(
        session.goto(scenario.pageUrl, defaults.stepTimeoutMs),
        defaults.stepTimeoutMs + 2000,
        `loading ${scenario.pageUrl}`,
      );
      result.pageStatus = loaded.status;
    }
    const steps = scenario.steps || [];
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      const timeoutMs = step.timeoutMs || scenario.stepTimeoutMs || defaults.stepTimeoutMs;
      session.setStep(i);
      const started = Date.now();
      let out;
      try {
        out = await withTimeout(runStep(session, step, timeoutMs), timeoutMs + 2000, `step ${i} (${step.kind})`);
      } catch (e) {
        out = { ok: false, error: errMsg(e) };
        if (e.timedOut) out.timedOut = true;
      }
      out = { kind: step.kind, ...(step.name ? { name: step.name } : {}), ...out, durationMs: Date.now() - started };
      const settle = step.settleMs ?? settleMs;
      if (settle > 0 && !NO_SETTLE_STEPS.includes(step.kind)) {
        await withTimeout(session.settle(i, out, settle), settle + 5000, `settling step ${i}`).catch((e) => log(e.message));
      }
      if (NETWORK_STEPS.includes(step.kind)) {
        const requests = session.requests(i);
        out.requests = requests;
        out.preflights = requests.filter((r) => r.preflight);
        const failed = requests.find((r) => !r.preflight && r.corsError) || requests.find((r) => r.corsError);
        out.corsError = failed ? failed.corsError : null;
        out.failedParameter = failed ? failed.failedParameter ?? null : null;
      }
      out.console = session.console().filter((c) => c.step === i).map((c) => c.text);
      result.steps.push(out);
    }
    session.setStep(steps.length);
  } catch (e) {
    result.error = errMsg(e);
    log(`scenario ${JSON.stringify(name)}: ${result.error}`);
  } finally {
    result.console = session.console().map(({ url, ...c }) => (url ? { ...c, url } : c));
    try {
      await withTimeout(session.close(), 10_000, 'closing browser context');
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
      log(`got ${sig}, closing ${input.engine}`);
      finish(2);
    });
  }

  let driver;
  try {
    driver = await import(`./drivers/${input.engine}.mjs`);
  } catch (e) {
    log(`no driver for ${input.engine}: ${errMsg(e)}`);
    return finish(2);
  }
  try {
    browser = await driver.launch({ browserArgs: input.extraArgs, prefs: input.prefs, log });
  } catch (e) {
    log(`could not launch ${input.engine}: ${errMsg(e)}`);
    return finish(2);
  }
  log(`${browser.engine} ${browser.version} (${browser.executablePath}); ${input.scenarios.length} scenario(s)`);

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
