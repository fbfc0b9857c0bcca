// Helpers the harness runner and its drivers share.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Playwright decorates its errors with ANSI colours and a call log: keep the text.
export function errMsg(e) {
  return String((e && e.message) || e).replace(/\u001b\[[0-9;]*m/g, '').trim();
}

export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what}: timed out after ${ms} ms`), { timedOut: true })), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Header names lower-cased; a repeated header's values joined with "\n".
export function lowerKeys(h) {
  if (!h) return null;
  const out = {};
  for (const [k, v] of Object.entries(h)) {
    const key = k.toLowerCase();
    out[key] = key in out ? `${out[key]}\n${v}` : v;
  }
  return out;
}

// Browsers ask every page's origin for /favicon.ico on their own; that request
// (and a 404 console line for it) is noise for CORS scenarios, so drivers drop it.
export function isFavicon(url) {
  try {
    return new URL(url).pathname === '/favicon.ico';
  } catch {
    return false;
  }
}
