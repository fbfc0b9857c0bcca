//! The layer in a real axum server on loopback, spoken to over a real socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::any;
use corsgate_policy::{CorsConfig, Policy};
use corsgate_tower::CorsLayer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8(response).unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn axum_server_answers_preflights_itself_and_decorates_responses() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let policy = Policy::compile(
        &CorsConfig::new()
            .allow_origins("http://localhost:*")
            .allow_methods("PUT")
            .allow_credentials(true),
    )
    .unwrap();
    let app = Router::new()
        .route(
            "/items",
            any(move || {
                seen.fetch_add(1, Ordering::SeqCst);
                async { "[]" }
            }),
        )
        .layer(CorsLayer::new(policy));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let preflight = exchange(
        addr,
        "OPTIONS /items HTTP/1.1\r\nhost: x\r\norigin: http://localhost:5173\r\naccess-control-request-method: PUT\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: http://localhost:5173\r\n"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-methods: put\r\n"),
        "{preflight}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the preflight reached the app"
    );

    let actual = exchange(
        addr,
        "GET /items HTTP/1.1\r\nhost: x\r\norigin: http://localhost:5173\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(actual.starts_with("http/1.1 200"), "{actual}");
    assert!(
        actual.contains("access-control-allow-credentials: true\r\n"),
        "{actual}"
    );
    assert!(actual.contains("vary: origin\r\n"), "{actual}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.abort();
}
