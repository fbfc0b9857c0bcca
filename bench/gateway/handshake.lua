-- An allowed preflight on a connection of its own: `Connection: close` makes
-- the server close it after the answer, so wrk connects again, with a TLS
-- handshake, for every request (bench/gateway.sh --tls, case (c)). wrk offers the
-- previous connection's session ticket: the servers resume it.
wrk.method = "OPTIONS"
wrk.path = "/api/items"
wrk.headers["Origin"] = "https://app.example.com"
wrk.headers["Access-Control-Request-Method"] = "PUT"
wrk.headers["Access-Control-Request-Headers"] = "authorization,content-type"
wrk.headers["Connection"] = "close"
