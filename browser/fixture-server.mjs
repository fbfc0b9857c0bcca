#!/usr/bin/env node
// Tiny fixture servers for browser/selftest.sh: proves the harness works without
// corsgate. Listens on 127.0.0.1 only, on ports chosen by the OS, and prints
//   {"pagePort": A, "apiPort": B}
// as its first stdout line. Exits on SIGTERM/SIGINT, or after
// FIXTURE_MAX_SECONDS (default 300) whatever happens.
//
// Page server (A): /blank.html. API server (B), CORS by hard-coded rules for the
// page origin http://127.0.0.1:A:
//   /allowed      ACAO echo + ACAC, exposes x-request-id; preflight allows PUT
//                 with x-foo/content-type, Max-Age 600
//   /denied       no CORS headers at all (GET and preflight)
//   /preflight-403  preflight answered 403 (with otherwise valid CORS headers)
//   /star         ACAO * (also on the preflight), no ACAC
//   /mismatch     ACAO http://other.example
//   /no-acac      ACAO echo, no ACAC
//   /two-acao     two Access-Control-Allow-Origin header lines
//   /hang         never answers (step timeouts)
//   /ws           WebSocket echo (any Origin);  /ws-reject: 403 to the upgrade
//   /__log        JSON list of the requests the API server got (then cleared
//                 with ?clear=1)

import http from 'node:http';
import crypto from 'node:crypto';

const HOST = '127.0.0.1';
const maxSeconds = Number(process.env.FIXTURE_MAX_SECONDS || 300);

const page = http.createServer((req, res) => {
  if (req.url === '/blank.html' || req.url === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end('<!doctype html><title>blank</title>');
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }
});

let pageOrigin = null;
const seen = [];

function preflight(req) {
  return req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
}

const api = http.createServer((req, res) => {
  const url = new URL(req.url, `http://${HOST}`);
  if (url.pathname === '/__log') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(seen));
    if (url.searchParams.get('clear')) seen.length = 0;
    return;
  }
  seen.push({ method: req.method, path: url.pathname, headers: req.headers });
  const origin = req.headers.origin;
  const h = { 'content-type': 'text/plain', 'x-request-id': 'rid-1', 'x-secret': 's3cr3t', 'cache-control': 'no-store' };
  let status = 200;
  let body = `${req.method} ${url.pathname}`;
  const cookie = req.headers.cookie;
  if (cookie) body += ` cookie=${cookie}`;
  const echo = origin === pageOrigin ? origin : undefined;

  switch (url.pathname) {
    case '/allowed':
      if (echo) {
        h['access-control-allow-origin'] = echo;
        h['access-control-allow-credentials'] = 'true';
        h['vary'] = 'Origin';
      }
      if (preflight(req)) {
        status = 204;
        body = '';
        if (echo) {
          h['access-control-allow-methods'] = 'PUT';
          h['access-control-allow-headers'] = 'x-foo, content-type';
          h['access-control-max-age'] = '600';
        }
      } else {
        h['access-control-expose-headers'] = 'x-request-id';
      }
      break;
    case '/denied':
      if (preflight(req)) {
        status = 204;
        body = '';
      }
      break;
    case '/preflight-403':
      h['access-control-allow-origin'] = origin || '*';
      if (preflight(req)) {
        status = 403;
        body = 'forbidden';
        h['access-control-allow-methods'] = 'PUT';
        h['access-control-allow-headers'] = 'x-foo';
      }
      break;
    case '/star':
      h['access-control-allow-origin'] = '*';
      if (preflight(req)) {
        status = 204;
        body = '';
        h['access-control-allow-methods'] = 'PUT';
        h['access-control-allow-headers'] = 'x-foo';
      }
      break;
    case '/mismatch':
      h['access-control-allow-origin'] = 'http://other.example';
      break;
    case '/no-acac':
      h['access-control-allow-origin'] = origin || '*';
      break;
    case '/two-acao':
      h['access-control-allow-origin'] = [origin || '*', origin || '*'];
      break;
    case '/hang':
      return; // never answers: for step timeouts
    default:
      status = 404;
      body = 'not found';
  }
  res.writeHead(status, h);
  res.end(body);
});

// Minimal RFC 6455 echo: enough for one small text message per connection.
api.on('upgrade', (req, socket) => {
  const url = new URL(req.url, `http://${HOST}`);
  seen.push({ method: req.method, path: url.pathname, headers: req.headers, upgrade: true });
  if (url.pathname !== '/ws' || !req.headers['sec-websocket-key']) {
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return;
  }
  const accept = crypto
    .createHash('sha1')
    .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2) {
      const opcode = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        socket.destroy();
        return;
      }
      const masked = (buf[1] & 0x80) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (buf.length < need) return;
      const mask = masked ? buf.subarray(off, off + 4) : null;
      const payload = Buffer.from(buf.subarray(need - len, need));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      buf = buf.subarray(need);
      if (opcode === 0x8) {
        socket.end(Buffer.from([0x88, 0x00]));
        return;
      }
      if (opcode === 0x1 && payload.length < 126) {
        socket.write(Buffer.concat([Buffer.from([0x81, payload.length]), payload]));
      }
    }
  });
  socket.on('error', () => {});
});

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server.address().port));
  });
}

const pagePort = await listen(page);
const apiPort = await listen(api);
pageOrigin = `http://${HOST}:${pagePort}`;
process.stdout.write(JSON.stringify({ pagePort, apiPort }) + '\n');

const stop = () => {
  page.close();
  api.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, maxSeconds * 1000).unref();
