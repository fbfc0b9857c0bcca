//! The registry's admin API of a running gateway, as the command line uses
//! it (`--admin http://HOST:PORT`): one HTTP/1.1 request per call, over
//! hyper's client connection, on a runtime of its own.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use hyper::body::{Body, Bytes};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, IF_MATCH};
use hyper::{Method, Request, StatusCode};

/// A whole request gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read (a list of 100,000 clients fits).
const MAX_ANSWER: usize = 512 * 1024 * 1024;

/// A gateway's admin listener.
pub(super) struct Admin {
    authority: String,
    token: Option<String>,
    runtime: tokio::runtime::Runtime,
}

/// What it answered.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub(super) fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the admin API answered {} with a body that is not JSON",
                self.status
            )
        })
    }

    /// An `application/problem+json` answer as an error: its title, detail
    /// and every problem listed.
    pub(super) fn problem(&self) -> anyhow::Error {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&self.body) else {
            return anyhow::anyhow!(
                "the admin API answered {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body).trim()
            );
        };
        let mut text = format!(
            "the admin API answered {}: {}",
            self.status,
            body["title"].as_str().unwrap_or_default()
        );
        if let Some(detail) = body["detail"].as_str() {
            text.push_str(": ");
            text.push_str(detail);
        }
        anyhow::anyhow!(text)
    }
}

impl Admin {
    /// `url` is `http://HOST:PORT` (a trailing `/` is ignored).
    pub(super) fn new(url: &str, token: Option<String>) -> Result<Admin> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--admin {url:?}: use http://HOST:PORT, the gateway's admin_listen");
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            bail!("--admin {url:?}: use http://HOST:PORT, without a path");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client")?;
        Ok(Admin {
            authority: authority.to_owned(),
            token,
            runtime,
        })
    }

    /// Sends one request; `body` is JSON.
    pub(super) fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        if_match: Option<&str>,
    ) -> Result<Answer> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, &self.authority);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        if let Some(tag) = if_match {
            request = request.header(IF_MATCH, tag);
        }
        let request = request
            .body(body.unwrap_or_default())
            .context("cannot build the request")?;
        let what = format!("{method} http://{}{path}", self.authority);
        self.runtime
            .block_on(async {
                tokio::time::timeout(TIMEOUT, exchange(&self.authority, request)).await
            })
            .map_err(|_| anyhow::anyhow!("no answer within {TIMEOUT:?}"))
            .and_then(|answer| answer)
            .with_context(|| what)
    }
}

async fn exchange(authority: &str, request: Request<String>) -> Result<Answer> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame?.into_data() {
            let data: Bytes = data;
            if bytes.len() + data.len() > MAX_ANSWER {
                bail!("the answer is larger than {MAX_ANSWER} bytes");
            }
            bytes.extend_from_slice(&data);
        }
    }
    driver.abort();
    Ok(Answer {
        status,
        body: bytes,
    })
}
