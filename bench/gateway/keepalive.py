# N requests of one kind on one keep-alive connection, as bench/gateway/*.lua
# send them; exits non-zero on an unexpected answer or after 120 s.
# Used by bench/proxy-callgrind.sh and bench/shadow-callgrind.sh:
#   python3 bench/gateway/keepalive.py PORT N preflight|get
import http.client, signal, sys
signal.alarm(120)
port, n, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    if kind == "preflight":
        conn.request("OPTIONS", "/api/items", headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type"})
        want = 204
    else:
        conn.request("GET", "/api/items", headers={"Origin": "https://app.example.com"})
        want = 200
    r = conn.getresponse()
    body = r.read()
    if r.status != want:
        sys.exit(f"status {r.status}, expected {want}")
    if r.getheader("access-control-allow-origin") != "https://app.example.com":
        sys.exit("no Access-Control-Allow-Origin")
    if kind == "get" and b'"items"' not in body:
        sys.exit(f"unexpected body {body[:80]!r}")
