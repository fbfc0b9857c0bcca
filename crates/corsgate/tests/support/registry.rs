//! A gateway with a client registry: its configuration (an admin token file
//! and one OAuth2 token route that identifies clients by form), the admin API
//! called with the token, and token requests.

use super::{Answer, Gw, TempDir, send_with};

/// Writes `token` to `dir/token` and returns a configuration with an admin
/// listener reading it, `[registry]` on `database` (plus `registry_extra`
/// lines), and the route `/oauth2/token` to `upstream` (CORS in debug mode,
/// clients identified by form).
pub fn token_route_config(
    dir: &TempDir,
    token: &str,
    database: &str,
    registry_extra: &str,
    upstream: &str,
) -> String {
    let token_file = dir.write("token", &format!("{token}\n"));
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_token_file = "{token_file}"

[registry]
database = "{database}"
{registry_extra}

[[route]]
path = "/oauth2/token"
upstream = "{upstream}"
[route.cors]
debug = true
clients = {{ identify = ["form"] }}
"#,
        token_file = token_file.display(),
    )
}

/// A configuration with an admin listener (no token), `[registry]` on
/// `database` (plus `registry_extra` lines), and the route `/oauth2/token`
/// to `upstream`, clients identified by form.
pub fn form_client_config(database: &str, registry_extra: &str, upstream: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[registry]
database = "{database}"
{registry_extra}

[[route]]
path = "/oauth2/token"
upstream = "{upstream}"
[route.cors]
clients = {{ identify = ["form"] }}
"#
    )
}

/// `sqlite:DIR/registry.db`.
pub fn sqlite(dir: &TempDir) -> String {
    format!("sqlite:{}", dir.join("registry.db").display())
}

/// A JSON call to the admin API with `token` as the bearer token.
pub async fn admin(gw: &Gw, token: &str, method: &str, path: &str, body: &str) -> Answer {
    send_with(
        method,
        &gw.admin_url(path),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

/// A client-credentials token request from `origin` naming `client_id` in its
/// form body, to `/oauth2/token`.
pub async fn token_request(gw: &Gw, origin: &str, client_id: &str) -> Answer {
    send_with(
        "POST",
        &gw.url("/oauth2/token"),
        &[
            ("origin", origin),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("grant_type=client_credentials&client_id={client_id}"),
    )
    .await
}
