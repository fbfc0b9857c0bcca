//! A real gRPC service behind the gateway: a tonic server (the service
//! written against tonic's codegen-free server API, its messages derived with
//! prost: no protoc) and tonic's client, on loopback.
//!
//! - Over `h2c://` (cleartext HTTP/2 on both legs) and over `https://` (the
//!   client to the gateway's TLS listener, the gateway to a TLS upstream,
//!   ALPN `h2` on both): a unary call, a server-streaming call, their
//!   `grpc-status` and `grpc-message` trailers, and error statuses passing
//!   through, in the headers of a trailers-only response and in the trailers
//!   after streamed messages.
//! - gRPC-web from a browser origin, with the configuration of the gRPC-web
//!   example in docs/examples.md: the CORS preflight a grpc-web client
//!   causes, then the call over HTTP/1.1 translated by tonic-web behind the
//!   gateway, with `grpc-status` and `grpc-message` exposed to the page.

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::Version;
use support::tls::TestCa;
use support::{Gw, TempDir, WAIT, send};
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

/// `pkg.Greeter`'s request.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
    /// For `SayHellos`: how many replies.
    #[prost(uint32, tag = "2")]
    count: u32,
}

/// `pkg.Greeter`'s reply.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

const SAY_HELLO: &str = "/pkg.Greeter/SayHello";
const SAY_HELLOS: &str = "/pkg.Greeter/SayHellos";

/// What the service saw of each call: its path and HTTP version.
type Seen = Arc<Mutex<Vec<(String, Version)>>>;

/// `pkg.Greeter`: `SayHello` (unary) greets, or fails with
/// PERMISSION_DENIED for the name "mallory"; `SayHellos` (server streaming)
/// sends `count` greetings, then ends OK, or with ABORTED for "mallory".
#[derive(Clone)]
struct Greeter {
    seen: Seen,
}

impl tonic::server::NamedService for Greeter {
    const NAME: &'static str = "pkg.Greeter";
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Greeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        self.seen
            .lock()
            .unwrap()
            .push((path.clone(), request.version()));
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::new());
            let response = match path.as_str() {
                SAY_HELLO => {
                    let unary =
                        tower::service_fn(|call: tonic::Request<HelloRequest>| async move {
                            let name = call.into_inner().name;
                            if name == "mallory" {
                                return Err(Status::permission_denied(
                                    "mallory may not be greeted",
                                ));
                            }
                            Ok(tonic::Response::new(HelloReply {
                                message: format!("hello {name}"),
                            }))
                        });
                    grpc.unary(unary, request).await
                }
                SAY_HELLOS => {
                    let streaming =
                        tower::service_fn(|call: tonic::Request<HelloRequest>| async move {
                            let HelloRequest { name, count } = call.into_inner();
                            let refused = name == "mallory";
                            let replies = (1..=count).map(move |i| {
                                Ok(HelloReply {
                                    message: format!("hello {name} #{i}"),
                                })
                            });
                            let end = refused.then(|| {
                                Err(Status::aborted(format!("stopped after {count} greetings")))
                            });
                            let stream: ReplyStream = Box::pin(tokio_stream::iter(
                                replies.chain(end).collect::<Vec<_>>(),
                            ));
                            Ok::<_, Status>(tonic::Response::new(stream))
                        });
                    grpc.server_streaming(streaming, request).await
                }
                _ => Status::unimplemented(path).into_http(),
            };
            Ok(response)
        })
    }
}

/// A running tonic server; stopped when dropped.
struct Upstream {
    addr: std::net::SocketAddr,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// `Greeter` on 127.0.0.1: cleartext HTTP/2 (and HTTP/1.1 with
    /// `grpc_web`, which puts tonic-web's translation in front), or TLS
    /// with `identity` (ALPN `h2`).
    async fn start(identity: Option<Identity>, grpc_web: bool) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Seen::default();
        let greeter = Greeter { seen: seen.clone() };
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = identity {
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(identity))
                .unwrap();
        }
        let incoming = TcpIncoming::from(listener);
        let task = if grpc_web {
            let router = builder
                .accept_http1(true)
                .layer(tonic_web::GrpcWebLayer::new())
                .add_service(greeter);
            tokio::spawn(async move {
                router.serve_with_incoming(incoming).await.unwrap();
            })
        } else {
            let router = builder.add_service(greeter);
            tokio::spawn(async move {
                router.serve_with_incoming(incoming).await.unwrap();
            })
        };
        Upstream { addr, seen, task }
    }

    fn seen(&self) -> Vec<(String, Version)> {
        self.seen.lock().unwrap().clone()
    }
}

fn hello(name: &str, count: u32) -> tonic::Request<HelloRequest> {
    let mut request = tonic::Request::new(HelloRequest {
        name: name.to_owned(),
        count,
    });
    request.set_timeout(WAIT);
    request
}

/// The four calls through the gateway on `channel`, each checked.
async fn calls(channel: Channel) {
    let mut client = tonic::client::Grpc::new(channel);
    let path = |p: &'static str| http::uri::PathAndQuery::from_static(p);

    // Unary, OK.
    client.ready().await.unwrap();
    let reply = client
        .unary(
            hello("alice", 0),
            path(SAY_HELLO),
            ProstCodec::<HelloRequest, HelloReply>::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.get_ref().message, "hello alice");

    // Unary, an error: a trailers-only response, its grpc-status and
    // grpc-message in the headers.
    client.ready().await.unwrap();
    let status = client
        .unary(
            hello("mallory", 0),
            path(SAY_HELLO),
            ProstCodec::<HelloRequest, HelloReply>::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "mallory may not be greeted");

    // Server streaming, OK: every message, then grpc-status 0 in the
    // trailers.
    client.ready().await.unwrap();
    let mut stream = client
        .server_streaming(
            hello("bob", 3),
            path(SAY_HELLOS),
            ProstCodec::<HelloRequest, HelloReply>::new(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        got.push(reply.message);
    }
    assert_eq!(got, ["hello bob #1", "hello bob #2", "hello bob #3"]);
    let trailers = stream.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers.get("grpc-status").unwrap().to_str().unwrap(), "0");

    // Server streaming, an error after two messages: the status and its
    // message arrive in the trailers.
    client.ready().await.unwrap();
    let mut stream = client
        .server_streaming(
            hello("mallory", 2),
            path(SAY_HELLOS),
            ProstCodec::<HelloRequest, HelloReply>::new(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stream.message().await.unwrap().unwrap().message,
        "hello mallory #1"
    );
    assert_eq!(
        stream.message().await.unwrap().unwrap().message,
        "hello mallory #2"
    );
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(status.message(), "stopped after 2 greetings");
}

fn config(listen_extra: &str, upstream: &str, tls: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{listen_extra}\n\
         [[route]]\npath = \"/pkg.Greeter/\"\nupstream = \"{upstream}\"\n{tls}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_server_streaming_calls_and_their_statuses_pass_over_h2c() {
    let upstream = Upstream::start(None, false).await;
    let gw = Gw::start(&config("", &format!("h2c://{}", upstream.addr), "")).await;
    let channel = Channel::from_shared(format!("http://{}", gw.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    calls(channel).await;
    let seen = upstream.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|(_, v)| *v == Version::HTTP_2), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_server_streaming_calls_and_their_statuses_pass_over_https_with_alpn_h2() {
    let dir = TempDir::new("grpc-https");
    // The upstream's certificate, trusted by the gateway through ca_file.
    let upstream_ca = TestCa::new("grpc-upstream");
    let upstream_leaf = upstream_ca.leaf(&["127.0.0.1"], 30);
    std::fs::write(dir.join("upstream-ca.pem"), &upstream_ca.pem).unwrap();
    let upstream = Upstream::start(
        Some(Identity::from_pem(
            &upstream_leaf.chain_pem,
            &upstream_leaf.key_pem,
        )),
        false,
    )
    .await;
    // The gateway's certificate, trusted by the client.
    let ca = TestCa::new("grpc-gateway");
    let (cert, key) = ca.leaf(&["localhost"], 30).write(dir.path(), "gateway");
    let text = config(
        &format!(
            "[server.tls]\ncertificates = [{{ cert_file = \"{}\", key_file = \"{}\" }}]\n",
            cert.display(),
            key.display()
        ),
        &format!("https://{}", upstream.addr),
        &format!(
            "[route.upstream_tls]\nca_file = \"{}\"\n",
            dir.join("upstream-ca.pem").display()
        ),
    );
    let gw = Gw::start(&text).await;
    // tonic's client over TLS offers ALPN h2 only: the gateway must pick it.
    let channel = Channel::from_shared(format!("https://{}", gw.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca.pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    calls(channel).await;
    // The upstream speaks only HTTP/2 over TLS (tonic without accept_http1):
    // the gateway got h2 from it by ALPN.
    let seen = upstream.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|(_, v)| *v == Version::HTTP_2), "{seen:?}");
}

/// The TOML of the gRPC-web example in docs/examples.md, listening on
/// 127.0.0.1:0 and routing to `upstream`.
fn docs_grpc_web_example(upstream: &str) -> String {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples.md"),
    )
    .unwrap();
    let section = docs
        .split("## gRPC-web behind the gateway")
        .nth(1)
        .expect("docs/examples.md has a gRPC-web section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the gRPC-web section has a TOML example");
    let mut text = String::new();
    for line in toml.lines() {
        if line.starts_with("listen = ") {
            text.push_str("listen = \"127.0.0.1:0\"\n");
        } else if line.starts_with("upstream = ") {
            text.push_str(&format!("upstream = \"{upstream}\"\n"));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// A gRPC-web message frame (flag 0, big-endian length, the message).
fn grpc_web_frame(message: &HelloRequest) -> Bytes {
    let encoded = prost::Message::encode_to_vec(message);
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).unwrap());
    frame.put_slice(&encoded);
    frame.freeze()
}

/// The frames of a gRPC-web response body: messages (flag 0) and the
/// trailers frame (flag 0x80), as (flag, bytes).
fn grpc_web_frames(mut body: Bytes) -> Vec<(u8, Bytes)> {
    let mut frames = Vec::new();
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        frames.push((flag, body.split_to(len)));
    }
    assert!(body.is_empty(), "a truncated frame");
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_call_from_a_page_is_preflighted_answered_and_its_status_exposed() {
    let upstream = Upstream::start(None, true).await;
    let gw = Gw::start(&docs_grpc_web_example(&format!("h2c://{}", upstream.addr))).await;
    let origin = "https://app.example.com";
    let url = gw.url(SAY_HELLO);

    // The preflight grpc-web's client causes (content-type is not
    // safelisted; x-grpc-web and x-user-agent are its own headers).
    let preflight = send(
        "OPTIONS",
        &url,
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent",
            ),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(origin)
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type,x-grpc-web,x-user-agent")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("7200"));
    assert!(
        upstream.seen().is_empty(),
        "a preflight reached the service"
    );

    // The call, over HTTP/1.1 as the page's fetch sends it.
    let call = |name: &str| {
        let body = grpc_web_frame(&HelloRequest {
            name: name.to_owned(),
            count: 0,
        });
        let request = http::Request::post(&url)
            .header("origin", origin)
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("x-user-agent", "grpc-web-javascript/0.1")
            .body(http_body_util::Full::new(body))
            .unwrap();
        async move {
            let response = tokio::time::timeout(WAIT, support::client().request(request))
                .await
                .expect("no answer in time")
                .unwrap();
            assert_eq!(response.version(), Version::HTTP_11);
            support::read(response).await
        }
    };
    let expose = |answer: &support::Answer| {
        answer
            .joined("access-control-expose-headers")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };

    let ok = call("alice").await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("content-type"),
        Some("application/grpc-web+proto")
    );
    assert_eq!(ok.header("access-control-allow-origin"), Some(origin));
    for name in ["grpc-status", "grpc-message"] {
        assert!(
            expose(&ok).iter().any(|h| h == name),
            "{name} not exposed: {ok:?}"
        );
    }
    let frames = grpc_web_frames(ok.body.clone());
    assert_eq!(frames.len(), 2, "{frames:?}");
    let reply: HelloReply = prost::Message::decode(frames[0].1.clone()).unwrap();
    assert_eq!((frames[0].0, reply.message.as_str()), (0, "hello alice"));
    // The status in the body's trailers frame (gRPC-web over HTTP/1.1 has
    // no trailers of its own).
    assert_eq!(frames[1].0, 0x80);
    let trailers = String::from_utf8(frames[1].1.to_vec()).unwrap();
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");

    // An error: trailers-only, the status in headers the page can read.
    let denied = call("mallory").await;
    assert_eq!(denied.status, 200);
    assert_eq!(denied.header("access-control-allow-origin"), Some(origin));
    assert_eq!(denied.header("grpc-status"), Some("7"));
    assert_eq!(
        denied.header("grpc-message"),
        Some("mallory%20may%20not%20be%20greeted")
    );
    for name in ["grpc-status", "grpc-message"] {
        assert!(
            expose(&denied).iter().any(|h| h == name),
            "{name} not exposed: {denied:?}"
        );
    }

    // Both calls reached the service, over HTTP/2 (h2c://).
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(p, v)| p == SAY_HELLO && *v == Version::HTTP_2),
        "{seen:?}"
    );
}
