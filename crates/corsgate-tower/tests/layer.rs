//! The shared case table through the tower layer, with a spy inner service.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use corsgate_cases::CASES;
use corsgate_policy::{CorsConfig, Policy};
use corsgate_tower::{CorsLayer, PolicyHandle};
use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};

/// An inner service that counts its calls and answers with its own (wrong) CORS
/// headers, which the layer must replace.
fn spy(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(move |_req: Request<String>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let response = Response::builder()
                .header("access-control-allow-origin", "*")
                .header("access-control-allow-credentials", "true")
                .header("x-app", "yes")
                .body(String::from("app"))
                .unwrap();
            Ok(response)
        }
    })
}

fn request(case: &corsgate_cases::Case) -> Request<String> {
    let mut request = Request::builder()
        .method(case.method())
        .uri("/resource")
        .body(String::new())
        .unwrap();
    *request.headers_mut() = case.request_headers();
    request
}

#[tokio::test]
async fn every_case_through_the_layer() {
    let mut failures = Vec::new();
    for case in CASES {
        let calls = Arc::new(AtomicUsize::new(0));
        let service = CorsLayer::new(case.compile()).layer(spy(calls.clone()));
        let response = service.oneshot(request(case)).await.unwrap();
        let reached = calls.load(Ordering::SeqCst) == 1;
        if reached != case.reaches_app() {
            failures.push(format!(
                "case {}: reached app = {reached}, expected {}",
                case.name,
                case.reaches_app()
            ));
        }
        let status = response.status().as_u16();
        let expected_status = case.status.unwrap_or(200);
        if status != expected_status {
            failures.push(format!(
                "case {}: status {status}, expected {expected_status}",
                case.name
            ));
        }
        if let Err(problem) = case.check_headers(response.headers()) {
            failures.push(problem);
        }
        if reached && response.headers().get("x-app").is_none() {
            failures.push(format!(
                "case {}: the app's own headers were lost",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn preflight_never_reaches_the_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let policy = Policy::compile(
        &CorsConfig::new()
            .allow_origins("https://a.example")
            .allow_methods("PUT"),
    )
    .unwrap();
    let service = CorsLayer::new(policy).layer(spy(calls.clone()));
    for method in ["PUT", "DELETE"] {
        let request = Request::options("/x")
            .header("origin", "https://a.example")
            .header("access-control-request-method", method)
            .body(String::new())
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert!(matches!(
            response.status(),
            StatusCode::NO_CONTENT | StatusCode::FORBIDDEN
        ));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn swapping_the_policy_mid_run_changes_the_next_request_only() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handle = PolicyHandle::new(Policy::default());
    let service = CorsLayer::from_handle(handle.clone()).layer(spy(calls));
    let get = || {
        Request::get("/x")
            .header("origin", "https://new.example")
            .body(String::new())
            .unwrap()
    };

    let before = service.clone().oneshot(get()).await.unwrap();
    assert!(
        before
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "closed policy emits nothing"
    );

    handle.store(Policy::compile(&CorsConfig::new().allow_origins("https://new.example")).unwrap());
    let after = service.clone().oneshot(get()).await.unwrap();
    assert_eq!(
        after.headers()["access-control-allow-origin"],
        "https://new.example"
    );
}

#[tokio::test]
async fn vary_from_the_app_is_kept_and_origin_appended_once() {
    let policy = Policy::compile(&CorsConfig::new().allow_origins("https://a.example")).unwrap();
    for (app_vary, expected) in [
        (vec!["Accept-Encoding"], vec!["Accept-Encoding", "Origin"]),
        (vec!["origin"], vec!["origin"]),
        (
            vec!["Accept-Encoding, Origin"],
            vec!["Accept-Encoding, Origin"],
        ),
        (vec!["*"], vec!["*"]),
    ] {
        let app = service_fn(move |_req: Request<String>| {
            let app_vary = app_vary.clone();
            async move {
                let mut response = Response::new(String::new());
                for v in app_vary {
                    response.headers_mut().append("vary", v.parse().unwrap());
                }
                Ok::<_, Infallible>(response)
            }
        });
        let service = CorsLayer::new(policy.clone()).layer(app);
        let request = Request::get("/")
            .header("origin", "https://a.example")
            .body(String::new())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        let vary: Vec<_> = response
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(vary, expected);
    }
}
