-- An allowed actual request: a GET from https://app.example.com, proxied.
wrk.method = "GET"
wrk.path = "/api/items"
wrk.headers["Origin"] = "https://app.example.com"
