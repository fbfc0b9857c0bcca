//! Runs one kind of decision many times, for instruction counts under
//! callgrind: `static` (an origin of the route's own list), `client` (an origin
//! of the identified client, on a client-scoped route with N registered
//! clients, as the gateway does it: the static list checked first, the client
//! looked up by id, then the decision) or `none` (setup only).
//!
//! `valgrind --tool=callgrind target/release/examples/client_decide client
//! 100000 200000`, minus the `none` run with the same N, over the iterations.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use corsgate_policy::{ClientIdentity, ClientOrigins, CorsConfig, Policy};
use http::{HeaderMap, Method};

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "static".into());
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);

    let static_policy = Policy::compile(
        &toml::from_str::<CorsConfig>(r#"allow_origins = ["https://spa.example"]"#).unwrap(),
    )
    .unwrap();
    let client_policy = Policy::compile(
        &toml::from_str::<CorsConfig>(
            r#"allow_origins = ["https://static.example"]
               clients = { identify = ["form"] }"#,
        )
        .unwrap(),
    )
    .unwrap();
    let by_id: HashMap<Box<str>, ClientOrigins, RandomState> = (0..clients)
        .map(|i| {
            let origin = if i == 0 {
                "https://spa.example".to_owned()
            } else {
                format!("https://app{i}.example.com")
            };
            let id = format!("client-{i}").into_boxed_str();
            (id, ClientOrigins::compile(&[origin], "x").0)
        })
        .collect();
    let union = ClientOrigins::union(by_id.values());

    let mut headers = HeaderMap::new();
    headers.insert("origin", "https://spa.example".parse().unwrap());
    let origin = headers["origin"].clone();
    let mut allowed = 0usize;
    for _ in 0..iterations {
        let headers = std::hint::black_box(&headers);
        let decision = match kind.as_str() {
            "static" => static_policy.decide(&Method::POST, headers),
            "client" => {
                if client_policy.allows_origin(&origin) {
                    continue;
                }
                let identity = match by_id.get(std::hint::black_box("client-0")) {
                    Some(set) => ClientIdentity::Client(set),
                    None => ClientIdentity::Unknown,
                };
                client_policy.decide_for_client(&Method::POST, headers, &union, identity)
            }
            _ => continue,
        };
        allowed += usize::from(decision.is_allowed());
    }
    println!("{kind}: {allowed} of {iterations} allowed");
}
