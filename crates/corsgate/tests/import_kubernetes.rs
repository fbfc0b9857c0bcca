//! `corsgate import --from ingress-nginx` and `--from gateway-api` on manifests
//! like the ones in those projects' documentation (written out again here):
//! the routes by host and path, the policies (what they allow and refuse), the
//! notes that state each product default, and the notes kept in the output.

mod support;

use support::binary::{Cmd, Ran};

use corsgate_config::check;
use http::HeaderValue;

/// `corsgate import --from FORMAT -` with `manifest` on standard input.
fn import(format: &str, manifest: &str) -> Ran {
    Cmd::new(["import", "--from", format, "-"])
        .stdin(manifest)
        .run()
}

/// Asserts that the route for `host` and `path` allows and refuses these origins.
fn assert_origins(toml: &str, host: &str, path: &str, allowed: &[&str], refused: &[&str]) {
    let checked = check(toml);
    let gateway = checked.gateway.expect("the output is valid");
    let found = gateway.routes.resolve(Some(host), path);
    let route = found
        .route
        .unwrap_or_else(|| panic!("no route for {host}{path}"));
    assert_eq!(route.host.as_deref(), Some(host), "{path}");
    let policy = found.policy.expect("CORS on");
    for origin in allowed {
        assert!(
            policy
                .check_origin(&HeaderValue::from_str(origin).unwrap())
                .is_ok(),
            "{host}{path}: {origin} refused"
        );
    }
    for origin in refused {
        assert!(
            policy
                .check_origin(&HeaderValue::from_str(origin).unwrap())
                .is_err(),
            "{host}{path}: {origin} allowed"
        );
    }
}

/// Every note on stderr is in the output's comments too.
fn assert_notes_in_output(run: &Ran) {
    let comments: String = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| l.trim().trim_start_matches("- "))
        .collect::<Vec<_>>()
        .join(" ");
    let mut count = 0;
    for note in run.stderr.lines() {
        let Some(note) = note.strip_prefix("<stdin>: ") else {
            continue;
        };
        count += 1;
        let words = note.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(comments.contains(&words), "not in the output: {note}");
    }
    assert!(count > 0, "no notes");
}

/// The annotations reference's "Enable CORS" section: `enable-cors` alone.
const ENABLE_CORS_ALONE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: storefront
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/enable-cors: "true"
spec:
  ingressClassName: nginx
  tls:
  - hosts: [api.shop.example]
    secretName: api-tls
  rules:
  - host: api.shop.example
    http:
      paths:
      - path: /v1/
        pathType: Prefix
        backend:
          service:
            name: catalog
            port:
              number: 8080
"#;

#[test]
fn ingress_nginx_enable_cors_alone_is_imported_in_the_safe_form_with_each_default_stated() {
    let run = import("ingress-nginx", ENABLE_CORS_ALONE);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the output passes corsgate check (0 warnings)"),
        "{}",
        run.stderr
    );
    for needed in [
        "enable-cors alone: ingress-nginx's defaults are origin * (cors-allow-origin not set), credentials true (cors-allow-credentials not set)",
        "`Access-Control-Allow-Origin: *` with `Access-Control-Allow-Credentials: true`, a pair browsers refuse",
        "Imported as allow_origins = \"*\" with allow_credentials = false",
        "list their origins instead",
        "ingress-nginx's default is 1728000 s",
        "imported as max_age = 7200",
        "ingress-nginx's default is GET, PUT, POST, DELETE, PATCH, OPTIONS",
        "ingress-nginx's default is DNT, Keep-Alive",
        "placeholder upstream",
        "keep TLS in front",
    ] {
        assert!(
            run.stderr.contains(needed),
            "no {needed:?} in\n{}",
            run.stderr
        );
    }
    for line in [
        "allow_origins = \"*\"",
        "allow_credentials = false",
        "max_age = 7200",
        "allow_methods = [\"PUT\", \"DELETE\", \"PATCH\"]",
        "host = \"api.shop.example\"",
        "path = \"/v1\"",
        "upstream = \"http://127.0.0.1:9000\"  # placeholder for Service shop/catalog:8080 (in the cluster: http://catalog.shop.svc:8080)",
    ] {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(line)),
            "no {line:?} in\n{}",
            run.stdout
        );
    }
    assert_origins(
        &run.stdout,
        "api.shop.example",
        "/v1/products",
        &["https://anyone.example", "http://localhost:3000"],
        &[],
    );
    assert_notes_in_output(&run);
}

/// `kubectl get ingress -A -o yaml`: a `List`, with the annotations reference's
/// example values on one Ingress and none on the other.
const KUBECTL_LIST: &str = r#"
apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata:
    name: petstore-pet
    namespace: default
    annotations:
      nginx.ingress.kubernetes.io/enable-cors: "true"
      nginx.ingress.kubernetes.io/cors-allow-origin: "https://origin-site.com:4443, http://origin-site.com, https://*.example.org:1199"
      nginx.ingress.kubernetes.io/cors-allow-methods: "PUT, GET, POST, OPTIONS"
      nginx.ingress.kubernetes.io/cors-allow-headers: "X-Forwarded-For, X-app123-XPTO"
      nginx.ingress.kubernetes.io/cors-expose-headers: "*, X-CustomResponseHeader"
      nginx.ingress.kubernetes.io/cors-max-age: "600"
      nginx.ingress.kubernetes.io/cors-allow-credentials: "false"
  spec:
    rules:
    - host: petstore.example.com
      http:
        paths:
        - path: /api/v3/pet
          pathType: Exact
          backend:
            service:
              name: petstore
              port:
                number: 80
- apiVersion: networking.k8s.io/v1
  kind: Ingress
  metadata:
    name: petstore-admin
    namespace: default
  spec:
    rules:
    - host: petstore.example.com
      http:
        paths:
        - path: /admin
          pathType: Prefix
          backend:
            service:
              name: petstore-admin
              port:
                name: http
"#;

#[test]
fn ingress_nginx_reads_kubectl_list_output_into_routes_by_host_and_path() {
    let run = import("ingress-nginx", KUBECTL_LIST);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_origins(
        &run.stdout,
        "petstore.example.com",
        "/api/v3/pet",
        &[
            "https://origin-site.com:4443",
            "http://origin-site.com",
            "https://a.example.org:1199",
        ],
        &[
            "https://origin-site.com",
            "https://example.org:1199",
            "https://evil.example",
        ],
    );
    // The Ingress without enable-cors: a route without CORS.
    let gateway = check(&run.stdout).gateway.unwrap();
    let admin = gateway
        .routes
        .resolve(Some("petstore.example.com"), "/admin");
    assert_eq!(admin.route.unwrap().path, "/admin");
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.starts_with("allow_credentials")),
        "credentials set: {}",
        run.stdout
    );
    for needed in [
        "in ingress-nginx `*.` stands for one DNS label",
        "pathType Exact \"/api/v3/pet\": imported as a prefix route",
        "`OPTIONS` in methods is redundant",
        "http://petstore-admin.default.svc and the number of its port \"http\"",
    ] {
        assert!(
            run.stderr.contains(needed) || run.stdout.contains(needed),
            "no {needed:?} in\n{}{}",
            run.stdout,
            run.stderr
        );
    }
    assert!(run.stdout.contains("max_age = 600"));
    assert!(run.stdout.contains("allow_methods = [\"PUT\"]"));
    assert_notes_in_output(&run);
}

#[test]
fn ingress_nginx_reads_several_documents_and_keeps_listed_origins_with_default_credentials() {
    let manifest = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  annotations:
    nginx.ingress.kubernetes.io/enable-cors: "true"
    nginx.ingress.kubernetes.io/cors-allow-origin: "https://app.example.com"
    nginx.ingress.kubernetes.io/cors-max-age: "600"
spec:
  rules:
  - host: api.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: api
            port:
              number: 80
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: docs
  annotations:
    nginx.ingress.kubernetes.io/cors-allow-origin: "*"
spec:
  rules:
  - host: docs.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: docs
            port:
              number: 80
"#;
    let run = import("ingress-nginx", manifest);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_origins(
        &run.stdout,
        "api.example.com",
        "/",
        &["https://app.example.com"],
        &["https://docs.example.com"],
    );
    assert!(
        run.stdout
            .contains("allow_credentials = true  # ingress-nginx's default"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains(
        "cors-allow-credentials: not set: ingress-nginx's default is true: imported as allow_credentials = true"
    ));
    // Annotations without enable-cors did nothing in ingress-nginx.
    assert!(
        run.stderr
            .contains("cors-allow-origin had no effect without enable-cors"),
        "{}",
        run.stderr
    );
    let gateway = check(&run.stdout).gateway.unwrap();
    let docs = gateway.routes.resolve(Some("docs.example.com"), "/");
    assert_eq!(
        docs.route.unwrap().host.as_deref(),
        Some("docs.example.com")
    );
    assert!(docs.policy.is_none_or(|p| {
        p.check_origin(&HeaderValue::from_static("https://app.example.com"))
            .is_err()
    }));
}

/// The Gateway API's HTTPRoute CORS example: one rule without credentials, one
/// with `*` and credentials (which the gateway answered by echoing any origin).
const HTTPROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-cors
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  hostnames:
  - cors.example.com
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /cors-behavior-creds-false
    backendRefs:
    - name: infra-backend-v1
      port: 8080
    filters:
    - type: CORS
      cors:
        allowOrigins:
        - "https://www.foo.com"
        - "https://*.bar.com"
        allowMethods: [GET, OPTIONS, DELETE]
        allowHeaders: ["x-header-1", "x-header-2"]
        exposeHeaders: ["x-header-3", "x-header-4"]
        allowCredentials: false
        maxAge: 3600
  - matches:
    - path:
        type: Exact
        value: /cors-behavior-creds-true
      headers:
      - name: version
        value: two
    - path:
        type: RegularExpression
        value: /api/v[0-9]+/users
    backendRefs:
    - name: infra-backend-v2
      port: 8080
    filters:
    - type: CORS
      cors:
        allowOrigins: ["*"]
        allowMethods: ["*"]
        allowHeaders: ["*"]
        allowCredentials: true
  - backendRefs:
    - name: infra-backend-v3
      port: 8080
"#;

#[test]
fn gateway_api_cors_filters_become_route_policies_and_star_with_credentials_exits_1() {
    let run = import("gateway-api", HTTPROUTE);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("does not pass corsgate check"));
    assert!(
        run.stderr
            .contains("the Gateway API has the gateway echo every origin instead of `*`"),
        "{}",
        run.stderr
    );
    for needed in [
        "path Exact \"/cors-behavior-creds-true\": imported as a prefix route",
        "the match also tested headers",
        "path RegularExpression \"/api/v[0-9]+/users\"",
        "imported as the prefix \"/api\"",
        "\"authorization\" added",
        "the Gateway API's default is 5 s",
    ] {
        assert!(
            run.stderr.contains(needed),
            "no {needed:?} in\n{}",
            run.stderr
        );
    }
    // Listing the origins, as the note says, makes it pass; the first rule's
    // policy then allows what the filter allowed, and no more.
    let fixed = run.stdout.replace(
        "allow_origins = \"*\"",
        "allow_origins = [\"https://app.example.com\"]",
    );
    assert!(!check(&fixed).has_errors(), "{fixed}");
    assert_origins(
        &fixed,
        "cors.example.com",
        "/cors-behavior-creds-false",
        &[
            "https://www.foo.com",
            "https://a.bar.com",
            "https://a.b.bar.com",
        ],
        &["https://foo.com", "https://bar.com", "http://www.foo.com"],
    );
    assert_origins(
        &fixed,
        "cors.example.com",
        "/api/v1/users",
        &["https://app.example.com"],
        &["https://www.foo.com"],
    );
    // The rule without matches: the default PathPrefix "/".
    let gateway = check(&fixed).gateway.unwrap();
    let rest = gateway.routes.resolve(Some("cors.example.com"), "/other");
    assert_eq!(rest.route.unwrap().path, "/");
    assert!(
        run.stdout
            .contains("http://infra-backend-v3.gateway-conformance-infra.svc:8080"),
        "{}",
        run.stdout
    );
    assert_notes_in_output(&run);
}

#[test]
fn gateway_api_without_credentials_passes_check_and_states_the_defaults() {
    let manifest = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: public-api
spec:
  hostnames: ["api.example.com", "*.apps.example.com"]
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins: ["https://*.example.com"]
    backendRefs:
    - name: api
      port: 80
      weight: 90
    - name: api-canary
      port: 80
      weight: 10
"#;
    let run = import("gateway-api", manifest);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for needed in [
        "allowMethods: not set: only the CORS-safelisted methods",
        "maxAge: not set: the Gateway API's default is 5 s",
        "host \"*.apps.example.com\": a corsgate route matches one host name exactly",
        "2 backendRefs shared the traffic by weight",
    ] {
        assert!(
            run.stderr.contains(needed),
            "no {needed:?} in\n{}",
            run.stderr
        );
    }
    let keys: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        !keys.iter().any(|l| l.starts_with("max_age")),
        "{}",
        run.stdout
    );
    assert!(
        !keys.iter().any(|l| l.starts_with("allow_credentials")),
        "{}",
        run.stdout
    );
    assert_origins(
        &run.stdout,
        "api.example.com",
        "/",
        &["https://app.example.com"],
        &["https://example.com", "https://app.example.org"],
    );
    assert_notes_in_output(&run);
}

#[test]
fn kubernetes_imports_refuse_other_kinds_and_other_files_with_exit_2() {
    let run = import("gateway-api", ENABLE_CORS_ALONE);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("no HTTPRoute in the file (found Ingress)"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    let run = import("ingress-nginx", HTTPROUTE);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("no Ingress in the file (found HTTPRoute)")
    );
    let run = import("ingress-nginx", "server { listen 80; }");
    assert_eq!(run.code, Some(2));
    let run = import("ingress-nginx", "a: &x 1\nb: *x\n");
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("YAML alias"), "{}", run.stderr);
}
