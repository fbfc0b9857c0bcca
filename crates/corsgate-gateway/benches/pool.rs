//! The gateway's upstream pool against hyper-util's pooled client
//! (`hyper_util::client::legacy::Client`), both keeping connections alive to
//! the same HTTP/1.1 upstream on loopback, configured alike (at most 32 idle
//! connections, 60 s idle timeout).
//!
//! Two cases: one request at a time (a connection is taken from the pool and
//! given back per request), and 32 requests at once (the pool under
//! contention). Run with `bench/pool.sh` (pinned to cores), or
//! `cargo bench -p corsgate-gateway --features bench --bench pool`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use corsgate_gateway::bench::PoolClient;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

const CONCURRENT: usize = 32;
const BODY: &[u8] = b"{\"items\":[1,2,3]}";

/// A keep-alive HTTP/1.1 upstream answering every request with [`BODY`].
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_request: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One of the two clients under test.
#[derive(Clone)]
enum Under {
    Corsgate(PoolClient),
    HyperUtil(Arc<Client<HttpConnector, Empty<Bytes>>>, String),
}

impl Under {
    fn name(&self) -> &'static str {
        match self {
            Under::Corsgate(_) => "corsgate-pool",
            Under::HyperUtil(..) => "hyper-util-client",
        }
    }

    async fn get(&self) -> Bytes {
        match self {
            Under::Corsgate(pool) => pool.get("/items").await.expect("corsgate pool GET"),
            Under::HyperUtil(client, url) => {
                let response = client
                    .get(url.parse().expect("url"))
                    .await
                    .expect("hyper-util GET");
                response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes()
            }
        }
    }
}

fn clients(upstream: SocketAddr) -> Vec<Under> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let hyper_util = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENT)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    vec![
        Under::Corsgate(PoolClient::new(upstream, 1024, CONCURRENT)),
        Under::HyperUtil(Arc::new(hyper_util), format!("http://{upstream}/items")),
    ]
}

fn pools(c: &mut Criterion) {
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    );
    let addr = runtime.block_on(upstream());
    let clients = clients(addr);
    // Both answer, and their connections are open before the timing.
    for client in &clients {
        let body = runtime.block_on(client.get());
        assert_eq!(&body[..], BODY, "{}", client.name());
    }

    let mut group = c.benchmark_group("pool/sequential");
    for client in &clients {
        group.bench_function(client.name(), |b| {
            b.iter(|| runtime.block_on(client.get()));
        });
    }
    group.finish();

    let mut group = c.benchmark_group(format!("pool/{CONCURRENT}-concurrent"));
    group.throughput(criterion::Throughput::Elements(CONCURRENT as u64));
    for client in &clients {
        group.bench_function(client.name(), |b| {
            b.iter(|| concurrent(&runtime, client));
        });
    }
    group.finish();
}

fn concurrent(runtime: &Runtime, client: &Under) {
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENT {
            let client = client.clone();
            tasks.spawn(async move { client.get().await });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("request task");
        }
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = pools
}
criterion_main!(benches);
