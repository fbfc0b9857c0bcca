//! A WebSocket upstream that greets and echoes, and a client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WAIT;

/// A client's WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `ws://ADDR/ws` with `Origin: ORIGIN`; the handshake's answer must
/// come within [`WAIT`].
pub async fn connect(addr: SocketAddr, origin: &str) -> Result<(Ws, Response), tungstenite::Error> {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_str(origin).unwrap());
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("no handshake answer in time")
}

/// An upstream that accepts WebSocket handshakes, sends `welcome` on each, and
/// echoes every text or binary message.
pub struct WsEcho {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WsEcho {
    pub async fn start() -> WsEcho {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    if ws.send(Message::text("welcome")).await.is_err() {
                        return;
                    }
                    while let Some(Ok(message)) = ws.next().await {
                        if (message.is_text() || message.is_binary())
                            && ws.send(message).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        WsEcho {
            addr,
            accepted,
            task,
        }
    }

    /// Handshakes completed.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
