//! Upstreams behind the gateway over TLS and HTTP/2: an `h2c` server and a
//! TLS server (ALPN as given, a client certificate required or not), each
//! recording the protocol version, the client certificate and the body of
//! every request, and answering with trailers (`grpc-status: 0`), as a gRPC
//! server does. `/echo` streams: each request body chunk goes back at once,
//! the trailers after the request body ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::WAIT;
use super::tls::{Leaf, TestCa};

/// A body fed frame by frame through a channel; ends when the sender goes.
pub struct ChanBody(pub mpsc::Receiver<Frame<Bytes>>);

impl ChanBody {
    pub fn new() -> (mpsc::Sender<Frame<Bytes>>, ChanBody) {
        let (tx, rx) = mpsc::channel(8);
        (tx, ChanBody(rx))
    }
}

impl Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: Version,
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    /// The connection carried a client certificate.
    pub client_cert: bool,
}

/// A running upstream; stopped when dropped.
pub struct Up {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Up {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The trailers every answer ends with.
pub fn grpc_ok() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("ok"));
    trailers
}

async fn answer(
    request: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    client_cert: bool,
) -> Result<Response<ChanBody>, Infallible> {
    let (parts, mut body) = request.into_parts();
    seen.lock().unwrap().push(Seen {
        version: parts.version,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        client_cert,
    });
    let (tx, out) = ChanBody::new();
    let echo = parts.uri.path() == "/echo";
    let version = format!("{:?}", parts.version);
    tokio::spawn(async move {
        if !echo {
            let _ = body.collect().await;
            let _ = tx.send(Frame::data(Bytes::from(version))).await;
        } else {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    if tx.send(Frame::data(data)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Frame::trailers(grpc_ok())).await;
    });
    let mut response = Response::new(out);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    response.headers_mut().insert(
        "x-seen-version",
        HeaderValue::from_str(&format!("{:?}", parts.version)).unwrap(),
    );
    Ok(response)
}

impl Up {
    /// HTTP/2 without TLS (and HTTP/1.1: the server tells them apart by the
    /// HTTP/2 preface).
    pub async fn h2c() -> Up {
        Up::start(None).await
    }

    /// TLS with `leaf`, offering `alpn`; with `client_ca`, a client
    /// certificate signed by it is required.
    pub async fn tls(leaf: &Leaf, alpn: &[&[u8]], client_ca: Option<&TestCa>) -> Up {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der.clone()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Up::start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Up {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let seen = seen.clone();
            let accepted = accepted.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let seen = seen.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move { serve(stream, tls, seen).await });
                }
            }
        });
        Up {
            addr,
            seen,
            accepted,
            task,
        }
    }

    /// `SCHEME://127.0.0.1:PORT`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Connections accepted (TLS handshakes included, failed or not).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    match tls {
        None => {
            let service = service_fn(move |r| answer(r, seen.clone(), false));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Some(acceptor) => {
            let Ok(Ok(stream)) = tokio::time::timeout(WAIT, acceptor.accept(stream)).await else {
                return;
            };
            let client_cert = stream.get_ref().1.peer_certificates().is_some();
            let service = service_fn(move |r| answer(r, seen.clone(), client_cert));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }
}

/// A cleartext HTTP/2 (prior knowledge) client connection to the gateway;
/// clones share it.
#[derive(Clone)]
pub struct H2Client {
    sender: hyper::client::conn::http2::SendRequest<ChanBody>,
}

impl H2Client {
    pub async fn connect(addr: SocketAddr) -> H2Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        H2Client { sender }
    }

    /// Sends `method path` with `headers` and the body fed through the
    /// returned sender (dropped: the body ends); the response head comes
    /// back as soon as the upstream sends it.
    pub async fn open(
        &mut self,
        method: &str,
        authority: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (mpsc::Sender<Frame<Bytes>>, Response<Incoming>) {
        let (tx, body) = ChanBody::new();
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{authority}{path}"))
            .version(Version::HTTP_2)
            .body(body)
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let sender = &mut self.sender;
        let response = tokio::time::timeout(WAIT, async {
            sender.ready().await.unwrap();
            sender.send_request(request).await
        });
        // The request goes out while the head is awaited; the body sender is
        // handed back for the caller to feed.
        let response = response.await.expect("no response head in time").unwrap();
        (tx, response)
    }

    /// A request with an empty body; the whole answer: head, body, trailers.
    pub async fn call(
        &mut self,
        method: &str,
        authority: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (Response<()>, Bytes, Option<HeaderMap>) {
        let (tx, body) = ChanBody::new();
        drop(tx);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{authority}{path}"))
            .version(Version::HTTP_2)
            .body(body)
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let sender = &mut self.sender;
        let response = tokio::time::timeout(WAIT, async {
            sender.ready().await.unwrap();
            sender.send_request(request).await
        })
        .await
        .expect("no response in time")
        .unwrap();
        read_all(response).await
    }
}

/// A response read to its end: head, body and trailers.
pub async fn read_all(response: Response<Incoming>) -> (Response<()>, Bytes, Option<HeaderMap>) {
    let (parts, body) = response.into_parts();
    let collected = tokio::time::timeout(WAIT, body.collect())
        .await
        .expect("body not read in time")
        .expect("body failed");
    let trailers = collected.trailers().cloned();
    (
        Response::from_parts(parts, ()),
        collected.to_bytes(),
        trailers,
    )
}

/// The next frame of a body, bounded by [`WAIT`].
pub async fn next_frame(body: &mut Incoming) -> Option<Frame<Bytes>> {
    tokio::time::timeout(WAIT, body.frame())
        .await
        .expect("no frame in time (buffered?)")
        .map(|f| f.expect("body failed"))
}
