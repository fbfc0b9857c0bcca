//! HTTPS: TLS termination with rustls, certificates chosen by SNI, reloaded
//! without dropping a connection.
//!
//! The certificates live in a [`CertStore`] behind an [`ArcSwap`]: a reload
//! builds a whole new store (every file read, every key matched to its
//! certificate) and swaps it in; a connection already past its handshake keeps
//! the certificate it was given, new handshakes see the new store. A store
//! that fails to build (a half-written file, a key for another certificate)
//! is never swapped in: the old certificates keep serving.
//!
//! rustls speaks TLS 1.2 and 1.3 only, with AEAD suites and forward secrecy
//! only (no CBC, no RSA key exchange); that is the whole "modern" profile, and
//! nothing here can widen it.

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use corsgate_config::tls::{CertificateFiles, TlsSettings};
use corsgate_policy::{Diagnostic, DiagnosticKind};
use notify::{RecursiveMode, Watcher};
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::acme::{ACME_TLS_ALPN, AcmeState};
use crate::Shared;
use crate::observe::metrics::Metrics;

/// A certificate that expires within this is a warning of `check`.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Quiet time after a certificate file event before reloading, and between
/// the two reads that must agree (the configuration watcher's rule).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The crypto provider: aws-lc-rs (see the workspace's Cargo.toml for why),
/// with its default suites and key exchange groups, post-quantum hybrid first.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// One certificate, loaded: the chain and key rustls serves, and what the
/// gateway reports about it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) info: CertInfo,
}

/// What the metrics and logs say about a certificate.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    /// The `cert_file` as written.
    pub(crate) file: String,
    /// The DNS names of its subjectAltName, lowercase (`*.example.com` for a
    /// wildcard).
    pub(crate) names: Vec<String>,
    /// notAfter, in seconds since the Unix epoch.
    pub(crate) not_after: i64,
}

/// Why a certificate could not be loaded: the setting to blame and the
/// message.
#[derive(Debug)]
pub(crate) struct LoadError {
    /// `cert_file` or `key_file`.
    pub(crate) key: &'static str,
    pub(crate) file: String,
    pub(crate) message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// The bytes of a certificate's two files.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Files {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
}

fn read_files(files: &CertificateFiles, base: &Path) -> Result<Files, LoadError> {
    let read = |key: &'static str, path: &Path| {
        std::fs::read(resolve_path(base, path)).map_err(|err| LoadError {
            key,
            file: path.display().to_string(),
            message: format!("cannot read: {err}"),
        })
    };
    Ok(Files {
        cert: read("cert_file", &files.cert_file)?,
        key: read("key_file", &files.key_file)?,
    })
}

/// Parses a certificate's files: the chain (leaf first), the key, that the key
/// is the leaf's, and the leaf's names and expiry.
pub(crate) fn load(files: &CertificateFiles, bytes: &Files) -> Result<Loaded, LoadError> {
    let cert_name = files.cert_file.display().to_string();
    let key_name = files.key_file.display().to_string();
    let cert_error = |message: String| LoadError {
        key: "cert_file",
        file: cert_name.clone(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(&bytes.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| cert_error(format!("not a PEM certificate chain: {err}")))?;
    if chain.is_empty() {
        return Err(cert_error(
            "no certificate in it (a PEM file with -----BEGIN CERTIFICATE----- blocks, leaf first)"
                .to_owned(),
        ));
    }
    let mut info = None;
    for (i, der) in chain.iter().enumerate() {
        let (_, parsed) = x509_parser::parse_x509_certificate(der).map_err(|err| {
            cert_error(format!(
                "certificate {} of the chain does not parse: {err}",
                i + 1
            ))
        })?;
        if i == 0 {
            info = Some(CertInfo {
                file: cert_name.clone(),
                names: dns_names(&parsed),
                not_after: parsed.validity().not_after.timestamp(),
            });
        }
    }
    let info = info.ok_or_else(|| cert_error("no certificate in it".to_owned()))?;
    let key = PrivateKeyDer::from_pem_slice(&bytes.key).map_err(|err| LoadError {
        key: "key_file",
        file: key_name.clone(),
        message: format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {err}"),
    })?;
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|err| LoadError {
        key: "key_file",
        file: key_name.clone(),
        message: match err {
            rustls::Error::InconsistentKeys(_) => format!(
                "this key does not belong to the certificate in {cert_name} (their public keys differ)"
            ),
            other => format!("unusable private key: {other}"),
        },
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        info,
    })
}

/// The leaf's DNS names (subjectAltName), lowercase. Browsers ignore the
/// subject's common name (RFC 6125, section 6.4.4), and so does SNI here.
fn dns_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    names
}

/// The certificates of one configuration, indexed by name.
#[derive(Debug)]
struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*.`: `*.example.com` is under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The first certificate: for clients without SNI or with a name no
    /// certificate has. None with ACME alone.
    default: Option<Arc<CertifiedKey>>,
    infos: Vec<CertInfo>,
}

impl CertStore {
    fn new(loaded: Vec<Loaded>) -> CertStore {
        let default = loaded.first().map(|l| l.key.clone());
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut infos = Vec::with_capacity(loaded.len());
        for cert in loaded {
            for name in &cert.info.names {
                // The first certificate that names a host wins, as in the file.
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard
                        .entry(suffix.to_owned())
                        .or_insert_with(|| cert.key.clone()),
                    None => exact
                        .entry(name.clone())
                        .or_insert_with(|| cert.key.clone()),
                };
            }
            infos.push(cert.info);
        }
        CertStore {
            exact,
            wildcard,
            default,
            infos,
        }
    }

    /// The certificate that names `name`: an exact name first, then a
    /// wildcard one label up (a wildcard covers exactly one label, RFC 6125
    /// section 6.4.3).
    fn named(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(key) = self.exact.get(name) {
            return Some(key.clone());
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).cloned()
    }
}

/// rustls asks this for the certificate of each handshake.
#[derive(Debug)]
struct Resolver {
    store: ArcSwap<CertStore>,
    acme: Option<Arc<AcmeState>>,
}

impl ResolvesServerCert for Resolver {
    /// The configured certificate that names the SNI name, else the ACME
    /// certificate if it does, else the default (the first configured, or
    /// the ACME one). A handshake that offers `acme-tls/1` is a tls-alpn-01
    /// validation and gets the challenge certificate or nothing (RFC 8737
    /// section 3).
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello
            .server_name()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        if let Some(acme) = &self.acme {
            if hello
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
            {
                return acme.challenge_certificate(name.as_deref()?);
            }
        }
        let store = self.store.load();
        if let Some(name) = &name {
            if let Some(key) = store.named(name) {
                return Some(key);
            }
            if let Some(acme) = self.acme.as_ref().filter(|a| a.covers(name)) {
                if let Some(key) = acme.certificate() {
                    return Some(key);
                }
            }
        }
        store
            .default
            .clone()
            .or_else(|| self.acme.as_ref().and_then(|a| a.certificate()))
    }
}

/// Sessions kept for resumption: as many as rustls keeps by default.
const SESSION_CACHE: usize = 256;

thread_local! {
    /// Whether rustls stored a session during the handshake step being
    /// polled on this thread (see [`Issuing`]): what it writes next in that
    /// step ends the handshake.
    static ISSUED: Cell<bool> = const { Cell::new(false) };
}

/// rustls' session cache, which also tells [`Tls::accept`] when a handshake
/// issues a session: rustls stores it just before it writes what ends the
/// handshake (TLS 1.3: the session tickets, RFC 8446 section 4.6.1; TLS 1.2:
/// the server's ChangeCipherSpec and Finished, RFC 5246 section 7.3).
#[derive(Debug)]
struct Issuing(Arc<ServerSessionMemoryCache>);

impl StoresServerSessions for Issuing {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        ISSUED.set(true);
        self.0.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.take(key)
    }

    fn can_cache(&self) -> bool {
        self.0.can_cache()
    }
}

/// A client socket under TLS that holds back what ends the handshake (the
/// TLS 1.3 session tickets) until the first response bytes, and writes both
/// at once: one write and one TCP segment (the socket has TCP_NODELAY)
/// instead of two. The client needs the tickets only for a later connection,
/// and reads them before the response it waits for either way; nginx sends
/// them in two writes of their own. At most the tickets (a few hundred
/// bytes) are held.
pub(crate) struct Coalesce<IO> {
    io: IO,
    held: Vec<u8>,
    /// Until the handshake has ended: flushes leave `held` alone (tokio-rustls
    /// flushes at the end of every handshake).
    accepting: bool,
}

impl<IO: AsyncWrite + Unpin> Coalesce<IO> {
    fn new(io: IO) -> Coalesce<IO> {
        Coalesce {
            io,
            held: Vec::new(),
            accepting: true,
        }
    }

    /// The socket under it.
    pub(crate) fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Whether this write belongs to the end of a handshake, to be held.
    fn holds(&self) -> bool {
        self.accepting && ISSUED.get()
    }

    /// Writes the held bytes, then as much of `bufs` as the socket takes in
    /// the same write; the count is of `bufs` only.
    fn poll_write_after_held(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        while !self.held.is_empty() {
            let mut slices = Vec::with_capacity(bufs.len() + 1);
            slices.push(io::IoSlice::new(&self.held));
            slices.extend(bufs.iter().map(|b| io::IoSlice::new(b)));
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n < self.held.len() {
                self.held.drain(..n);
                continue;
            }
            let from_bufs = n - self.held.len();
            self.held = Vec::new();
            if from_bufs > 0 {
                return Poll::Ready(Ok(from_bufs));
            }
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    /// Writes the held bytes on their own.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        self.held = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Coalesce<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Coalesce<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.holds() {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        if this.held.is_empty() {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        this.poll_write_after_held(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.holds() {
            let mut n = 0;
            for buf in bufs {
                this.held.extend_from_slice(buf);
                n += buf.len();
            }
            return Poll::Ready(Ok(n));
        }
        if this.held.is_empty() {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        this.poll_write_after_held(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.accepting {
            std::task::ready!(this.poll_release(cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_release(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Reads and loads every certificate; the first failure stops it.
fn load_all(settings: &TlsSettings, base: &Path) -> Result<(CertStore, Vec<Files>), LoadError> {
    let mut loaded = Vec::with_capacity(settings.certificates.len());
    let mut read = Vec::with_capacity(settings.certificates.len());
    for files in &settings.certificates {
        let bytes = read_files(files, base)?;
        loaded.push(load(files, &bytes)?);
        read.push(bytes);
    }
    Ok((CertStore::new(loaded), read))
}

/// The TLS side of a running gateway: the acceptor and the certificates it
/// serves.
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    /// The directory relative certificate paths are read from.
    base: PathBuf,
    /// The certificate files in force; serializes reloads.
    files: Mutex<Vec<CertificateFiles>>,
    /// Watches the certificates' directories; replaced when the files change.
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    metrics: Arc<Metrics>,
    /// `[server.tls.acme]`, as started.
    pub(crate) acme: Option<Arc<AcmeState>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("base", &self.base).finish()
    }
}

/// Why the certificates could not be loaded at start.
pub(crate) fn start_error(err: &str) -> crate::Error {
    crate::Error::Tls(err.to_owned())
}

impl Tls {
    /// Loads every certificate; an error names the file and what is wrong.
    pub(crate) fn new(
        settings: &TlsSettings,
        base: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Result<Tls, crate::Error> {
        let (store, _) = load_all(settings, &base).map_err(|e| start_error(&e.to_string()))?;
        metrics.set_certificates(&store.infos);
        let acme = settings
            .acme
            .clone()
            .map(|acme| Arc::new(AcmeState::new(acme, base.clone())));
        let resolver = Arc::new(Resolver {
            store: ArcSwap::from_pointee(store),
            acme: acme.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| start_error(&e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.session_storage = Arc::new(Issuing(ServerSessionMemoryCache::new(SESSION_CACHE)));
        // h2 first: a client that speaks both gets HTTP/2 (RFC 7301 lets the
        // server choose; browsers offer both).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        if acme.as_ref().is_some_and(|a| a.wants_tls_alpn()) {
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            base,
            files: Mutex::new(settings.certificates.clone()),
            watcher: Mutex::new(None),
            metrics,
            acme,
        })
    }

    /// The rustls configuration handshakes are made with.
    #[cfg(feature = "bench")]
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.acceptor.config().clone()
    }

    /// Loads the certificates again (from `settings`, which a configuration
    /// reload may have changed) and swaps them in if every one loads. With
    /// `settled`, the files are read twice a debounce apart and must agree: a
    /// writer may still be at them.
    pub(crate) fn reload(&self, settings: &TlsSettings, settled: bool) -> bool {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let loaded = load_all(settings, &self.base);
        let (store, read) = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                tracing::error!(file = %err.file, setting = err.key, error = %err.message, "certificate reload failed; the previous certificates keep serving");
                self.metrics.reloaded(false);
                return false;
            }
        };
        if settled {
            std::thread::sleep(DEBOUNCE);
            let again: Result<Vec<Files>, LoadError> = settings
                .certificates
                .iter()
                .map(|f| read_files(f, &self.base))
                .collect();
            if again.ok().as_ref() != Some(&read) {
                tracing::info!(
                    "a certificate file is still being written; it is reloaded once the writing ends"
                );
                return false;
            }
        }
        self.metrics.set_certificates(&store.infos);
        let names: Vec<&str> = store
            .infos
            .iter()
            .flat_map(|i| i.names.iter().map(String::as_str))
            .collect();
        tracing::info!(certificates = store.infos.len(), names = ?names, "certificates loaded");
        self.resolver.store.store(Arc::new(store));
        *files = settings.certificates.clone();
        self.metrics.reloaded(true);
        true
    }

    /// The TLS handshake of a new client connection, bounded by `timeout` (the
    /// header read timeout: a client that stalls its handshake is one that
    /// stalls its request head) and cut short by shutdown.
    ///
    /// What ends the handshake leaves with the first response bytes (see
    /// [`Coalesce`]) over TLS 1.3; over TLS 1.2 the client waits for it, and
    /// it leaves at once.
    pub(crate) async fn accept<IO>(
        &self,
        stream: IO,
        timeout: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<TlsStream<Coalesce<IO>>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut accept = self.acceptor.accept(Coalesce::new(stream));
        let handshake = async {
            // ISSUED covers one step of this handshake: the poll below runs
            // on this thread from start to end, other connections' steps
            // before or after it.
            let mut stream = std::future::poll_fn(|cx| {
                ISSUED.set(false);
                let polled = Pin::new(&mut accept).poll(cx);
                ISSUED.set(false);
                polled
            })
            .await?;
            let (io, conn) = stream.get_mut();
            io.accepting = false;
            if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
                std::future::poll_fn(|cx| stream.get_mut().0.poll_release(cx)).await?;
            }
            Ok::<_, io::Error>(stream)
        };
        let handshake = tokio::time::timeout(timeout, handshake);
        tokio::select! {
            result = handshake => match result {
                // A tls-alpn-01 validation: the handshake was all of it
                // (RFC 8737 section 3); no HTTP on this connection.
                Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => None,
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "TLS handshake failed");
                    self.metrics.tls_handshake_failed();
                    None
                }
                Err(_) => {
                    tracing::debug!("TLS handshake not finished within the header read timeout");
                    self.metrics.tls_handshake_failed();
                    None
                }
            },
            _ = shutdown.wait_for(|stop| *stop) => None,
        }
    }
}

/// Watches the directories of the certificate files, and reloads the
/// certificates when one of them was written (closed after writing, or
/// renamed in place: what `certbot`, `cp` and editors do).
pub(crate) fn watch(shared: &Arc<Shared>) {
    let Some(tls) = &shared.tls else { return };
    let files = tls
        .files
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let paths: Vec<PathBuf> = files
        .iter()
        .flat_map(|f| [&f.cert_file, &f.key_file])
        .map(|p| resolve_path(&tls.base, p))
        .collect();
    let mut dirs: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| p.parent().map(Path::to_owned))
        .collect();
    dirs.sort();
    dirs.dedup();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watched = paths.clone();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !crate::reload::is_complete_write(&event.kind) {
                return;
            }
            if event.paths.iter().any(|p| {
                watched
                    .iter()
                    .any(|w| w == p || (w.file_name() == p.file_name() && w.parent() == p.parent()))
            }) {
                let _ = tx.try_send(());
            }
        },
    ) {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch the certificate files; reload them with SIGHUP");
            return;
        }
    };
    for dir in &dirs {
        if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot watch a certificate directory; reload with SIGHUP");
        }
    }
    *tls.watcher.lock().unwrap_or_else(PoisonError::into_inner) = Some(watcher);
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut shutdown = shared.shutdown.subscribe();
        loop {
            tokio::select! {
                () = crate::until_shutdown(&mut shutdown) => break,
                event = rx.recv() => if event.is_none() { break },
            }
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let shared = shared.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let settings = shared.snapshot.load().gateway.settings.tls.clone();
                if let (Some(tls), Some(settings)) = (&shared.tls, settings) {
                    tls.reload(&settings, true);
                }
            })
            .await;
        }
    });
}

/// After a configuration reload: the certificates again (SIGHUP reloads them
/// even when the configuration did not change), and the watcher again when
/// the files are others.
pub(crate) fn after_config_reload(shared: &Arc<Shared>) {
    let Some(tls) = &shared.tls else {
        if shared.snapshot.load().gateway.settings.tls.is_some() {
            tracing::warn!("[server.tls] added: restart corsgate to serve https");
        }
        return;
    };
    let Some(settings) = shared.snapshot.load().gateway.settings.tls.clone() else {
        tracing::warn!(
            "[server.tls] removed: restart corsgate to serve cleartext http; the certificates keep serving"
        );
        return;
    };
    // Domains, contact, directory, cache_dir and renew_before apply live;
    // the changes that cannot were refused before the reload was swapped in
    // (refused_acme_change).
    if let (Some(acme), Some(new)) = (&tls.acme, &settings.acme) {
        acme.reconfigure(new.clone());
    }
    let changed =
        *tls.files.lock().unwrap_or_else(PoisonError::into_inner) != settings.certificates;
    if tls.reload(&settings, false)
        && changed
        && tls
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    {
        watch(shared);
    }
}

/// The refusal of a reloaded configuration whose `[server.tls.acme]` cannot
/// replace the running one (see [`super::acme::live_change_refused`]), when
/// both run https; `None` when it can.
pub(crate) fn refused_acme_change(
    shared: &Shared,
    gateway: &corsgate_config::GatewayConfig,
) -> Option<Diagnostic> {
    let tls = shared.tls.as_ref()?;
    let new = gateway.settings.tls.as_ref()?;
    let running = tls.acme.as_ref().map(|a| a.settings());
    let (at, message) = super::acme::live_change_refused(running.as_deref(), new.acme.as_ref())?;
    Some(Diagnostic::error(DiagnosticKind::File, at, message))
}

/// `corsgate check`'s view of `[server.tls]`: every certificate loaded as
/// `serve` would load it. Errors: a file that cannot be read, a chain that
/// does not parse, a key that is not the certificate's. Warnings: a
/// certificate that names no DNS name, one that has expired, and one that
/// expires within [`EXPIRY_WARNING`] of `now`. Relative paths are read from
/// `base` (the configuration file's directory).
///
/// ```
/// use corsgate_config::tls::TlsSettings;
/// let settings = TlsSettings { certificates: vec![], redirect_listen: None, acme: None, hsts: None };
/// let found = corsgate_gateway::check_certificates(&settings, std::path::Path::new("."), std::time::SystemTime::now());
/// assert!(found.is_empty());
/// ```
pub fn check_certificates(settings: &TlsSettings, base: &Path, now: SystemTime) -> Vec<Diagnostic> {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let soon = i64::try_from(EXPIRY_WARNING.as_secs()).unwrap_or(i64::MAX);
    let mut found = Vec::new();
    if let Some(ca) = settings
        .acme
        .as_ref()
        .and_then(|a| a.directory_ca_file.as_ref())
    {
        let readable = std::fs::read(resolve_path(base, ca))
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| {
                match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
                    Ok(certs) if !certs.is_empty() => Ok(()),
                    Ok(_) => Err("no certificate in it".to_owned()),
                    Err(e) => Err(format!("not a PEM certificate: {e}")),
                }
            });
        if let Err(message) = readable {
            found.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    "server.tls.acme.directory_ca_file",
                    format!(
                        "{message} (a PEM file with the CA of the ACME server's https certificate)"
                    ),
                )
                .with_value(ca.display().to_string()),
            );
        }
    }
    for (i, files) in settings.certificates.iter().enumerate() {
        let at = |key: &str| format!("server.tls.certificates[{i}].{key}");
        let loaded = read_files(files, base).and_then(|bytes| load(files, &bytes));
        match loaded {
            Err(err) => found.push(
                Diagnostic::error(DiagnosticKind::File, at(err.key), err.message)
                    .with_value(err.file),
            ),
            Ok(loaded) => {
                let info = &loaded.info;
                let expires = humantime::format_rfc3339_seconds(
                    UNIX_EPOCH + Duration::from_secs(u64::try_from(info.not_after).unwrap_or(0)),
                );
                if info.names.is_empty() {
                    found.push(
                        Diagnostic::warning(
                            DiagnosticKind::File,
                            at("cert_file"),
                            "the certificate names no DNS name (subjectAltName): browsers refuse it for every host name; it is served only as the default",
                        )
                        .with_value(info.file.clone()),
                    );
                }
                if info.not_after <= now {
                    found.push(
                        Diagnostic::warning(
                            DiagnosticKind::File,
                            at("cert_file"),
                            format!(
                                "the certificate expired at {expires}: browsers refuse it; renew it"
                            ),
                        )
                        .with_value(info.file.clone()),
                    );
                } else if info.not_after - now <= soon {
                    found.push(
                        Diagnostic::warning(
                            DiagnosticKind::File,
                            at("cert_file"),
                            format!(
                                "the certificate expires at {expires}, within 14 days; renew it"
                            ),
                        )
                        .with_value(info.file.clone()),
                    );
                }
            }
        }
    }
    found
}

/// A client connection's stream: the socket, or TLS over it.
pub(crate) enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<Coalesce<TcpStream>>>),
}

impl ClientStream {
    /// The socket under it.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => s.get_ref().0.get_ref(),
        }
    }

    /// Whether the client spoke TLS to the gateway.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `server.tls.redirect_listen`: a cleartext listener that answers every
/// request with `308 Permanent Redirect` to the same URL over https (308, not
/// 301: the method and body are kept, RFC 9110 section 15.4.9). One request
/// per connection, each connection bounded by the header read and send
/// timeouts, and counted against `max_connections`.
pub(crate) async fn serve_redirect(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut accept_errors =
        super::accept::AcceptErrors::new("accept failed on the https redirect listener");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                accept_errors.note(&err);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // At max_connections, a redirect is what goes first.
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let settings = &shared.snapshot.load().gateway.settings;
        let header_timeout = crate::header_timeout(settings);
        let lifetime = header_timeout + settings.send_timeout;
        let port = shared.listen.port();
        let acme = shared.tls.as_ref().and_then(|t| t.acme.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = acme
                    .as_deref()
                    .and_then(|acme| http01(&request, acme))
                    .unwrap_or_else(|| redirect(&request, port));
                std::future::ready(Ok::<_, std::convert::Infallible>(response))
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(lifetime, conn).await;
            drop(permit);
        });
    }
}

/// The answer to an ACME http-01 validation (RFC 8555 section 8.3): the key
/// authorization of a pending challenge's token, as `application/octet-stream`.
/// `None` for any other request (a token nobody waits for is redirected).
fn http01<B>(
    request: &http::Request<B>,
    acme: &AcmeState,
) -> Option<http::Response<http_body_util::Full<bytes::Bytes>>> {
    let token = request
        .uri()
        .path()
        .strip_prefix("/.well-known/acme-challenge/")?;
    let body = acme.http_response(token)?;
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    Some(response)
}

/// The 308 to `https://host[:port]/path?query`, the host from the request's
/// `Host` (without its port), the port the https listener's.
fn redirect<B>(
    request: &http::Request<B>,
    https_port: u16,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    use http::{StatusCode, header};
    let host = request
        .uri()
        .authority()
        .map(|a| a.host().to_owned())
        .or_else(|| {
            let value = request.headers().get(header::HOST)?.to_str().ok()?;
            let authority: http::uri::Authority = value.parse().ok()?;
            Some(authority.host().to_owned())
        });
    let mut response = http::Response::new(http_body_util::Full::default());
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        *response.status_mut() = StatusCode::BAD_REQUEST;
        *response.body_mut() = http_body_util::Full::new(bytes::Bytes::from_static(
            b"a request to the https redirect needs a Host\n",
        ));
        return response;
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    match http::HeaderValue::from_str(&location) {
        Ok(location) => {
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            response.headers_mut().insert(header::LOCATION, location);
        }
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::HandshakeKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A socket that counts the writes that reach it (each one a segment of its
    /// own: the gateway's sockets have TCP_NODELAY).
    struct Counted {
        tcp: TcpStream,
        writes: Arc<AtomicUsize>,
    }

    impl Counted {
        fn note(&self, written: &Poll<io::Result<usize>>) {
            if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    impl AsyncRead for Counted {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
            this.note(&written);
            written
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let written = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
            this.note(&written);
            written
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
        }
    }

    /// The gateway's TLS side with a fresh ECDSA certificate for
    /// `api.example.com`, and a client configuration that trusts it.
    fn gateway_and_client(
        dir: &Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (Tls, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["api.example.com".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("written");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("written");
        let settings = TlsSettings {
            certificates: vec![CertificateFiles {
                cert_file: "cert.pem".into(),
                key_file: "key.pem".into(),
            }],
            redirect_listen: None,
            acme: None,
            hsts: None,
        };
        let tls = Tls::new(&settings, dir.to_owned(), Arc::new(Metrics::default()))
            .expect("the certificate loads");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).expect("a root");
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (tls, Arc::new(client))
    }

    const REQUEST: &[u8] =
        b"OPTIONS /api HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";

    /// One connection: the client sends [`REQUEST`] right after its
    /// handshake; the gateway's side reads it and answers [`RESPONSE`] as
    /// hyper does (a write, then a flush). Returns the writes that reached the
    /// gateway's socket up to the answer's flush, and how the client's
    /// handshake went.
    async fn exchange(tls: &Tls, client: &Arc<rustls::ClientConfig>) -> (usize, HandshakeKind) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        let connector = tokio_rustls::TlsConnector::from(client.clone());
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.expect("connected");
            tcp.set_nodelay(true).expect("nodelay");
            let name = rustls_pki_types::ServerName::try_from("api.example.com").expect("a name");
            let mut stream = connector.connect(name, tcp).await.expect("a handshake");
            stream.write_all(REQUEST).await.expect("the request");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.expect("the answer");
            assert_eq!(answer, RESPONSE);
            stream
                .get_ref()
                .1
                .handshake_kind()
                .expect("a finished handshake")
        });
        let (tcp, _) = listener.accept().await.expect("accepted");
        tcp.set_nodelay(true).expect("nodelay");
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = Counted {
            tcp,
            writes: writes.clone(),
        };
        let (_stop, shutdown) = watch::channel(false);
        let mut stream = tls
            .accept(counted, Duration::from_secs(10), shutdown)
            .await
            .expect("a handshake");
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(stream.read(&mut byte).await.expect("the request"), 1);
            request.push(byte[0]);
        }
        assert_eq!(request, REQUEST);
        stream.write_all(RESPONSE).await.expect("the answer");
        stream.flush().await.expect("flushed");
        let answered = writes.load(Ordering::SeqCst);
        stream.shutdown().await.expect("closed");
        let kind = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("the client is done (hang guard)")
            .expect("the client ran");
        (answered, kind)
    }

    /// TLS 1.3 session tickets (RFC 8446, section 4.6.1) leave the gateway
    /// with its first answer bytes, in one write (one TCP segment), not in a
    /// write of their own at the end of the handshake: two writes in all, the
    /// handshake flight and the answer. And clients still get them: the next
    /// connection resumes.
    #[tokio::test]
    async fn tls13_session_tickets_leave_with_the_first_answer_in_one_write() {
        let dir = tempdir();
        let (tls, client) = gateway_and_client(&dir, &[&rustls::version::TLS13]);
        let (writes, kind) = exchange(&tls, &client).await;
        assert_eq!(kind, HandshakeKind::Full);
        assert_eq!(
            writes, 2,
            "the server flight, then the tickets and the answer together"
        );
        let (writes, kind) = exchange(&tls, &client).await;
        assert_eq!(
            kind,
            HandshakeKind::Resumed,
            "the tickets reached the client"
        );
        assert_eq!(writes, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// TLS 1.2 ends its handshake with the server's ChangeCipherSpec and
    /// Finished, which the client waits for before it sends its request: they
    /// leave at once.
    #[tokio::test]
    async fn a_tls12_handshake_ends_without_waiting_for_the_answer() {
        let dir = tempdir();
        let (tls, client) = gateway_and_client(&dir, &[&rustls::version::TLS12]);
        let (writes, kind) = exchange(&tls, &client).await;
        assert_eq!(kind, HandshakeKind::Full);
        assert_eq!(writes, 3, "two handshake flights, then the answer");
        let (_, kind) = exchange(&tls, &client).await;
        assert_eq!(kind, HandshakeKind::Resumed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir() -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "corsgate-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    }
}
