//! The gateway in-process: real sockets on 127.0.0.1, a real HTTP client, and a
//! spy upstream that records what reached it.

mod support;

use std::time::Duration;

use bytes::Bytes;
use corsgate_cases::{CASES, Case};
use corsgate_gateway::{Options, ReloadOutcome};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";

/// A credentialed SPA policy.
const SPA: &str = r#"
allow_origins = ["https://app.example.com"]
allow_methods = ["PUT", "DELETE"]
allow_headers = ["content-type", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = 600
"#;

fn spa_gateway_config(upstream: &str, server_extra: &str) -> String {
    config(server_extra, SPA, &route("/", upstream, ""))
}

/// HTTP strips optional whitespace around field values (RFC 9110 §5.5) on both
/// the request and the response, so a case whose header values have some cannot
/// carry it over a wire: compare without it.
fn on_the_wire(case: &'static Case) -> Case {
    let trimmed: Vec<(&'static str, &'static str)> = case
        .headers
        .iter()
        .map(|(name, value)| (*name, value.trim_matches([' ', '\t'])))
        .collect();
    Case {
        headers: Box::leak(trimmed.into_boxed_slice()),
        ..*case
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_of_the_shared_table_through_the_gateway() {
    let spy = Spy::ok().await;
    let mut policies: Vec<&str> = Vec::new();
    for case in CASES {
        if !policies.contains(&case.policy) {
            policies.push(case.policy);
        }
    }
    let client = client();
    let mut failures = Vec::new();
    for policy in policies {
        let gw = Gw::start(&config("", policy, &route("/", &spy.url(), ""))).await;
        for case in CASES.iter().filter(|c| c.policy == policy) {
            let before = spy.count();
            let answer = send_map(
                &client,
                case.method,
                &gw.url("/cases/item"),
                case.request_headers(),
                Bytes::new(),
            )
            .await;
            let reached = spy.count() > before;
            if let Err(problem) = on_the_wire(case).check_headers(&answer.headers) {
                failures.push(problem);
            }
            if reached != case.reaches_app() {
                failures.push(format!(
                    "case {}: reached the upstream: {reached}, expected {}",
                    case.name,
                    case.reaches_app()
                ));
            }
            let status = case.status.unwrap_or(200);
            if answer.status.as_u16() != status {
                failures.push(format!(
                    "case {}: status {}, expected {status}",
                    case.name, answer.status
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_is_answered_here_and_never_reaches_the_upstream() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;
    for origin in [APP, EVIL] {
        let answer = send(
            "OPTIONS",
            &gw.url("/items/1"),
            &[
                ("origin", origin),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "content-type"),
            ],
        )
        .await;
        let expected = if origin == APP { 204 } else { 403 };
        assert_eq!(answer.status.as_u16(), expected, "{origin}");
    }
    assert_eq!(spy.count(), 0, "a preflight reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_is_not_a_preflight_reaches_the_upstream() {
    let spy = Spy::start(|_| Reply::ok().status(204).header("allow", "GET, PUT")).await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;
    // With Origin but without Access-Control-Request-Method: a CORS actual request.
    let answer = send("OPTIONS", &gw.url("/items"), &[("origin", APP)]).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.header("allow"), Some("GET, PUT"));
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    // Without Origin: not CORS at all.
    let answer = send("OPTIONS", &gw.url("/items"), &[]).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let seen = spy.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.method == "OPTIONS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reflecting_any_origin_with_credentials_is_overruled() {
    // The classic mistake behind a proxy: the app echoes whatever Origin it gets.
    let spy = Spy::start(|seen| {
        let origin = seen
            .headers
            .get("origin")
            .map_or("*", |o| o.to_str().unwrap());
        Reply::ok()
            .header("access-control-allow-origin", origin)
            .header("access-control-allow-credentials", "true")
            .header("access-control-allow-methods", "*")
            .header("access-control-expose-headers", "x-secret")
            .header("access-control-max-age", "86400")
    })
    .await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;

    let refused = send("GET", &gw.url("/me"), &[("origin", EVIL)]).await;
    assert_eq!(
        refused.status,
        StatusCode::OK,
        "omit mode: the upstream answers"
    );
    assert_eq!(refused.cors(), Vec::<(String, String)>::new());
    assert_eq!(refused.joined("vary"), "Origin");

    let allowed = send("GET", &gw.url("/me"), &[("origin", APP)]).await;
    let mut cors = allowed.cors();
    cors.sort();
    assert_eq!(
        cors,
        [
            ("access-control-allow-credentials".into(), "true".into()),
            ("access-control-allow-origin".into(), APP.into()),
            (
                "access-control-expose-headers".into(),
                "x-request-id".into()
            ),
        ]
    );
    assert_eq!(spy.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sending_star_gets_the_gateways_single_value() {
    let spy = Spy::start(|_| {
        Reply::ok()
            .header("access-control-allow-origin", "*")
            .header("access-control-allow-origin", "https://other.example")
    })
    .await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;
    let answer = send("GET", &gw.url("/"), &[("origin", APP)]).await;
    let values: Vec<_> = answer
        .headers
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(values, [APP]);
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    // Not a CORS request: the upstream's `*` is removed too.
    let answer = send("GET", &gw.url("/"), &[]).await;
    assert_eq!(answer.cors(), Vec::<(String, String)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_vary_is_kept_and_origin_appended_once() {
    let spy = Spy::start(|seen| match seen.uri.path() {
        "/encoded" => Reply::ok().header("vary", "Accept-Encoding"),
        "/already" => Reply::ok().header("vary", "accept-encoding, origin"),
        "/star" => Reply::ok().header("vary", "*"),
        _ => Reply::ok(),
    })
    .await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;
    for origin in [Some(APP), Some(EVIL), None] {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let answer = send("GET", &gw.url("/encoded"), &headers).await;
        assert_eq!(
            answer.joined("vary"),
            "Accept-Encoding, Origin",
            "{origin:?}"
        );
        let answer = send("GET", &gw.url("/already"), &headers).await;
        assert_eq!(
            answer.joined("vary"),
            "accept-encoding, origin",
            "{origin:?}"
        );
        let answer = send("GET", &gw.url("/star"), &headers).await;
        assert_eq!(answer.joined("vary"), "*", "{origin:?}");
        let answer = send("GET", &gw.url("/plain"), &headers).await;
        assert_eq!(answer.joined("vary"), "Origin", "{origin:?}");
    }
}

fn assert_readable(answer: &Answer, status: u16) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.text());
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(APP),
        "a {status} made by the gateway must carry the route's CORS headers"
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(answer.joined("vary"), "Origin");
    assert!(answer.header("x-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_a_502_the_page_can_read() {
    let down = closed_port().await;
    let gw = Gw::start(&spa_gateway_config(&format!("http://{down}"), "")).await;
    let answer = send("GET", &gw.url("/items"), &[("origin", APP)]).await;
    assert_readable(&answer, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_not_accepting_within_connect_timeout_is_a_504() {
    // A listener whose accept queue is full: the kernel drops further SYNs, so
    // connecting hangs until the gateway's connect_timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let _queued = tokio::net::TcpStream::connect(addr).await.unwrap();
    let gw = Gw::start(&spa_gateway_config(
        &format!("http://{addr}"),
        "connect_timeout = \"200ms\"",
    ))
    .await;
    // Without connect_timeout the kernel would retry its SYN for minutes:
    // `send` gives up after WAIT (a hang guard), far before that.
    let answer = send("GET", &gw.url("/items"), &[("origin", APP)]).await;
    assert_readable(&answer, 504);
    assert_eq!(
        gw.metric(
            "corsgate_gateway_responses_total{status=\"504\",kind=\"upstream-connect-timeout\"}"
        )
        .await,
        1
    );
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_a_504_the_page_can_read() {
    let spy = Spy::start(|_| Reply::ok().delay(Duration::from_secs(3))).await;
    let gw = Gw::start(&spa_gateway_config(
        &spy.url(),
        "response_timeout = \"200ms\"",
    ))
    .await;
    // The upstream would answer 200 after 3 s: a 504 is the timeout's.
    let answer = send("GET", &gw.url("/slow"), &[("origin", APP)]).await;
    assert_readable(&answer, 504);
    assert_eq!(
        gw.metric("corsgate_gateway_responses_total{status=\"504\",kind=\"upstream-timeout\"}")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_a_404_with_the_default_policys_headers() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&config("", SPA, &route("/api", &spy.url(), ""))).await;
    let answer = send("GET", &gw.url("/nowhere"), &[("origin", APP)]).await;
    assert_readable(&answer, 404);
    // A preflight for it is answered from the default policy too.
    let answer = send(
        "OPTIONS",
        &gw.url("/nowhere"),
        &[("origin", APP), ("access-control-request-method", "DELETE")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("DELETE")
    );
    assert_eq!(spy.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_max_body_bytes_is_a_413_the_page_can_read() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "max_body_bytes = 1000")).await;
    let client = client();
    let mut headers = HeaderMap::new();
    headers.insert("origin", HeaderValue::from_static(APP));
    // Announced by Content-Length: refused before the upstream is called.
    let answer = send_map(
        &client,
        "POST",
        &gw.url("/upload"),
        headers.clone(),
        Bytes::from(vec![b'x'; 1001]),
    )
    .await;
    assert_readable(&answer, 413);
    assert_eq!(spy.arrived(), 0);
    // At the limit: fine.
    let answer = send_map(
        &client,
        "POST",
        &gw.url("/upload"),
        headers.clone(),
        Bytes::from(vec![b'x'; 1000]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(spy.last().body_len, 1000);
    // Chunked, without a length: cut off while streaming.
    let lazy = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<LazyBody>();
    let mut request = http::Request::post(gw.url("/upload"))
        .body(LazyBody::new(64 * 1024, 1024))
        .unwrap();
    *request.headers_mut() = headers;
    let response = tokio::time::timeout(WAIT, lazy.request(request))
        .await
        .unwrap()
        .unwrap();
    let answer = read(response).await;
    assert_readable(&answer, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_over_max_header_bytes_is_a_431_the_page_can_read() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "max_header_bytes = 4096")).await;
    let big = "x".repeat(5000);
    let answer = send("GET", &gw.url("/"), &[("origin", APP), ("x-big", &big)]).await;
    assert_readable(&answer, 431);
    assert_eq!(spy.count(), 0);
    // Just under the limit: served.
    let fits = "x".repeat(3000);
    let answer = send("GET", &gw.url("/"), &[("origin", APP), ("x-big", &fits)]).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_malformed_heads_are_refused_without_harm() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "max_header_bytes = 4096")).await;
    // Far past the limit: hyper refuses it before a route can be known.
    let huge = format!(
        "GET / HTTP/1.1\r\nhost: x\r\norigin: {APP}\r\nx-huge: {}\r\n\r\n",
        "y".repeat(200 * 1024)
    );
    let reply = raw(gw.addr, huge.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    // More header lines than hyper parses (100): the same.
    let many: String = (0..150).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let reply = raw(
        gw.addr,
        format!("GET / HTTP/1.1\r\nhost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    for malformed in [
        "GET / HTTP/1.1\r\nhost: x\r\nthis is not a header\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: x\r\nbad name: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        "GET\x01 / HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        let reply = raw(gw.addr, malformed.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{malformed:?} → {reply}");
    }
    assert_eq!(spy.count(), 0);
    let answer = send("GET", &gw.url("/still-serving"), &[("origin", APP)]).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_redirects_carry_cors_headers() {
    let spy = Spy::start(|_| Reply::ok().status(302).header("location", "/elsewhere")).await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;
    let answer = send("POST", &gw.url("/login"), &[("origin", APP)]).await;
    assert_readable(&answer, 302);
    assert_eq!(answer.header("location"), Some("/elsewhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_inherit_the_default_policy_and_cors_off_passes_untouched() {
    let spy = Spy::start(|seen| {
        if seen.uri.path().starts_with("/login") {
            Reply::ok()
                .header("access-control-allow-origin", "https://sso.example")
                .header("access-control-allow-methods", "POST")
        } else {
            Reply::ok()
        }
    })
    .await;
    let admin_cors = "[route.cors]\nallow_origins = [\"https://admin.example.com\"]\n";
    let routes = [
        route("/api", &spy.url(), ""),
        route("/admin", &spy.url(), admin_cors),
        route("/login", &spy.url(), "cors = \"off\""),
    ]
    .concat();
    let gw = Gw::start(&config("", SPA, &routes)).await;

    let answer = send("GET", &gw.url("/api/x"), &[("origin", APP)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));

    // The override replaces allow_origins; credentials and exposed headers are
    // inherited from [server.cors].
    let answer = send(
        "GET",
        &gw.url("/admin/x"),
        &[("origin", "https://admin.example.com")],
    )
    .await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        answer.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    let answer = send("GET", &gw.url("/admin/x"), &[("origin", APP)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let answer = send(
        "OPTIONS",
        &gw.url("/admin/x"),
        &[
            ("origin", "https://admin.example.com"),
            ("access-control-request-method", "DELETE"),
        ],
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::NO_CONTENT,
        "methods are inherited"
    );

    // CORS off: the preflight goes upstream, and the upstream's headers stay.
    let before = spy.count();
    let answer = send(
        "OPTIONS",
        &gw.url("/login"),
        &[("origin", APP), ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(
        spy.count(),
        before + 1,
        "with CORS off, preflights are forwarded"
    );
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://sso.example")
    );
    assert_eq!(answer.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(answer.header("vary"), None);
    let answer = send("GET", &gw.url("/login"), &[("origin", APP)]).await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://sso.example")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_prefix_on_segment_boundaries_wins() {
    let api = Spy::ok().await;
    let admin = Spy::ok().await;
    let tenant = Spy::ok().await;
    let routes = [
        route("/api", &api.url(), ""),
        route("/api/admin", &admin.url(), "strip_prefix = true"),
        route("/api", &tenant.url(), "host = \"tenant.example\""),
    ]
    .concat();
    let gw = Gw::start(&config("", SPA, &routes)).await;

    send("GET", &gw.url("/api/admin/users?page=2"), &[]).await;
    assert_eq!(admin.last().uri.path_and_query().unwrap(), "/users?page=2");
    send("GET", &gw.url("/api/admin"), &[]).await;
    assert_eq!(admin.last().uri.path(), "/");
    send("GET", &gw.url("/api/administrators"), &[]).await;
    assert_eq!(api.last().uri.path(), "/api/administrators");
    assert_eq!(admin.count(), 2);
    send("GET", &gw.url("/api"), &[("host", "tenant.example:8080")]).await;
    assert_eq!(tenant.count(), 1);
    assert_eq!(tenant.last().uri.path(), "/api");
    let answer = send("GET", &gw.url("/apix"), &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(api.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_request_id_and_hop_by_hop() {
    let spy = Spy::start(|_| {
        Reply::ok()
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("x-app", "kept")
    })
    .await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;
    let answer = send(
        "GET",
        &gw.url("/hop?q=1"),
        &[
            ("origin", APP),
            ("connection", "x-client-hop"),
            ("x-client-hop", "1"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-forwarded-for", "192.0.2.7"),
            ("x-app-header", "kept"),
        ],
    )
    .await;
    let seen = spy.last();
    for gone in ["x-client-hop", "te", "proxy-authorization"] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the upstream"
        );
    }
    assert_eq!(seen.headers["x-app-header"], "kept");
    assert_eq!(seen.headers["origin"], APP);
    // The client is not a trusted proxy: its X-Forwarded-For is replaced.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    let authority = gw.addr.to_string();
    assert_eq!(seen.headers["x-forwarded-host"], authority.as_str());
    assert_eq!(
        seen.headers["host"],
        authority.as_str(),
        "Host is preserved"
    );
    // This gateway's entry, with its per-process token (see tests/loops.rs).
    let via = seen.headers["via"].to_str().unwrap();
    assert!(via.starts_with("1.1 corsgate-") && via.len() == 29, "{via}");
    assert_eq!(seen.uri.path_and_query().unwrap(), "/hop?q=1");
    let id = seen.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(answer.header("x-request-id"), Some(id.as_str()));
    assert_eq!(answer.header("x-upstream-hop"), None);
    assert_eq!(answer.header("keep-alive"), None);
    assert_eq!(answer.header("x-app"), Some("kept"));

    // A request id from a client that is not a trusted proxy is passed on as
    // X-Client-Request-Id; the gateway's own id is the X-Request-Id.
    let answer = send("GET", &gw.url("/"), &[("x-request-id", "trace-42")]).await;
    assert_eq!(spy.last().headers["x-client-request-id"], "trace-42");
    let id = spy.last().headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(answer.header("x-request-id"), Some(id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cleartext_with_prior_knowledge() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;
    let mut headers = HeaderMap::new();
    headers.insert("origin", HeaderValue::from_static(APP));
    let h2 = h2_client();
    let answer = send_map(&h2, "GET", &gw.url("/h2"), headers.clone(), Bytes::new()).await;
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    headers.insert(
        "access-control-request-method",
        HeaderValue::from_static("PUT"),
    );
    let answer = send_map(&h2, "OPTIONS", &gw.url("/h2"), headers, Bytes::new()).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let seen = spy.last();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.headers["host"], gw.addr.to_string().as_str());
    assert_eq!(spy.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "")).await;
    let reply = raw(
        gw.addr,
        b"GET /one HTTP/1.1\r\nhost: x\r\n\r\nGET /two HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 2, "{reply}");
    let paths: Vec<String> = spy
        .requests()
        .iter()
        .map(|s| s.uri.path().to_owned())
        .collect();
    assert_eq!(paths, ["/one", "/two"]);
    let metrics = send("GET", &gw.admin_url("/metrics"), &[]).await.text();
    assert!(
        metrics.contains("corsgate_connections_total 1\n"),
        "{metrics}"
    );
}

/// An upstream on raw sockets that counts its connections. It answers every
/// request with a 200, and closes a connection after `per_connection` answers
/// without announcing it, as an upstream's own idle timeout does; then counts
/// it closed once the gateway has closed its end too (it noticed).
struct CountingUpstream {
    addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingUpstream {
    async fn start(per_connection: usize) -> CountingUpstream {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let closed = std::sync::Arc::new(AtomicUsize::new(0));
        let (count, ends) = (accepted.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let ends = ends.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for _ in 0..per_connection {
                        // The requests here are GETs: a head, no body.
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 1024];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    // FIN, then wait for the gateway's: it has seen the close.
                    let _ = stream.shutdown().await;
                    let mut rest = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut rest).await {
                        if n == 0 {
                            break;
                        }
                    }
                    ends.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        CountingUpstream {
            addr,
            accepted,
            closed,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let upstream = CountingUpstream::start(usize::MAX).await;
    let gw = Gw::start(&spa_gateway_config(
        &format!("http://{}", upstream.addr),
        "",
    ))
    .await;
    for _ in 0..5 {
        let answer = send("GET", &gw.url("/items"), &[("origin", APP)]).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "ok");
    }
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_its_idle_connections_is_no_error() {
    let upstream = CountingUpstream::start(1).await;
    let gw = Gw::start(&spa_gateway_config(
        &format!("http://{}", upstream.addr),
        "",
    ))
    .await;
    for n in 1..=3 {
        let answer = send("GET", &gw.url("/items"), &[("origin", APP)]).await;
        assert_eq!(answer.status, 200);
        // The pooled connection is noticed closed, then a new one is opened.
        wait_until(|| upstream.closed() == n).await;
    }
    assert_eq!(upstream.accepted(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_from_an_allowed_origin_is_proxied_both_ways() {
    let upstream = ws::WsEcho::start().await;
    let gw = Gw::start(&spa_gateway_config(&upstream.url(), "")).await;
    let (mut ws, response) = ws::connect(gw.addr, APP).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    // Upstream → client.
    let first = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_text().unwrap().as_str(), "welcome");
    // Client → upstream → client.
    for text in ["hello", "again"] {
        ws.send(Message::text(text)).await.unwrap();
        let echo = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_from_a_refused_origin_is_a_403() {
    let upstream = ws::WsEcho::start().await;
    let gw = Gw::start(&spa_gateway_config(&upstream.url(), "")).await;
    for origin in [EVIL, "null"] {
        match ws::connect(gw.addr, origin).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
            }
            other => panic!("{origin}: expected a 403, got {other:?}"),
        }
    }
    assert_eq!(upstream.accepted(), 0);
}

fn reload_config(origin: &str, upstream: &str) -> String {
    config(
        "",
        &format!("allow_origins = [\"{origin}\"]\nallow_credentials = true"),
        &route("/", upstream, ""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_the_policy_mid_run_and_a_bad_file_keeps_the_old_one() {
    let spy = Spy::start(|seen| {
        if seen.uri.path() == "/slow" {
            Reply::ok().delay(Duration::from_millis(600))
        } else {
            Reply::ok()
        }
    })
    .await;
    let dir = TempDir::new("reload");
    let file = dir.join("corsgate.toml");
    let (a, b) = ("https://a.example", "https://b.example");
    std::fs::write(&file, reload_config(a, &spy.url())).unwrap();
    let gw = Gw::from_file(&file, false).await;

    // A request in flight when the policy changes finishes on the old one.
    let slow = tokio::spawn({
        let url = gw.url("/slow");
        async move { send("GET", &url, &[("origin", a)]).await }
    });
    spy.wait_for(1).await;
    std::fs::write(&file, reload_config(b, &spy.url())).unwrap();
    assert_eq!(gw.handle.reload(), ReloadOutcome::Applied { warnings: 0 });
    let slow = slow.await.unwrap();
    assert_eq!(slow.header("access-control-allow-origin"), Some(a));

    let answer = send("GET", &gw.url("/"), &[("origin", a)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let answer = send("GET", &gw.url("/"), &[("origin", b)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(b));

    // A file with errors: logged, and the running policy stays.
    std::fs::write(
        &file,
        reload_config("https://c.example/", &spy.url())
            .replace("allow_credentials", "allow_credential"),
    )
    .unwrap();
    assert_eq!(gw.handle.reload(), ReloadOutcome::Invalid { errors: 2 });
    let answer = send("GET", &gw.url("/"), &[("origin", b)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(b));

    let metrics = send("GET", &gw.admin_url("/metrics"), &[]).await.text();
    assert!(
        metrics.contains("corsgate_reloads_total{result=\"success\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("corsgate_reloads_total{result=\"failure\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_reloaded_without_a_signal() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("watch");
    let file = dir.join("corsgate.toml");
    let (a, b) = ("https://a.example", "https://b.example");
    std::fs::write(&file, reload_config(a, &spy.url())).unwrap();
    let gw = Gw::from_file(&file, true).await;
    let answer = send("GET", &gw.url("/"), &[("origin", a)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(a));

    write_atomically(&file, &reload_config(b, &spy.url()));
    wait_until_async(|| async {
        send("GET", &gw.url("/"), &[("origin", b)])
            .await
            .header("access-control-allow-origin")
            == Some(b)
    })
    .await;
    // Rewritten in place, with an error: the policy stays.
    std::fs::write(&file, "[server\n").unwrap();
    gw.wait_metric("corsgate_reloads_total{result=\"failure\"}", |n| n == 1)
        .await;
    assert_eq!(
        gw.metric("corsgate_reloads_total{result=\"success\"}")
            .await,
        1
    );
    let answer = send("GET", &gw.url("/"), &[("origin", b)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_request_in_flight_and_refuses_new_ones() {
    let spy = Spy::start(|_| Reply::ok().delay(Duration::from_millis(700))).await;
    // A drain that waited for the idle connection would last shutdown_timeout,
    // longer than `stopped` waits (WAIT).
    let mut gw = Gw::start(&spa_gateway_config(
        &spy.url(),
        "shutdown_timeout = \"60s\"",
    ))
    .await;
    // An idle keep-alive connection must not hold the drain up.
    let mut idle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(b"GET /warm HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    idle.read_exact(&mut buf).await.unwrap();
    spy.wait_for(1).await;
    let slow = tokio::spawn({
        let url = gw.url("/slow");
        async move { send("GET", &url, &[("origin", APP)]).await }
    });
    spy.wait_for(2).await;
    gw.handle.shutdown();
    // While draining, /readyz says so.
    let ready = send("GET", &gw.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let answer = slow.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    // Within WAIT: the drain did not wait for the idle connection.
    gw.stopped().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "still accepting after shutdown"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection was left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_requests_after_shutdown_timeout() {
    // The request would last longer than `stopped` waits (WAIT).
    let spy = Spy::start(|_| Reply::ok().delay(Duration::from_secs(60))).await;
    let mut gw = Gw::start(&spa_gateway_config(
        &spy.url(),
        "shutdown_timeout = \"200ms\"",
    ))
    .await;
    let _slow = tokio::spawn({
        let url = gw.url("/slow");
        async move { send("GET", &url, &[]).await }
    });
    spy.wait_for(1).await;
    gw.handle.shutdown();
    // Within WAIT: the gateway gave up on the request at shutdown_timeout.
    gw.stopped().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_connections_are_closed_after_idle_timeout() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "idle_timeout = \"1s\"")).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // Kept alive after an answer: a second request on it is answered too.
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = raw::read_response(&mut stream)
            .await
            .expect("the connection was closed right after an answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
    }
    // Then idle: closed, with nothing more sent.
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("the idle connection was not closed")
        .unwrap();
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_connections_wait_for_a_free_slot() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&spa_gateway_config(&spy.url(), "max_connections = 1")).await;
    let mut first = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    let second = tokio::spawn({
        let addr = gw.addr;
        async move {
            raw(
                addr,
                b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
            .await
        }
    });
    // A window, not a synchronisation: that the second connection is not
    // served has no event to wait for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "a second connection was served while the first was open"
    );
    drop(first);
    let reply = tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&config("", SPA, &route("/api", &spy.url(), ""))).await;
    send("GET", &gw.url("/api/x"), &[("origin", APP)]).await;
    send("GET", &gw.url("/api/x"), &[("origin", EVIL)]).await;
    send(
        "OPTIONS",
        &gw.url("/api/x"),
        &[("origin", APP), ("access-control-request-method", "PATCH")],
    )
    .await;
    send("GET", &gw.url("/elsewhere"), &[]).await;

    let health = send("GET", &gw.admin_url("/healthz"), &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = send("GET", &gw.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::OK);

    let metrics = send("GET", &gw.admin_url("/metrics"), &[]).await;
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text();
    for line in [
        r#"corsgate_requests_total{route="0:/api",class="actual",decision="allowed",reason=""} 1"#,
        r#"corsgate_requests_total{route="0:/api",class="actual",decision="rejected",reason="origin-not-allowed"} 1"#,
        r#"corsgate_requests_total{route="0:/api",class="preflight",decision="rejected",reason="method-not-allowed"} 1"#,
        r#"corsgate_requests_total{route="unmatched",class="not-cors",decision="pass",reason=""} 1"#,
        r#"corsgate_upstream_duration_seconds_count{route="0:/api"} 2"#,
        r#"corsgate_gateway_responses_total{status="404",kind="no-route"} 1"#,
        "corsgate_reloads_total{result=\"success\"} 0",
        "corsgate_requests_in_flight 0",
    ] {
        assert!(
            text.contains(&format!("{line}\n")),
            "missing {line}\n{text}"
        );
    }

    let config = send("GET", &gw.admin_url("/config"), &[]).await;
    assert_eq!(config.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
    assert_eq!(json["route"][0]["path"], "/api");
    assert_eq!(json["server"]["response_timeout"], "30s");
    assert_eq!(json["route"][0]["cors"]["allow_credentials"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_demo_api_behind_the_development_policy() {
    let any = "127.0.0.1:0".parse().unwrap();
    let gw = Gw::start_with(
        corsgate_config::DEFAULT_CONFIG,
        Options::new().listen(any).admin_listen(any),
    )
    .await;
    let page = "http://localhost:5173";
    let preflight = send(
        "OPTIONS",
        &gw.url("/api/items/1"),
        &[
            ("origin", page),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type"),
        ],
    )
    .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(page));

    let health = send("GET", &gw.url("/api/health"), &[("origin", page)]).await;
    assert_eq!(health.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["request_id"], health.header("x-request-id").unwrap());

    let client = client();
    let mut headers = HeaderMap::new();
    headers.insert("origin", HeaderValue::from_static("http://127.0.0.1:3000"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let created = send_map(
        &client,
        "POST",
        &gw.url("/api/items"),
        headers.clone(),
        Bytes::from_static(br#"{"name": "milk"}"#),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(
        created.header("access-control-allow-origin"),
        Some("http://127.0.0.1:3000")
    );
    let id = serde_json::from_slice::<serde_json::Value>(&created.body).unwrap()["id"]
        .as_u64()
        .unwrap();
    let item = format!("/api/items/{id}");
    let updated = send_map(
        &client,
        "PUT",
        &gw.url(&item),
        headers.clone(),
        Bytes::from_static(br#"{"name": "oat milk"}"#),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK);
    let list = send("GET", &gw.url("/api/items"), &[]).await.text();
    assert!(list.contains("oat milk"), "{list}");
    let deleted = send_map(&client, "DELETE", &gw.url(&item), headers, Bytes::new()).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = send("GET", &gw.url(&item), &[]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // Debug mode is on in the development policy: a refusal says why.
    let refused = send(
        "OPTIONS",
        &gw.url("/api/items"),
        &[
            ("origin", page),
            ("access-control-request-method", "PROPFIND"),
        ],
    )
    .await;
    assert_eq!(
        refused.header("x-corsgate-reason"),
        Some("method-not-allowed")
    );
}
