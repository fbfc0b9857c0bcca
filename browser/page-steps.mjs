// The in-page halves of the harness's fetch, xhr and websocket steps. Each is
// a self-contained function (no closures, no imports) of one JSON argument that
// returns a JSON value or a promise of one: a driver runs it in the page as it
// is (page.evaluate) or as its source text (`(${fn})(arg)`).

export async function pageFetch({ url, init, readHeaders, timeoutMs, bodyLimit }) {
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

export function pageXhr({ url, method, headers, withCredentials, body, readHeaders, timeoutMs, bodyLimit }) {
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

export function pageWebSocket({ url, protocols, send, timeoutMs }) {
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

