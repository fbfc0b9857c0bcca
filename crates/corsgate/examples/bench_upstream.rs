//! The upstream of the gateway benchmark (`bench/gateway.sh`): a small, fast
//! HTTP/1.1 server that answers every request with the same short JSON body,
//! on keep-alive connections, from one thread.
//!
//! corsgate, nginx and the direct run all talk to this one program, so whatever
//! it costs is the same for each of them. It sends no CORS headers: the proxies
//! in front decide those.
//!
//! ```sh
//! cargo run --release -p corsgate --example bench_upstream -- 127.0.0.1:9000
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"items":[{"id":1,"name":"first item"},{"id":2,"name":"second item"}]}"#;
const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => "127.0.0.1:9000".parse()?,
    };
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: the benchmark upstream listens on loopback only").into());
    }
    // One thread: the benchmark pins the upstream to one core, and a
    // current-thread runtime has nothing to hand over between threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    println!(
        "bench_upstream listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(answer);
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    Ok(response)
}
