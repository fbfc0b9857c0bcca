//! A tower [`Layer`] that applies a [`corsgate_policy::Policy`] to an HTTP service:
//! preflights are answered without calling the service, and the layer owns the
//! `Access-Control-*` headers of every response.
//!
//! ```
//! use corsgate_policy::{CorsConfig, Policy};
//! use corsgate_tower::CorsLayer;
//! use http::{Request, Response, StatusCode};
//! use std::convert::Infallible;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio_test_block_on(async {
//! let policy = Policy::compile(
//!     &CorsConfig::new().allow_origins("https://app.example.com").allow_methods("PUT"),
//! ).unwrap();
//! let app = ServiceBuilder::new()
//!     .layer(CorsLayer::new(policy))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new(String::from("hello")))
//!     }));
//!
//! let preflight = Request::options("/items/1")
//!     .header("origin", "https://app.example.com")
//!     .header("access-control-request-method", "PUT")
//!     .body(String::new())
//!     .unwrap();
//! let response = app.oneshot(preflight).await.unwrap();
//! assert_eq!(response.status(), StatusCode::NO_CONTENT);
//! assert_eq!(response.headers()["access-control-allow-methods"], "PUT");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
#![warn(missing_docs, missing_debug_implementations)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use corsgate_policy::{Decision, Policy};
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

/// A policy that can be replaced while requests are being served: each request
/// uses the policy current when it arrived, start to finish.
///
/// ```
/// use corsgate_policy::{CorsConfig, Policy};
/// use corsgate_tower::{CorsLayer, PolicyHandle};
///
/// let handle = PolicyHandle::new(Policy::default());
/// let layer = CorsLayer::from_handle(handle.clone());
/// // Later, after compiling a new configuration:
/// let next = Policy::compile(&CorsConfig::new().allow_origins("https://a.example")).unwrap();
/// handle.store(next);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct PolicyHandle {
    current: Arc<ArcSwap<Policy>>,
}

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(policy)),
        }
    }

    /// Replaces the policy; requests already decided keep the old one.
    pub fn store(&self, policy: Policy) {
        self.current.store(Arc::new(policy));
    }

    /// The current policy.
    pub fn load(&self) -> Arc<Policy> {
        self.current.load_full()
    }
}

#[derive(Debug, Clone)]
enum Source {
    Fixed(Arc<Policy>),
    Swappable(PolicyHandle),
}

impl Source {
    /// The answer made here, or the decision to apply to the app's response.
    #[allow(clippy::result_large_err)]
    fn answer_or_decide<ReqBody, ResBody>(
        &self,
        request: &Request<ReqBody>,
        empty_body: ResBody,
    ) -> Result<Response<ResBody>, Decision> {
        let (method, headers) = (request.method(), request.headers());
        match self {
            Source::Fixed(policy) => policy.answer_or_decide(method, headers, empty_body),
            Source::Swappable(handle) => handle
                .current
                .load()
                .answer_or_decide(method, headers, empty_body),
        }
    }
}

/// Applies a CORS policy to every request of the wrapped service.
///
/// Building one cannot fail: the policy was validated when it was compiled.
///
/// ```
/// use corsgate_policy::{CorsConfig, Policy};
/// use corsgate_tower::CorsLayer;
/// use tower::ServiceBuilder;
/// # use http::{Request, Response};
/// # use std::convert::Infallible;
///
/// let policy = Policy::compile(&CorsConfig::new().allow_origins("https://app.example.com")).unwrap();
/// let layer = CorsLayer::new(policy);
/// let service = ServiceBuilder::new().layer(layer).service(tower::service_fn(
///     |_request: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) },
/// ));
/// # let _ = service;
/// ```
#[derive(Debug, Clone)]
pub struct CorsLayer {
    source: Source,
}

impl CorsLayer {
    /// A layer with a fixed policy.
    pub fn new(policy: Policy) -> Self {
        Self::from_arc(Arc::new(policy))
    }

    fn from_arc(policy: Arc<Policy>) -> Self {
        Self {
            source: Source::Fixed(policy),
        }
    }

    /// A layer whose policy can be swapped at run time through `handle`.
    pub fn from_handle(handle: PolicyHandle) -> Self {
        Self {
            source: Source::Swappable(handle),
        }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cors {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service made by [`CorsLayer`]: answers preflights and refusals itself
/// and writes the decision onto every response of the inner service.
///
/// ```
/// use corsgate_policy::{CorsConfig, Policy};
/// use corsgate_tower::{Cors, CorsLayer};
/// use http::{Request, Response};
/// use std::convert::Infallible;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let policy = Policy::compile(&CorsConfig::new().allow_origins("https://app.example.com")).unwrap();
/// let app = service_fn(|_request: Request<String>| async {
///     Ok::<_, Infallible>(Response::new(String::from("hello")))
/// });
/// let service: Cors<_> = CorsLayer::new(policy).layer(app);
/// let request = Request::get("/").header("origin", "https://app.example.com").body(String::new()).unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
/// assert_eq!(response.headers()["vary"], "Origin");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Cors<S> {
    inner: S,
    source: Source,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Preflights and refusals are answered here: the service never sees them.
        match self.source.answer_or_decide(&request, ResBody::default()) {
            Ok(response) => ResponseFuture {
                state: State::Ready {
                    response: Some(response),
                },
            },
            Err(decision) => ResponseFuture {
                state: State::Inner {
                    future: self.inner.call(request),
                    decision,
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Cors`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Ready { response: Option<Response<B>> },
        Inner { #[pin] future: F, decision: Decision },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            StateProj::Inner { future, decision } => {
                let mut response = std::task::ready!(future.poll(cx))?;
                decision.apply(response.headers_mut());
                Poll::Ready(Ok(response))
            }
        }
    }
}
