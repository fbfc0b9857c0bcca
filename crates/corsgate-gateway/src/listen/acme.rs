//! Automatic certificates (ACME, RFC 8555) for `[server.tls.acme]`.
//!
//! One task per gateway: at start it serves the certificate cached in
//! `cache_dir` if there is one (no request to the CA), then renews it
//! `renew_before` its expiry. A failed issuance is retried with backoff (1
//! minute, doubling, at most 6 hours) while the certificate in place keeps
//! serving. The account key is cached too, so a restart is the same account.
//!
//! The challenges are answered by the gateway itself: tls-alpn-01 (RFC 8737)
//! by the certificate resolver, for handshakes that offer only `acme-tls/1`;
//! http-01 by the redirect listener, at `/.well-known/acme-challenge/TOKEN`.
//!
//! A configuration reload changes the settings of the running task
//! ([`AcmeState::reconfigure`]): new `domains` not covered by the certificate
//! in place are ordered at once, a new `directory` (or `directory_ca_file`)
//! orders a certificate from that CA at once, a new `contact` updates the
//! account (RFC 8555 section 7.3.2); meanwhile the certificate in place keeps
//! serving the names it has. The `challenge` cannot change on a reload (see
//! [`live_change_refused`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use corsgate_config::tls::{AcmeChallenge, AcmeSettings, CertificateFiles};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::tls::{CertInfo, Files, load, provider};
use crate::Shared;

/// ALPN protocol of the tls-alpn-01 challenge (RFC 8737 section 6.2).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// First wait after a failed issuance; doubles on each failure in a row.
const BACKOFF_START: Duration = Duration::from_secs(60);
/// Longest wait between two attempts after failures.
const BACKOFF_MAX: Duration = Duration::from_secs(6 * 3600);
/// Longest sleep between two looks at the certificate (the clock may jump).
const CHECK_EVERY: Duration = Duration::from_secs(12 * 3600);
/// Least time between two orders that succeeded: a `renew_before` longer than
/// the CA's certificates live must not make an order loop.
const MIN_RENEW_INTERVAL: Duration = Duration::from_secs(3600);
/// How long one issuance may take, all requests to the CA included.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(120);

/// The ACME side of the certificate resolver and of the redirect listener.
#[derive(Debug)]
pub(crate) struct AcmeState {
    /// Replaced by a configuration reload.
    settings: ArcSwap<AcmeSettings>,
    /// Wakes the task after a reload changed the settings.
    changed: tokio::sync::Notify,
    /// The directory changed: the next certificate comes from the new CA,
    /// ordered at once.
    reorder: AtomicBool,
    /// The contact changed: the account is updated.
    contact_changed: AtomicBool,
    /// The directory relative paths are read from.
    base: PathBuf,
    /// The certificate issued (or read from the cache), once there is one.
    cert: ArcSwapOption<CertifiedKey>,
    info: Mutex<Option<CertInfo>>,
    /// tls-alpn-01 certificates by domain, while their challenge is pending.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    /// http-01 key authorizations by token, while their challenge is pending.
    http: Mutex<HashMap<String, String>>,
}

impl AcmeState {
    pub(crate) fn new(settings: AcmeSettings, base: PathBuf) -> AcmeState {
        AcmeState {
            settings: ArcSwap::from_pointee(settings),
            changed: tokio::sync::Notify::new(),
            reorder: AtomicBool::new(false),
            contact_changed: AtomicBool::new(false),
            base,
            cert: ArcSwapOption::empty(),
            info: Mutex::new(None),
            alpn: Mutex::new(HashMap::new()),
            http: Mutex::new(HashMap::new()),
        }
    }

    /// The settings it runs with.
    pub(crate) fn settings(&self) -> Arc<AcmeSettings> {
        self.settings.load_full()
    }

    /// Takes the settings of a reloaded configuration (whose `challenge` is
    /// the running one: [`live_change_refused`] checked it) and wakes the
    /// task if they differ.
    pub(crate) fn reconfigure(&self, new: AcmeSettings) {
        let old = self.settings();
        if *old == new {
            return;
        }
        tracing::info!(domains = ?new.domains, directory = %new.directory, "[server.tls.acme] changed: applied to the running ACME task");
        let new = Arc::new(new);
        // The settings first, then the flags: an order that ends meanwhile
        // clears `reorder` only if it was made with the settings in force.
        self.settings.store(new.clone());
        if old.directory != new.directory || old.directory_ca_file != new.directory_ca_file {
            self.reorder.store(true, Ordering::Release);
        }
        if old.contact != new.contact {
            self.contact_changed.store(true, Ordering::Release);
        }
        self.changed.notify_one();
    }

    /// Whether the certificate in place names `name` (a lowercase SNI
    /// name): after a reload changed `domains`, it serves the names it has
    /// until the new one is issued.
    pub(crate) fn covers(&self, name: &str) -> bool {
        self.info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|info| info.names.iter().any(|n| n == name))
    }

    /// Whether the certificate in place names every configured domain.
    fn covers_all(&self, settings: &AcmeSettings) -> bool {
        settings.domains.iter().all(|d| self.covers(d))
    }

    /// The issued certificate, if any.
    pub(crate) fn certificate(&self) -> Option<Arc<CertifiedKey>> {
        self.cert.load_full()
    }

    /// The tls-alpn-01 certificate for `name`, while its challenge is pending.
    pub(crate) fn challenge_certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.alpn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The http-01 key authorization for `token`, while its challenge is
    /// pending.
    pub(crate) fn http_response(&self, token: &str) -> Option<String> {
        self.http
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    pub(crate) fn info(&self) -> Option<CertInfo> {
        self.info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn wants_tls_alpn(&self) -> bool {
        self.settings().challenge == AcmeChallenge::TlsAlpn01
    }

    fn cache_dir(&self) -> PathBuf {
        resolve(&self.base, &self.settings().cache_dir)
    }

    /// The cache files of the certificate: named after its first domain.
    fn cert_files(&self) -> CertificateFiles {
        let settings = self.settings();
        let first = settings.domains.first().map_or("cert", String::as_str);
        let dir = self.cache_dir();
        CertificateFiles {
            cert_file: dir.join(format!("{first}.pem")),
            key_file: dir.join(format!("{first}.key")),
        }
    }

    /// The account's cache file, one per directory URL.
    fn account_file(&self) -> PathBuf {
        let name: String = self
            .settings()
            .directory
            .trim_start_matches("https://")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.cache_dir().join(format!("account-{name}.json"))
    }

    fn install(&self, key: Arc<CertifiedKey>, info: CertInfo) {
        self.cert.store(Some(key));
        *self.info.lock().unwrap_or_else(PoisonError::into_inner) = Some(info);
    }

    /// Reads the cached certificate, if there is one that covers every domain.
    fn load_cached(&self) -> Option<(Arc<CertifiedKey>, CertInfo)> {
        let files = self.cert_files();
        let bytes = Files {
            cert: std::fs::read(&files.cert_file).ok()?,
            key: std::fs::read(&files.key_file).ok()?,
        };
        match load(&files, &bytes) {
            Ok(loaded)
                if self
                    .settings()
                    .domains
                    .iter()
                    .all(|d| loaded.info.names.contains(d)) =>
            {
                Some((loaded.key, loaded.info))
            }
            Ok(_) => {
                tracing::info!(file = %files.cert_file.display(), "the cached ACME certificate does not cover every domain; a new one is ordered");
                None
            }
            Err(err) => {
                tracing::warn!(error = %err, "the cached ACME certificate is unusable; a new one is ordered");
                None
            }
        }
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Writes `bytes` through a temporary file renamed over `path`, so that a
/// crash never leaves half a file; `secret` files are readable by the owner
/// only.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Runs the certificate's life: the cached one at start, then issuance and
/// renewal, until the gateway stops.
pub(crate) async fn run(shared: Arc<Shared>, acme: Arc<AcmeState>) {
    if let Err(err) = std::fs::create_dir_all(acme.cache_dir()) {
        tracing::error!(dir = %acme.cache_dir().display(), error = %err, "cannot create the ACME cache_dir; certificates will not survive a restart");
    }
    if let Some((key, info)) = acme.load_cached() {
        tracing::info!(file = %info.file, not_after = info.not_after, "serving the cached ACME certificate");
        acme.install(key, info);
        shared.metrics.set_acme_certificate(acme.info());
    }
    let mut failures: u32 = 0;
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let settings = acme.settings();
        if acme.contact_changed.swap(false, Ordering::AcqRel) {
            update_contact(&acme).await;
        }
        // New domains after a reload: a cached certificate (in a new
        // cache_dir, say) may cover them already.
        if !acme.covers_all(&settings) && !acme.reorder.load(Ordering::Acquire) {
            if let Some((key, info)) = acme.load_cached() {
                tracing::info!(file = %info.file, "serving the cached ACME certificate, which covers every domain");
                acme.install(key, info);
                shared.metrics.set_acme_certificate(acme.info());
            }
        }
        let renew_before = i64::try_from(settings.renew_before.as_secs()).unwrap_or(i64::MAX);
        let due = acme
            .info()
            .map_or(i64::MIN, |info| info.not_after.saturating_sub(renew_before));
        // A reload that added a domain, or changed the CA: ordered at once,
        // the certificate in place serving meanwhile.
        let due = if acme.covers_all(&settings) && !acme.reorder.load(Ordering::Acquire) {
            due
        } else {
            i64::MIN
        };
        let now = unix_now();
        let wait = if due <= now {
            match tokio::time::timeout(ISSUE_TIMEOUT, issue(&acme)).await {
                Ok(Ok((key, info))) => {
                    tracing::info!(domains = ?settings.domains, not_after = info.not_after, "ACME certificate issued");
                    // Issued for these settings; a reload during the order
                    // has set the flag again.
                    if *acme.settings() == *settings {
                        acme.reorder.store(false, Ordering::Release);
                    }
                    acme.install(key, info);
                    shared.metrics.set_acme_certificate(acme.info());
                    shared.metrics.acme_issued(true);
                    failures = 0;
                    MIN_RENEW_INTERVAL
                }
                result => {
                    let error = match result {
                        Ok(Err(err)) => err,
                        _ => format!("no certificate within {ISSUE_TIMEOUT:?}"),
                    };
                    shared.metrics.acme_issued(false);
                    let wait = BACKOFF_START
                        .saturating_mul(1 << failures.min(16))
                        .min(BACKOFF_MAX);
                    failures = failures.saturating_add(1);
                    let serving = acme.certificate().is_some();
                    tracing::error!(domains = ?settings.domains, error = %error, retry_in = ?wait, serving_previous = serving, "ACME certificate order failed");
                    wait
                }
            }
        } else {
            Duration::from_secs(u64::try_from(due - now).unwrap_or(0)).min(CHECK_EVERY)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = acme.changed.notified() => failures = 0,
            () = crate::until_shutdown(&mut shutdown) => return,
        }
    }
}

/// One order, from account to certificate; the certificate and key are
/// written to the cache before they are served.
async fn issue(acme: &AcmeState) -> Result<(Arc<CertifiedKey>, CertInfo), String> {
    let settings = acme.settings();
    if let Err(err) = std::fs::create_dir_all(acme.cache_dir()) {
        return Err(format!(
            "cannot create cache_dir {}: {err}",
            acme.cache_dir().display()
        ));
    }
    let account = account(acme).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let challenge_type = match settings.challenge {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
    };
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("authorization is {other:?}")),
            }
            let mut challenge = authz.challenge(challenge_type.clone()).ok_or_else(|| {
                format!("the CA offers no {} challenge", settings.challenge.as_str())
            })?;
            let domain = challenge.identifier().to_string();
            let key_authorization = challenge.key_authorization();
            match settings.challenge {
                AcmeChallenge::TlsAlpn01 => {
                    let cert = alpn_certificate(&domain, key_authorization.digest().as_ref())?;
                    acme.alpn
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(domain, cert);
                }
                AcmeChallenge::Http01 => {
                    acme.http
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(
                            challenge.token.clone(),
                            key_authorization.as_str().to_owned(),
                        );
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge ready: {e}"))?;
        }
        let retries = RetryPolicy::new().timeout(Duration::from_secs(60));
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(|e| format!("order: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(format!(
                "the order is {status:?}: the CA could not validate the challenges"
            ));
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain_pem = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        Ok((chain_pem, key_pem))
    }
    .await;
    acme.alpn
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    acme.http
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    let (chain_pem, key_pem) = result?;
    let files = acme.cert_files();
    let bytes = Files {
        cert: chain_pem.into_bytes(),
        key: key_pem.into_bytes(),
    };
    let loaded = load(&files, &bytes).map_err(|e| format!("the issued certificate: {e}"))?;
    write_file(&files.key_file, &bytes.key, true)
        .and_then(|()| write_file(&files.cert_file, &bytes.cert, false))
        .map_err(|e| format!("cannot write the certificate to cache_dir: {e}"))?;
    Ok((loaded.key, loaded.info))
}

/// The account: from the cache, or created (and cached) on first use.
async fn account(acme: &AcmeState) -> Result<Account, String> {
    let settings = acme.settings();
    let builder = || match &settings.directory_ca_file {
        Some(ca) => Account::builder_with_root(resolve(&acme.base, ca))
            .map_err(|e| format!("directory_ca_file: {e}")),
        None => Account::builder().map_err(|e| format!("https client: {e}")),
    };
    let path = acme.account_file();
    if let Ok(text) = std::fs::read_to_string(&path) {
        match serde_json::from_str::<AccountCredentials>(&text) {
            Ok(credentials) => {
                return builder()?
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| format!("account: {e}"));
            }
            Err(err) => {
                tracing::warn!(file = %path.display(), error = %err, "the cached ACME account is unreadable; a new account is created");
            }
        }
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("new account: {e}"))?;
    let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
    write_file(&path, &json, true).map_err(|e| format!("cannot cache the ACME account: {e}"))?;
    Ok(account)
}

/// The account's contact URLs set to the configured ones (RFC 8555 section
/// 7.3.2); a failure is logged and tried again at the next reload.
async fn update_contact(acme: &AcmeState) {
    let settings = acme.settings();
    let result = async {
        let account = account(acme).await?;
        let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
        account
            .update_contacts(&contact)
            .await
            .map_err(|e| format!("account update: {e}"))
    };
    match tokio::time::timeout(ISSUE_TIMEOUT, result).await {
        Ok(Ok(())) => {
            tracing::info!(contact = ?settings.contact, "ACME account contact updated");
        }
        Ok(Err(error)) => {
            tracing::error!(contact = ?settings.contact, error = %error, "ACME account contact not updated");
        }
        Err(_) => {
            tracing::error!(contact = ?settings.contact, "ACME account contact not updated in {ISSUE_TIMEOUT:?}");
        }
    }
}

/// Why a reload's `[server.tls.acme]` cannot replace the running one, as
/// the `(key, message)` of the refusal; `None` when it can (or when there is
/// no ACME on either side).
///
/// Refused: adding or removing the table (the ACME task, and the TLS
/// listener's ALPN list with `acme-tls/1`, are set up at start), and a new
/// `challenge` (tls-alpn-01 needs `acme-tls/1` in that list, http-01 needs
/// the `redirect_listen` listener, both fixed at start).
pub(crate) fn live_change_refused(
    running: Option<&AcmeSettings>,
    new: Option<&AcmeSettings>,
) -> Option<(&'static str, String)> {
    match (running, new) {
        (None, None) => None,
        (None, Some(_)) => Some((
            "server.tls.acme",
            "[server.tls.acme] added: ACME starts with corsgate (its task and the TLS listener's acme-tls/1 protocol are set up at start); restart corsgate to apply it".to_owned(),
        )),
        (Some(_), None) => Some((
            "server.tls",
            "[server.tls.acme] removed: its certificate would stop serving its domains on a reload; restart corsgate to apply it (or keep the table)".to_owned(),
        )),
        (Some(running), Some(new)) if running.challenge != new.challenge => Some((
            "server.tls.acme.challenge",
            format!(
                "{:?} cannot replace {:?} on a reload (tls-alpn-01 needs acme-tls/1 in the TLS listener's protocols, http-01 the redirect_listen listener, both set up at start); restart corsgate to apply it, or keep challenge = {:?}",
                new.challenge.as_str(),
                running.challenge.as_str(),
                running.challenge.as_str()
            ),
        )),
        _ => None,
    }
}

/// The self-signed certificate of a tls-alpn-01 challenge: the domain as its
/// only name, the key authorization's SHA-256 in the critical
/// `acmeIdentifier` extension (RFC 8737 section 3).
fn alpn_certificate(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let key_der =
        PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).map_err(|e| e.to_string())?;
    // Not `CertifiedKey::from_der`: its key check parses the certificate with
    // webpki, which refuses the critical acmeIdentifier extension; the key is
    // the one just made for it.
    let signing_key = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing_key,
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tls_alpn_01_certificate_is_made() {
        let cert = super::alpn_certificate("api.example.com", &[7u8; 32]).unwrap();
        assert_eq!(cert.cert.len(), 1);
    }
}
