//! The built-in demo API (`upstream = "builtin:demo"`), served in-process: a
//! health check and a small in-memory item store, enough to try preflights,
//! credentialed requests and every method from a page.
//!
//! Mounted at its route's path: with `path = "/api"` it answers
//! `GET /api/health`, `GET|POST /api/items`, `GET|PUT|DELETE /api/items/{id}`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::request::body::ResponseBody;
use crate::request::headers::X_REQUEST_ID;

/// Largest JSON body the demo reads.
const MAX_DEMO_BODY: usize = 64 * 1024;
/// Most items the demo keeps: enough to try things, and at most about 200 KB of
/// names, so that a loop of POSTs cannot grow the gateway's memory.
pub(crate) const MAX_DEMO_ITEMS: usize = 1000;

/// The demo's state: its items, kept across reloads.
#[derive(Debug)]
pub(crate) struct Demo {
    items: Mutex<Store>,
}

#[derive(Debug)]
struct Store {
    next_id: u64,
    items: BTreeMap<u64, String>,
}

impl Default for Demo {
    fn default() -> Self {
        let items = BTreeMap::from([(1, "first item".to_owned()), (2, "second item".to_owned())]);
        Demo {
            items: Mutex::new(Store { next_id: 3, items }),
        }
    }
}

impl Demo {
    /// Answers a request whose path, relative to the route, is `path`.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        path: &str,
    ) -> Response<ResponseBody> {
        let request_id = request
            .headers()
            .get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let method = request.method().clone();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let reply = |status: StatusCode, mut body: Value| {
            if let Value::Object(map) = &mut body {
                map.insert("request_id".to_owned(), Value::String(request_id.clone()));
            }
            json_response(status, &body)
        };
        match (segments.as_slice(), &method) {
            (["health"], &Method::GET | &Method::HEAD) => {
                reply(StatusCode::OK, json!({"status": "ok"}))
            }
            (["items"], &Method::GET | &Method::HEAD) => {
                let list = self.list();
                reply(StatusCode::OK, json!({ "items": list }))
            }
            (["items"], &Method::POST) => match read_name(request).await {
                Ok(name) => {
                    let id = {
                        let mut store = self.lock();
                        if store.items.len() >= MAX_DEMO_ITEMS {
                            drop(store);
                            return reply(
                                StatusCode::INSUFFICIENT_STORAGE,
                                json!({
                                    "error": format!("the demo store is full ({MAX_DEMO_ITEMS} items): delete some first"),
                                    "max_items": MAX_DEMO_ITEMS,
                                }),
                            );
                        }
                        let id = store.next_id;
                        store.next_id += 1;
                        store.items.insert(id, name.clone());
                        id
                    };
                    let mut response = reply(StatusCode::CREATED, json!({"id": id, "name": name}));
                    if let Ok(location) = HeaderValue::from_str(&format!("items/{id}")) {
                        response.headers_mut().insert(LOCATION, location);
                    }
                    response
                }
                Err(why) => reply(StatusCode::BAD_REQUEST, json!({ "error": why })),
            },
            (["items", id], _) => {
                let Ok(id) = id.parse::<u64>() else {
                    return reply(StatusCode::NOT_FOUND, json!({"error": "no such item"}));
                };
                self.item(request, id, &method, reply).await
            }
            (["health"] | ["items"], &Method::OPTIONS) => {
                allow(&["GET", "HEAD", "POST", "OPTIONS"])
            }
            (["health"] | ["items"], _) => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method not allowed"}),
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                json!({"error": "not found", "endpoints": ["health", "items", "items/{id}"]}),
            ),
        }
    }

    async fn item(
        &self,
        request: Request<Incoming>,
        id: u64,
        method: &Method,
        reply: impl Fn(StatusCode, Value) -> Response<ResponseBody>,
    ) -> Response<ResponseBody> {
        let missing = || {
            reply(
                StatusCode::NOT_FOUND,
                json!({"error": "no such item", "id": id}),
            )
        };
        match *method {
            Method::GET | Method::HEAD => match self.lock().items.get(&id).cloned() {
                Some(name) => reply(StatusCode::OK, json!({"id": id, "name": name})),
                None => missing(),
            },
            Method::PUT | Method::PATCH => match read_name(request).await {
                Ok(name) => {
                    let mut store = self.lock();
                    match store.items.get_mut(&id) {
                        Some(slot) => {
                            slot.clone_from(&name);
                            drop(store);
                            reply(StatusCode::OK, json!({"id": id, "name": name}))
                        }
                        None => {
                            drop(store);
                            missing()
                        }
                    }
                }
                Err(why) => reply(StatusCode::BAD_REQUEST, json!({ "error": why })),
            },
            Method::DELETE => {
                if self.lock().items.remove(&id).is_some() {
                    let mut response = Response::new(ResponseBody::empty());
                    *response.status_mut() = StatusCode::NO_CONTENT;
                    response
                } else {
                    missing()
                }
            }
            Method::OPTIONS => allow(&["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]),
            _ => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method not allowed"}),
            ),
        }
    }

    fn list(&self) -> Vec<Value> {
        self.lock()
            .items
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads `{"name": "..."}`.
async fn read_name(request: Request<Incoming>) -> Result<String, String> {
    let body = Limited::new(request.into_body(), MAX_DEMO_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("expected JSON such as {{\"name\": \"milk\"}}: {e}"))?;
    match value.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() && name.len() <= 200 => Ok(name.to_owned()),
        _ => Err("expected {\"name\": \"...\"} with a name of 1 to 200 characters".to_owned()),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(ResponseBody::full(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn allow(methods: &[&str]) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    if let Ok(value) = HeaderValue::from_str(&methods.join(", ")) {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}
