//! An axum API behind corsgate's CORS layer.
//!
//! ```text
//! cargo run -p corsgate-tower --example axum
//! curl -i -X OPTIONS http://127.0.0.1:3000/items \
//!   -H 'Origin: http://localhost:5173' -H 'Access-Control-Request-Method: PUT'
//! curl -i http://127.0.0.1:3000/items -H 'Origin: http://localhost:5173'
//! ```

use axum::Router;
use axum::routing::get;
use corsgate_policy::{CorsConfig, Policy};
use corsgate_tower::CorsLayer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config: CorsConfig = toml::from_str(
        r#"
        allow_origins = ["http://localhost:*", "https://app.example.com"]
        allow_methods = ["PUT", "DELETE"]
        allow_headers = ["content-type", "authorization"]
        expose_headers = ["x-request-id"]
        allow_credentials = true
        max_age = 600
        "#,
    )?;
    // Compiling validates: a bad policy stops the program here, with every problem.
    let policy = Policy::compile(&config)?;

    let app = Router::new()
        .route("/items", get(|| async { "[]" }).put(|| async { "stored" }))
        .layer(CorsLayer::new(policy));

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
