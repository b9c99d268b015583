//! The optional TCP (and TLS) listener for the control API: bearer-token auth and roles, the
//! per-address brute-force limiter, and the caps and timeouts that keep a slow or hostile client
//! from hurting anything else. Requests that pass reach the unix socket's `Router` with a `Caller`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_body_util::Limited;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower_service::Service;

use super::session::{self, NewSession, SessionHandle, Sessions};
use super::tokens::{Role, Tokens};

/// Largest request head (request line + headers) accepted. hyper answers 431 past it. Bearer
/// tokens and the API's headers fit many times over; the cap is what keeps a client from
/// making us buffer megabytes before auth has even run.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Failed authentications from one client, within `FAILURE_WINDOW`, before it is blocked.
const FAILURES_BEFORE_BLOCK: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const FIRST_BLOCK: Duration = Duration::from_secs(1);
/// Longest block; also how long a client must stay quiet before its record is forgotten.
const MAX_BLOCK: Duration = Duration::from_secs(300);
/// Clients the limiter remembers at once, so an attacker with many addresses cannot grow it.
const MAX_TRACKED_CLIENTS: usize = 4096;
/// Pause after a failed accept (typically EMFILE), so the loop does not spin on it.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Who made a request; in every request's extensions. The listener inserts
/// `origin: "tcp ADDR:PORT"`, `who: "token at FILE:LINE"` (or `"anonymous"` on the public
/// probe and metrics paths); the unix socket side inserts [`Caller::unix`].
#[derive(Clone, Debug)]
pub struct Caller {
    pub origin: String,
    pub who: String,
    pub role: Role,
}

impl Caller {
    /// The caller on the unix socket: the socket's permissions already decided who may connect.
    pub fn unix(uid: u32) -> Caller {
        Caller {
            origin: "unix".to_owned(),
            who: format!("uid {uid}"),
            role: Role::Operate,
        }
    }

    /// A request that came with no caller attached (tests calling the router directly).
    pub fn unknown() -> Caller {
        Caller {
            origin: "unknown".to_owned(),
            who: "unknown".to_owned(),
            role: Role::Read,
        }
    }
}

/// The peer of a unix-socket connection, from SO_PEERCRED when the connection is accepted.
#[derive(Clone, Debug)]
pub struct UnixPeer {
    pub uid: Option<u32>,
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for UnixPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        UnixPeer {
            uid: stream.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

/// Middleware of the unix-socket server: every request carries its [`Caller`], the uid of the
/// connected process, for the audit. A browser's request (the dashboard through `ssh -L`) is
/// also checked to be the page's own, since the socket asks for no login.
pub async fn unix_caller(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(problem) = session::unix_browser_refusal(request.method(), request.headers()) {
        return error_response(StatusCode::FORBIDDEN, problem);
    }
    let uid = request
        .extensions()
        .get::<axum::extract::ConnectInfo<UnixPeer>>()
        .and_then(|peer| peer.0.uid);
    let caller = match uid {
        Some(uid) => Caller::unix(uid),
        None => Caller {
            origin: "unix".to_owned(),
            who: "unknown uid".to_owned(),
            role: Role::Operate,
        },
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Source of "now" for the brute-force limiter, injectable so tests need not sleep.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

pub struct RemoteSettings {
    pub listen: SocketAddr,
    pub tokens: Arc<Tokens>,
    pub tls: Option<TlsFiles>,
    /// `GET /metrics` without a token.
    pub metrics_public: bool,
    /// Connections held at once, all clients together.
    pub max_connections: usize,
    /// Connections one client (an IPv4 address, or an IPv6 /64) may hold at once, so that one
    /// client cannot take every slot. `None`: a quarter of `max_connections`, at least 1.
    pub max_connections_per_client: Option<usize>,
    pub max_body_bytes: usize,
    /// Time a client has to send a whole request head, from connect or from the end of the
    /// previous response (so it also closes idle keep-alive connections).
    pub header_timeout: Duration,
    /// A connection on which nothing moves for this long is closed when it is waiting on the
    /// client: between requests, stuck sending a response the client does not read, or stuck
    /// on a request body the client stopped sending. A handler still working (a long poll, a
    /// quiet `logs -f`) keeps it open.
    pub idle_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// How long `serve` waits for in-flight requests after `shutdown` before dropping them.
    pub shutdown_grace: Duration,
    pub clock: Clock,
}

impl RemoteSettings {
    /// The defaults of `[tend.http]`: no TLS, private metrics, 64 connections, 64 KiB bodies,
    /// 10 s header and TLS-handshake timeouts, 60 s idle timeout, 1 s shutdown grace.
    pub fn new(listen: SocketAddr, tokens: Arc<Tokens>) -> RemoteSettings {
        RemoteSettings {
            listen,
            tokens,
            tls: None,
            metrics_public: false,
            max_connections: 64,
            max_connections_per_client: None,
            max_body_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            tls_handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(1),
            clock: Arc::new(Instant::now),
        }
    }

    fn per_client_cap(&self) -> usize {
        self.max_connections_per_client
            .unwrap_or(self.max_connections / 4)
            .clamp(1, self.max_connections.max(1))
    }
}

/// PEM certificate chain (leaf first) and PEM private key (PKCS#8, RSA or SEC1).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug)]
pub enum RemoteError {
    Bind {
        addr: SocketAddr,
        source: io::Error,
    },
    /// A certificate or key file that cannot be read or parsed.
    TlsFile {
        path: PathBuf,
        problem: String,
    },
    /// Both files parse but rustls refuses them together (key does not match, unsupported key).
    TlsPair {
        cert: PathBuf,
        key: PathBuf,
        problem: String,
    },
    Settings(String),
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            RemoteError::TlsFile { path, problem } => write!(f, "{}: {problem}", path.display()),
            RemoteError::TlsPair { cert, key, problem } => write!(
                f,
                "TLS certificate {} and key {} cannot be used together: {problem}",
                cert.display(),
                key.display()
            ),
            RemoteError::Settings(problem) => write!(f, "[tend.http]: {problem}"),
        }
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteError::Bind { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A bound, not yet serving, remote listener.
pub struct RemoteListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    settings: RemoteSettings,
}

/// Binds (error says the address and why), loads TLS (error names the file).
pub async fn bind(settings: RemoteSettings) -> Result<RemoteListener, RemoteError> {
    bind_or_adopt(settings, None).await
}

/// [`bind`], taking the listening socket the previous image of tend bound (an upgrade)
/// instead of binding one: connections waiting in its backlog are served.
pub async fn adopt(
    settings: RemoteSettings,
    listening: std::os::fd::OwnedFd,
) -> Result<RemoteListener, RemoteError> {
    bind_or_adopt(settings, Some(listening)).await
}

async fn bind_or_adopt(
    settings: RemoteSettings,
    listening: Option<std::os::fd::OwnedFd>,
) -> Result<RemoteListener, RemoteError> {
    validate(&settings)?;
    // TLS first: a bad certificate should fail startup before the port is ever open.
    let tls = settings.tls.as_ref().map(load_tls).transpose()?;
    let bind_err = |source| RemoteError::Bind {
        addr: settings.listen,
        source,
    };
    let listener = match listening {
        Some(fd) => {
            let listener = std::net::TcpListener::from(fd);
            listener.set_nonblocking(true).map_err(bind_err)?;
            TcpListener::from_std(listener).map_err(bind_err)?
        }
        None => TcpListener::bind(settings.listen).await.map_err(bind_err)?,
    };
    let local_addr = listener.local_addr().map_err(bind_err)?;
    Ok(RemoteListener {
        listener,
        local_addr,
        tls,
        settings,
    })
}

fn validate(s: &RemoteSettings) -> Result<(), RemoteError> {
    let problem = if s.max_connections == 0 {
        "max_connections must be at least 1"
    } else if s.max_connections_per_client == Some(0) {
        "max_connections_per_client must be at least 1"
    } else if s.header_timeout.is_zero() {
        "header_timeout must be more than 0"
    } else if s.idle_timeout.is_zero() {
        "idle_timeout must be more than 0"
    } else if s.tls_handshake_timeout.is_zero() {
        "tls_handshake_timeout must be more than 0"
    } else {
        return Ok(());
    };
    Err(RemoteError::Settings(problem.to_owned()))
}

fn load_tls(files: &TlsFiles) -> Result<TlsAcceptor, RemoteError> {
    let file_err = |path: &Path, e: pem::Error, what: &str| RemoteError::TlsFile {
        path: path.to_owned(),
        problem: match e {
            pem::Error::NoItemsFound => format!("no {what} found in this PEM file"),
            pem::Error::Io(e) => format!("cannot read it: {e}"),
            e => format!("not a valid PEM {what}: {e}"),
        },
    };
    let cert_what = "certificate (`BEGIN CERTIFICATE`)";
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err(&files.cert, e, cert_what))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(&files.cert, e, cert_what))?;
    if certs.is_empty() {
        return Err(file_err(&files.cert, pem::Error::NoItemsFound, cert_what));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_err(&files.key, e, "private key (PKCS#8, RSA or SEC1)"))?;
    let pair_err = |e: rustls::Error| RemoteError::TlsPair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        problem: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pair_err)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(pair_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What every connection task of one listener shares. Nothing here is shared with the unix
/// socket's server, so no lock here can stall it.
struct Shared {
    app: Router,
    tokens: Arc<Tokens>,
    limiter: Limiter,
    /// The dashboard's logins on this listener.
    sessions: Arc<Sessions>,
    metrics_public: bool,
    max_body_bytes: usize,
    header_timeout: Duration,
    idle_timeout: Duration,
    tls_handshake_timeout: Duration,
}

impl RemoteListener {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A second descriptor of the listening socket (close-on-exec), to hand over in an
    /// upgrade while this one serves on.
    pub fn listening_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.listener.as_fd().try_clone_to_owned()
    }

    /// Serves `app` until `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish for `shutdown_grace`, and drops whatever is left.
    pub async fn serve(self, app: Router, shutdown: impl Future<Output = ()> + Send + 'static) {
        let RemoteListener {
            listener,
            tls,
            settings,
            ..
        } = self;
        let slots = Arc::new(Slots::new(
            settings.max_connections,
            settings.per_client_cap(),
        ));
        let shared = Arc::new(Shared {
            app,
            tokens: settings.tokens.clone(),
            limiter: Limiter::new(settings.clock.clone()),
            sessions: Arc::new(Sessions::new(settings.clock.clone(), tls.is_some())),
            metrics_public: settings.metrics_public,
            max_body_bytes: settings.max_body_bytes,
            header_timeout: settings.header_timeout,
            idle_timeout: settings.idle_timeout,
            tls_handshake_timeout: settings.tls_handshake_timeout,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        let mut last_accept_error: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                // Reap finished tasks so the set does not grow with every connection served.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Over the cap we accept and close at once rather than stop accepting:
                        // a client gets a prompt answer instead of hanging in the kernel's
                        // backlog, and a flood cannot fill that backlog for everyone else.
                        let Some(slot) = slots.try_acquire(client_key(peer.ip())) else {
                            refuse(stream, tls.is_some());
                            continue;
                        };
                        connections.spawn(connection(
                            stream,
                            peer,
                            tls.clone(),
                            shared.clone(),
                            stop_rx.clone(),
                            slot,
                        ));
                    }
                    Err(e) => {
                        if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                            crate::logs::own::say(&format!(
                                "remote API on {}: accept failed: {e}",
                                settings.listen
                            ));
                            last_accept_error = Some(Instant::now());
                        }
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(settings.shutdown_grace, drain).await;
        connections.shutdown().await;
    }
}

/// Answers a connection over the cap and closes it. On plain TCP a canned 503 goes out with a
/// non-blocking write (it either fits the socket buffer now or is skipped, never waited on);
/// on TLS there is no cheap way to say anything, so the client just sees the close.
fn refuse(stream: TcpStream, tls: bool) {
    if !tls {
        const BODY: &str = r#"{"error":"too many connections"}"#;
        let reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        let _ = stream.try_write(reply.as_bytes());
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = WatchedIo {
        inner: stream,
        activity: activity.clone(),
    };
    match tls {
        None => serve_http(io, peer, shared, activity, stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(shared.tls_handshake_timeout, acceptor.accept(io));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    // Failed or too slow: nothing worth logging, scanners do this all day.
                    _ => return,
                },
                () = stopped(&mut stop) => return,
            };
            serve_http(stream, peer, shared, activity, stop).await;
        }
    }
}

async fn serve_http<S>(
    io: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let idle = shared.idle_timeout;
    let header_timeout = shared.header_timeout;
    let service = {
        let activity = activity.clone();
        service_fn(move |request: Request<Incoming>| {
            let shared = shared.clone();
            let activity = activity.clone();
            async move {
                let exchange = Exchange::begin(&activity);
                let response = handle(&shared, peer, request, &activity).await;
                Ok::<_, Infallible>(response.map(|inner| GuardedBody {
                    inner,
                    _exchange: exchange,
                }))
            }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    let mut conn = pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            // Errors here are the client's doing (reset, timeout, garbage); nothing to report.
            _ = conn.as_mut() => return,
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(activity.next_check(idle)) => {
                if activity.reapable(idle) {
                    return;
                }
            }
        }
    }
}

/// Resolves once the listener is stopping (or gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    request: Request<Incoming>,
    activity: &Arc<Activity>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let origin = format!("tcp {peer}");
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > shared.max_body_bytes as u64) {
        return too_large(shared.max_body_bytes);
    }
    // `Limited` also catches chunked bodies; axum's extractors turn its error into a 413.
    let mut body = Body::new(Limited::new(
        WatchedBody {
            inner: body,
            activity: activity.clone(),
        },
        shared.max_body_bytes,
    ));
    let caller = if parts.method == Method::POST && parts.uri.path() == session::PATH {
        // The dashboard's login, the one request whose token comes in the body.
        match login(shared, peer.ip(), &parts.headers, body).await {
            Ok(opened) => {
                let caller = Caller {
                    origin,
                    who: opened.handle.who.clone(),
                    role: opened.handle.role,
                };
                parts.extensions.insert(opened);
                body = Body::empty();
                caller
            }
            Err(refused) => return refused,
        }
    } else if is_public(&parts.method, parts.uri.path(), shared.metrics_public) {
        // Public paths ignore any Authorization header: probes must not start failing because
        // someone else on the same address is locked out.
        Caller {
            origin,
            who: "anonymous".to_owned(),
            role: Role::Read,
        }
    } else {
        match authenticate(
            shared,
            peer.ip(),
            &parts.method,
            parts.uri.path(),
            &parts.headers,
        ) {
            Ok(found) => {
                if let Some(session) = found.session {
                    parts.extensions.insert(session);
                }
                Caller {
                    origin,
                    who: found.who,
                    role: found.role,
                }
            }
            Err(denied) => return denied.into_response(),
        }
    };
    // The app never needs the token or the session's cookie, and not having them means no
    // handler can log them.
    parts.headers.remove(header::AUTHORIZATION);
    parts.headers.remove(header::COOKIE);
    parts.extensions.insert(caller);
    let mut app = shared.app.clone();
    match app.call(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn is_public(method: &Method, path: &str, metrics_public: bool) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (matches!(path, "/health" | "/live" | "/ready")
            || (metrics_public && path == "/metrics")
            // The dashboard's page and its files hold no data: the page asks for a login.
            || super::dashboard::is_page(path))
}

/// The largest login body read: a token and its JSON quoting.
const LOGIN_MAX_BYTES: usize = 8 * 1024;

/// The dashboard's login: the token comes in a JSON body rather than a header, goes through
/// the same limiter as a bearer token, and opens a session. A login from a page of another
/// origin is refused too (it would log the browser in as someone else).
async fn login(
    shared: &Shared,
    ip: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<NewSession, Response<Body>> {
    let key = client_key(ip);
    if let Some(wait) = shared.limiter.blocked(key) {
        return Err(too_many_failures(wait));
    }
    if let Some(problem) = session::cross_origin(headers) {
        return Err(error_response(StatusCode::FORBIDDEN, problem));
    }
    // Only JSON: a page of another site cannot send it without a CORS preflight, which no
    // answer here ever grants.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            r#"a login is `Content-Type: application/json` with the body {"token": "..."}"#,
        ));
    }
    let bytes = match axum::body::to_bytes(body, LOGIN_MAX_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) if is_length_limit(&e) => return Err(too_large(LOGIN_MAX_BYTES)),
        Err(e) => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                &format!("reading the login body: {e}"),
            ));
        }
    };
    let bad = |e: &dyn fmt::Display| {
        error_response(
            StatusCode::BAD_REQUEST,
            &format!(r#"bad login body (expected {{"token": "..."}}): {e}"#),
        )
    };
    // Through a Value: serde would also take a struct from an array, `["TOKEN"]`.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(&e))?;
    if !value.is_object() {
        return Err(bad(&"not an object"));
    }
    let request: crate::protocol::LoginRequest =
        serde_json::from_value(value).map_err(|e| bad(&e))?;
    let Some((role, who)) = shared.tokens.check(&request.token) else {
        note_failure(shared, ip, key);
        return Err(Denied::Invalid("invalid token").into_response());
    };
    shared.limiter.success(key);
    shared
        .sessions
        .open(role, who)
        .map_err(IntoResponse::into_response)
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Why a request was turned away before reaching the app.
#[derive(Debug)]
enum Denied {
    /// The address is blocked for this much longer.
    Blocked(Duration),
    Missing,
    /// Malformed header or unknown token; the text is for the 401 body.
    Invalid(&'static str),
    Forbidden {
        role: Role,
        needed: Role,
    },
    /// A session cookie that names no live session (expired, ended, or from before a restart).
    SessionGone,
    /// A session's request that changes something without its CSRF token, or from a page of
    /// another origin.
    Forged(&'static str),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response<Body> {
        match self {
            Denied::Blocked(wait) => too_many_failures(wait),
            Denied::Missing => unauthorized(
                "missing bearer token: send `Authorization: Bearer TOKEN`",
                false,
            ),
            Denied::Invalid(problem) => unauthorized(problem, true),
            Denied::Forbidden { role, needed } => forbidden(role, needed),
            Denied::SessionGone => unauthorized(
                "this dashboard session has ended (expired, logged out, or tend restarted): \
                 log in again",
                false,
            ),
            Denied::Forged(problem) => error_response(StatusCode::FORBIDDEN, problem),
        }
    }
}

/// Who passed [`authenticate`].
struct Authenticated {
    role: Role,
    who: String,
    /// When the dashboard's cookie, not a token, said who.
    session: Option<SessionHandle>,
}

/// The role a request needs: GET and HEAD need `read`, and so does ending one's own dashboard
/// session; every other method needs `operate` (so an unknown or future method errs on the
/// side of needing more).
fn needed_role(method: &Method, path: &str) -> Role {
    if method == Method::GET
        || method == Method::HEAD
        || (method == Method::DELETE && path == session::PATH)
    {
        Role::Read
    } else {
        Role::Operate
    }
}

/// Checks the bearer token (or, without an Authorization header, the dashboard's session
/// cookie) against the limiter and the tokens file (or the sessions), and the method against
/// the role. The limiter is consulted first so that a blocked address gets no oracle
/// at all. A missing header is not counted as a failure (no guess was made); a malformed or
/// unknown token is. A cookie that names no session is not either: sessions end, and every
/// open page would count its reconnections, while a session's 256 random bits leave nothing
/// to guess.
fn authenticate(
    shared: &Shared,
    ip: IpAddr,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Authenticated, Denied> {
    let key = client_key(ip);
    if let Some(wait) = shared.limiter.blocked(key) {
        return Err(Denied::Blocked(wait));
    }
    let needed = needed_role(method, path);
    if !headers.contains_key(header::AUTHORIZATION)
        && session::cookie_values(headers).next().is_some()
    {
        let found = session::cookie_values(headers)
            .find_map(|id| shared.sessions.find(id))
            .ok_or(Denied::SessionGone)?;
        // A cookie comes with every request the browser makes to this host, whoever's page
        // makes it: an action must also bring what only the page's own script can read.
        if !session::is_safe(method) {
            let token = headers
                .get(session::CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !found.csrf_matches(token) {
                return Err(Denied::Forged(
                    "refused: a dashboard session's action needs its CSRF token in X-CSRF-Token",
                ));
            }
            if let Some(problem) = session::cross_origin(headers) {
                return Err(Denied::Forged(problem));
            }
        }
        if !found.role.allows(needed) {
            return Err(Denied::Forbidden {
                role: found.role,
                needed,
            });
        }
        return Ok(Authenticated {
            role: found.role,
            who: session::session_who(&found.who),
            session: Some(found),
        });
    }
    let checked = match basic_credentials(headers) {
        // supervisorctl over TCP: `[inet_http_server]` username and password.
        Some(Ok((user, password))) => shared
            .tokens
            .check_basic(&user, &password)
            .ok_or("invalid username or password"),
        Some(Err(problem)) => Err(problem),
        None => match bearer_token(headers) {
            Ok(Some(token)) => shared.tokens.check(token).ok_or("invalid token"),
            Ok(None) => return Err(Denied::Missing),
            Err(problem) => Err(problem),
        },
    };
    let (role, who) = match checked {
        Ok(found) => found,
        Err(problem) => {
            note_failure(shared, ip, key);
            return Err(Denied::Invalid(problem));
        }
    };
    shared.limiter.success(key);
    if !role.allows(needed) {
        return Err(Denied::Forbidden { role, needed });
    }
    Ok(Authenticated {
        role,
        who,
        session: None,
    })
}

fn note_failure(shared: &Shared, ip: IpAddr, key: IpAddr) {
    if let Some(block) = shared.limiter.failure(key) {
        crate::logs::own::say(&format!(
            "remote API: {ip} blocked for {} s after repeated failed authentications",
            block.as_secs()
        ));
    }
}

/// `Authorization: Basic base64(user:password)`, when that is the scheme sent.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), &'static str>> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        // The bearer path says so for every scheme.
        return None;
    }
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    if encoded.len() > 4096 {
        return Some(Err("Basic credentials are too long"));
    }
    let decoded =
        super::xmlrpc::codec::base64_decode(encoded).ok_or("Basic credentials are not base64");
    Some(decoded.and_then(|bytes| {
        let text = String::from_utf8(bytes).map_err(|_| "Basic credentials are not UTF-8")?;
        let (user, password) = text
            .split_once(':')
            .ok_or("Basic credentials must be `user:password`")?;
        Ok((user.to_string(), password.to_string()))
    }))
}

/// The token of a single `Authorization: Bearer TOKEN` header. Err is the reason it is
/// malformed, for the 401 body.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("more than one Authorization header");
    }
    let value = value
        .to_str()
        .map_err(|_| "Authorization header is not printable ASCII")?;
    let malformed = "Authorization header must be `Bearer TOKEN`";
    let (scheme, token) = value.trim().split_once(' ').ok_or(malformed)?;
    // RFC 9110: auth schemes are case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("Authorization scheme must be `Bearer`");
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.contains(|c: char| c.is_ascii_whitespace()) {
        return Err(malformed);
    }
    Ok(Some(token))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    (status, axum::Json(ErrorBody { error: message })).into_response()
}

fn unauthorized(message: &str, invalid: bool) -> Response<Body> {
    let mut response = error_response(StatusCode::UNAUTHORIZED, message);
    // RFC 6750 §3: say which scheme, and whether the token presented was the problem.
    let challenge = if invalid {
        r#"Bearer realm="tend", error="invalid_token""#
    } else {
        r#"Bearer realm="tend""#
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

fn forbidden(role: Role, needed: Role) -> Response<Body> {
    let mut response = error_response(
        StatusCode::FORBIDDEN,
        &format!("this token's role is `{role}`; this method needs `{needed}`"),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="tend", error="insufficient_scope""#),
    );
    response
}

fn too_many_failures(wait: Duration) -> Response<Body> {
    // Round up: a client that waits exactly Retry-After must not be refused again.
    let secs = wait.as_millis().div_ceil(1000).max(1);
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many failed authentications from this address; retry in {secs} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs as u64));
    response
}

fn too_large(limit: usize) -> Response<Body> {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is larger than {limit} bytes"),
    )
}

/// The unit that limits apply to: an IPv4 address, or an IPv6 /64 (one host typically owns a
/// whole /64, so per-address limits on IPv6 would be free to dodge).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (!0u128 << 64))),
        v4 => v4,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent even if a holder panicked: every update is a single step.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Failed-authentication bookkeeping per client. Only clients that failed are in the table:
/// a success removes the entry, so well-behaved clients cost nothing.
///
/// The check (`blocked`) and the record (`failure`) are separate lock sections, so requests
/// already past the check when a block starts still get their answer; that slack is bounded
/// by the per-client connection cap, since HTTP/1.1 runs one request per connection at a time.
struct Limiter {
    clock: Clock,
    clients: Mutex<HashMap<IpAddr, Strikes>>,
}

#[derive(Clone, Copy, Debug)]
struct Strikes {
    /// Failures since `window_start`, before the first block.
    failures: u32,
    window_start: Instant,
    /// Blocks so far; the next one lasts `FIRST_BLOCK << blocks`.
    blocks: u32,
    blocked_until: Instant,
    last_failure: Instant,
}

impl Strikes {
    fn new(now: Instant) -> Strikes {
        Strikes {
            failures: 0,
            window_start: now,
            blocks: 0,
            blocked_until: now,
            last_failure: now,
        }
    }

    /// Quiet for longer than the longest block since the last failure or block: start over.
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.blocked_until.max(self.last_failure)) > MAX_BLOCK
    }
}

impl Limiter {
    fn new(clock: Clock) -> Limiter {
        Limiter {
            clock,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// How much longer `key` is blocked, if it is.
    fn blocked(&self, key: IpAddr) -> Option<Duration> {
        let now = (self.clock)();
        let mut clients = lock(&self.clients);
        let strikes = clients.get(&key)?;
        if strikes.expired(now) {
            clients.remove(&key);
            return None;
        }
        let left = strikes.blocked_until.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    /// Records a failure; returns the block's length when this failure starts one.
    fn failure(&self, key: IpAddr) -> Option<Duration> {
        let now = (self.clock)();
        let mut clients = lock(&self.clients);
        if clients.len() >= MAX_TRACKED_CLIENTS && !clients.contains_key(&key) {
            make_room(&mut clients, now);
        }
        let strikes = clients.entry(key).or_insert_with(|| Strikes::new(now));
        if strikes.expired(now) {
            *strikes = Strikes::new(now);
        }
        if strikes.blocks == 0
            && now.saturating_duration_since(strikes.window_start) > FAILURE_WINDOW
        {
            strikes.failures = 0;
            strikes.window_start = now;
        }
        strikes.failures = strikes.failures.saturating_add(1);
        strikes.last_failure = now;
        // Once blocked, every further failure (until a success or expiry) blocks again for
        // twice as long, so a patient attacker gets a handful of guesses an hour.
        if strikes.blocks > 0 || strikes.failures >= FAILURES_BEFORE_BLOCK {
            let block = FIRST_BLOCK
                .saturating_mul(1u32 << strikes.blocks.min(16))
                .min(MAX_BLOCK);
            strikes.blocks = strikes.blocks.saturating_add(1);
            strikes.blocked_until = now + block;
            return Some(block);
        }
        None
    }

    fn success(&self, key: IpAddr) {
        lock(&self.clients).remove(&key);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        lock(&self.clients).len()
    }
}

/// Drops expired entries, and if the table is still full, the one whose last failure is
/// oldest. O(n) over at most `MAX_TRACKED_CLIENTS`, and only when the table is full.
fn make_room(clients: &mut HashMap<IpAddr, Strikes>, now: Instant) {
    clients.retain(|_, s| !s.expired(now));
    if clients.len() >= MAX_TRACKED_CLIENTS
        && let Some(oldest) = clients
            .iter()
            .min_by_key(|(_, s)| s.last_failure)
            .map(|(k, _)| *k)
    {
        clients.remove(&oldest);
    }
}

/// Connection slots, in total and per client.
struct Slots {
    max_total: usize,
    max_per_client: usize,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    total: usize,
    /// Only clients holding a connection, so at most `max_total` entries.
    per_client: HashMap<IpAddr, usize>,
}

/// A held slot, given back on drop (when the connection task ends, however it ends).
struct Slot {
    slots: Arc<Slots>,
    key: IpAddr,
}

impl Slots {
    fn new(max_total: usize, max_per_client: usize) -> Slots {
        Slots {
            max_total,
            max_per_client,
            state: Mutex::new(SlotState::default()),
        }
    }

    fn try_acquire(self: &Arc<Self>, key: IpAddr) -> Option<Slot> {
        let mut state = lock(&self.state);
        if state.total >= self.max_total {
            return None;
        }
        let held = state.per_client.entry(key).or_insert(0);
        if *held >= self.max_per_client {
            return None;
        }
        *held += 1;
        state.total += 1;
        Some(Slot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = lock(&self.slots.state);
        state.total -= 1;
        if let Some(held) = state.per_client.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                state.per_client.remove(&self.key);
            }
        }
    }
}

/// What one connection is doing, for the idle watchdog. `last` is moved on every byte read
/// or written and on every change of what the connection waits for, so idleness is measured
/// from the moment the wait began.
struct Activity {
    base: tokio::time::Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    write_blocked: AtomicBool,
    body_waiting: AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            base: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            write_blocked: AtomicBool::new(false),
            body_waiting: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn set_flag(&self, flag: &AtomicBool, value: bool) {
        if flag.swap(value, Ordering::Relaxed) != value {
            self.touch();
        }
    }

    /// Idle for `idle` while waiting on the client rather than on a handler.
    fn reapable(&self, idle: Duration) -> bool {
        tokio::time::Instant::now() >= self.last() + idle
            && (self.in_flight.load(Ordering::Relaxed) == 0
                || self.write_blocked.load(Ordering::Relaxed)
                || self.body_waiting.load(Ordering::Relaxed))
    }

    /// When the watchdog should look again: when `idle` runs out, or if it already has but a
    /// handler is busy, a quarter period later (state changes move `last`, so this bounds how
    /// late a stall that starts during a long handler is caught).
    fn next_check(&self, idle: Duration) -> tokio::time::Instant {
        let due = self.last() + idle;
        let now = tokio::time::Instant::now();
        if due > now {
            due
        } else {
            now + (idle / 4).max(Duration::from_millis(10))
        }
    }
}

/// One request/response exchange in flight, from request head to the end of the response
/// body (streams included).
struct Exchange(Arc<Activity>);

impl Exchange {
    fn begin(activity: &Arc<Activity>) -> Exchange {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        Exchange(activity.clone())
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The socket, reporting progress and blocked writes to `Activity`.
struct WatchedIo<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> WatchedIo<S> {
    fn note_write<T>(&self, result: &Poll<io::Result<T>>, progressed: impl Fn(&T) -> bool) {
        match result {
            Poll::Pending => self.activity.set_flag(&self.activity.write_blocked, true),
            Poll::Ready(Ok(v)) if progressed(v) => {
                self.activity.write_blocked.store(false, Ordering::Relaxed);
                self.activity.touch();
            }
            Poll::Ready(_) => {}
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.note_write(&result, |n| *n > 0);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.note_write(&result, |n| *n > 0);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.note_write(&result, |_| true);
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The request body, telling `Activity` while a handler waits for bytes the client owes.
struct WatchedBody {
    inner: Incoming,
    activity: Arc<Activity>,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_frame(cx);
        this.activity
            .set_flag(&this.activity.body_waiting, result.is_pending());
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.activity.set_flag(&self.activity.body_waiting, false);
    }
}

/// The response body, holding the exchange open until hyper has sent (or dropped) it.
struct GuardedBody {
    inner: Body,
    _exchange: Exchange,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tokens::tests::TempFile;
    use super::*;
    use axum::Extension;
    use axum::routing::{get, post};
    use std::sync::atomic::AtomicU64;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    const READ: &str = "read-token-0123456789abcdef";
    const OPERATE: &str = "operate-token-0123456789abcdef";
    /// Bound on every wait for the server; no test should come near it.
    const PATIENCE: Duration = Duration::from_secs(5);

    /// A response body that never ends: the exchange stays in flight, so only a blocked write
    /// can make the connection reapable.
    struct Endless;

    impl http_body::Body for Endless {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            static CHUNK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
        }
    }

    fn tokens_file() -> (TempFile, Arc<Tokens>) {
        let file = TempFile::new(
            &format!("# test tokens\n{READ} read\n{OPERATE} operate\n"),
            0o600,
        );
        let tokens = Arc::new(Tokens::load(&file.0).unwrap());
        (file, tokens)
    }

    fn settings(tokens: &Arc<Tokens>) -> RemoteSettings {
        RemoteSettings::new("127.0.0.1:0".parse().unwrap(), tokens.clone())
    }

    /// A clock the test moves by hand.
    fn manual_clock() -> (Clock, Arc<AtomicU64>) {
        let base = Instant::now();
        let offset_ms = Arc::new(AtomicU64::new(0));
        let offset = offset_ms.clone();
        let clock: Clock =
            Arc::new(move || base + Duration::from_millis(offset.load(Ordering::SeqCst)));
        (clock, offset_ms)
    }

    async fn whoami(
        Extension(caller): Extension<Caller>,
        headers: HeaderMap,
    ) -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({
            "origin": caller.origin,
            "who": caller.who,
            "role": caller.role,
            "saw_authorization": headers.contains_key(header::AUTHORIZATION),
        }))
    }

    fn app() -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/metrics", get(|| async { "metrics" }))
            .route("/whoami", get(whoami).post(whoami))
            .route(
                "/upload",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route("/endless", get(|| async { Body::new(Endless) }))
            .route(
                session::PATH,
                post(
                    |Extension(caller): Extension<Caller>,
                     Extension(opened): Extension<NewSession>| async move {
                        session::opened_response(caller, &opened)
                    },
                ),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "done"
                }),
            )
    }

    struct Server {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<()>,
    }

    async fn start(settings: RemoteSettings) -> Server {
        let listener = bind(settings).await.unwrap();
        let addr = listener.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(listener.serve(app(), async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body)
                .unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", self.body))
        }
    }

    /// Reads until the server closes; `None` if it closed (or reset) without a byte.
    async fn read_reply<S: AsyncRead + Unpin>(io: &mut S) -> Option<Reply> {
        let mut raw = Vec::new();
        let read = tokio::time::timeout(PATIENCE, io.read_to_end(&mut raw))
            .await
            .expect("server neither answered nor closed");
        if raw.is_empty() {
            return None;
        }
        if let Err(e) = read {
            // A reset after the reply (e.g. unread request bytes) still leaves the reply.
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
        }
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("no end of head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Some(Reply {
            status: status.parse().unwrap(),
            headers,
            body: body.to_owned(),
        })
    }

    fn request_text(method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Vec<u8> {
        let mut text = format!("{method} {path} HTTP/1.1\r\nhost: tend\r\nconnection: close\r\n");
        if let Some(token) = token {
            text.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            text.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        io: &mut S,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Option<Reply> {
        io.write_all(&request_text(method, path, token, body))
            .await
            .ok()?;
        read_reply(io).await
    }

    async fn call(
        addr: SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        exchange(&mut stream, method, path, token, body)
            .await
            .expect("connection closed without a reply")
    }

    #[tokio::test]
    async fn auth_roles_and_caller() {
        let (file, tokens) = tokens_file();
        let server = start(settings(&tokens)).await;
        let addr = server.addr;

        let reply = call(addr, "GET", "/whoami", None, b"").await;
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="tend""#)
        );
        assert!(reply.json()["error"].as_str().unwrap().contains("Bearer"));

        let reply = call(addr, "GET", "/whoami", Some("wrong-token-0123456789"), b"").await;
        assert_eq!(reply.status, 401);
        assert!(
            reply
                .header("www-authenticate")
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(reply.json()["error"], "invalid token");

        let reply = call(addr, "GET", "/whoami", Some(READ), b"").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let caller = reply.json();
        assert_eq!(caller["role"], "read");
        assert_eq!(
            caller["who"],
            format!("token at {}:2", file.0.display()).as_str()
        );
        assert!(
            caller["origin"]
                .as_str()
                .unwrap()
                .starts_with("tcp 127.0.0.1:"),
            "{caller}"
        );
        assert_eq!(caller["saw_authorization"], false);

        let reply = call(addr, "POST", "/whoami", Some(READ), b"").await;
        assert_eq!(reply.status, 403);
        assert!(reply.json()["error"].as_str().unwrap().contains("operate"));

        let reply = call(addr, "POST", "/whoami", Some(OPERATE), b"").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["role"], "operate");
        assert_eq!(
            reply.json()["who"],
            format!("token at {}:3", file.0.display()).as_str()
        );

        // Scheme is case-insensitive; any other scheme is malformed.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "GET /whoami HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\
                     authorization: bearer {READ}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(read_reply(&mut stream).await.unwrap().status, 200);
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"GET /whoami HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\
                  authorization: Basic dXNlcjpwYXNz\r\n\r\n",
            )
            .await
            .unwrap();
        assert_eq!(read_reply(&mut stream).await.unwrap().status, 401);

        // Probes are public; unknown paths are not (no route discovery without a token).
        let reply = call(addr, "GET", "/health", None, b"").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
        assert_eq!(call(addr, "HEAD", "/health", None, b"").await.status, 200);
        assert_eq!(call(addr, "GET", "/ready", None, b"").await.status, 404);
        assert_eq!(call(addr, "POST", "/health", None, b"").await.status, 401);
        assert_eq!(call(addr, "GET", "/nothing", None, b"").await.status, 401);
        assert_eq!(call(addr, "GET", "/metrics", None, b"").await.status, 401);
        assert_eq!(
            call(addr, "GET", "/metrics", Some(READ), b"").await.status,
            200
        );
        drop(server);
    }

    #[tokio::test]
    async fn metrics_public_when_configured() {
        let (_file, tokens) = tokens_file();
        let mut s = settings(&tokens);
        s.metrics_public = true;
        let server = start(s).await;
        let reply = call(server.addr, "GET", "/metrics", None, b"").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "metrics"));
        // Public means reading metrics, nothing else on that path.
        assert_eq!(
            call(server.addr, "POST", "/metrics", None, b"")
                .await
                .status,
            401
        );
    }

    #[tokio::test]
    async fn brute_force_is_blocked_with_backoff() {
        let (_file, tokens) = tokens_file();
        let (clock, offset_ms) = manual_clock();
        let mut s = settings(&tokens);
        s.clock = clock;
        let server = start(s).await;
        let addr = server.addr;
        let wrong = Some("wrong-token-0123456789");

        // Successes reset the count: 4 failures, a success, 4 failures is no block.
        for _ in 0..4 {
            assert_eq!(call(addr, "GET", "/whoami", wrong, b"").await.status, 401);
        }
        assert_eq!(
            call(addr, "GET", "/whoami", Some(READ), b"").await.status,
            200
        );
        for _ in 0..4 {
            assert_eq!(call(addr, "GET", "/whoami", wrong, b"").await.status, 401);
        }
        // A missing header is not a guess and does not count.
        assert_eq!(call(addr, "GET", "/whoami", None, b"").await.status, 401);
        assert_eq!(
            call(addr, "GET", "/whoami", Some(READ), b"").await.status,
            200
        );

        for _ in 0..5 {
            assert_eq!(call(addr, "GET", "/whoami", wrong, b"").await.status, 401);
        }
        let reply = call(addr, "GET", "/whoami", Some(OPERATE), b"").await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert!(reply.json()["error"].as_str().unwrap().contains("retry"));
        // Probes stay up for a blocked address.
        assert_eq!(call(addr, "GET", "/health", None, b"").await.status, 200);

        offset_ms.fetch_add(900, Ordering::SeqCst);
        assert_eq!(
            call(addr, "GET", "/whoami", Some(READ), b"").await.status,
            429
        );
        offset_ms.fetch_add(101, Ordering::SeqCst);
        // Block over; one more failure blocks again, now for 2 s.
        assert_eq!(call(addr, "GET", "/whoami", wrong, b"").await.status, 401);
        let reply = call(addr, "GET", "/whoami", Some(READ), b"").await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("2"));
        offset_ms.fetch_add(2_000, Ordering::SeqCst);
        // The right token after the block clears the record entirely.
        assert_eq!(
            call(addr, "GET", "/whoami", Some(READ), b"").await.status,
            200
        );
        for _ in 0..4 {
            assert_eq!(call(addr, "GET", "/whoami", wrong, b"").await.status, 401);
        }
        assert_eq!(
            call(addr, "GET", "/whoami", Some(READ), b"").await.status,
            200
        );
    }

    #[test]
    fn limiter_backoff_caps_and_forgets() {
        let (clock, offset_ms) = manual_clock();
        let limiter = Limiter::new(clock);
        let key: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..4 {
            assert_eq!(limiter.failure(key), None);
        }
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..12u32 {
            let block = limiter.failure(key).expect("blocked");
            got.push(block.as_secs());
            expected.push((1u64 << i).min(300));
            assert_eq!(limiter.blocked(key), Some(block));
            offset_ms.fetch_add(block.as_millis() as u64, Ordering::SeqCst);
            assert_eq!(limiter.blocked(key), None);
        }
        assert_eq!(got, expected);
        // Quiet for longer than the cap: forgotten, back to five free failures.
        offset_ms.fetch_add(MAX_BLOCK.as_millis() as u64 + 1, Ordering::SeqCst);
        for _ in 0..4 {
            assert_eq!(limiter.failure(key), None);
        }
        assert_eq!(limiter.failure(key), Some(FIRST_BLOCK));
        // Failures spread wider than the window never add up to a block.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..20 {
            assert_eq!(limiter.failure(other), None);
            offset_ms.fetch_add(FAILURE_WINDOW.as_millis() as u64 / 4 + 1, Ordering::SeqCst);
        }
    }

    #[test]
    fn limiter_table_is_bounded() {
        let (clock, _) = manual_clock();
        let limiter = Limiter::new(clock);
        let first: IpAddr = "10.0.0.0".parse().unwrap();
        for _ in 0..5 {
            limiter.failure(first);
        }
        assert!(limiter.blocked(first).is_some());
        for i in 1..(MAX_TRACKED_CLIENTS as u32 * 2) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            limiter.failure(ip);
            assert!(limiter.tracked() <= MAX_TRACKED_CLIENTS);
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED_CLIENTS);
    }

    #[test]
    fn client_keys() {
        let key = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
    }

    #[tokio::test]
    async fn body_and_header_limits() {
        let (_file, tokens) = tokens_file();
        let mut s = settings(&tokens);
        s.max_body_bytes = 1024;
        let server = start(s).await;
        let addr = server.addr;

        let reply = call(addr, "POST", "/upload", Some(OPERATE), &[b'x'; 1000]).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "1000"));

        // Declared too large: refused before the body is read.
        let reply = call(addr, "POST", "/upload", Some(OPERATE), &[b'x'; 2000]).await;
        assert_eq!(reply.status, 413);
        assert!(reply.json()["error"].as_str().unwrap().contains("1024"));

        // Chunked, so only `Limited` can see it is too large.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let chunk = "y".repeat(800);
        let request = format!(
            "POST /upload HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\
             authorization: Bearer {OPERATE}\r\ntransfer-encoding: chunked\r\n\r\n\
             320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(read_reply(&mut stream).await.unwrap().status, 413);

        // Oversized head: hyper refuses it with 431 before any of our code runs.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /health HTTP/1.1\r\nhost: t\r\nx-padding: {}\r\n\r\n",
            "p".repeat(MAX_HEADER_BYTES + 1024)
        );
        let _ = stream.write_all(request.as_bytes()).await;
        // hyper may close before the client finishes writing; then there is no reply at all.
        if let Some(reply) = read_reply(&mut stream).await {
            assert_eq!(reply.status, 431);
        }
    }

    /// Polls `attempt` every 20 ms until it returns Some, for at most PATIENCE.
    async fn eventually<T, F: Future<Output = Option<T>>>(mut attempt: impl FnMut() -> F) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(v) = attempt().await {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "gave up waiting");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Connects, and reports whether the server refused the connection (503 or a close).
    async fn refused(stream: &mut TcpStream) -> bool {
        match read_reply(stream).await {
            None => true,
            Some(reply) => {
                assert_eq!(reply.status, 503);
                assert_eq!(reply.json()["error"], "too many connections");
                true
            }
        }
    }

    #[tokio::test]
    async fn connection_cap() {
        let (_file, tokens) = tokens_file();
        let mut s = settings(&tokens);
        s.max_connections = 3;
        s.max_connections_per_client = Some(3);
        let server = start(s).await;
        let addr = server.addr;

        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // Accepted in connect order, so this one finds every slot taken.
        let mut extra = TcpStream::connect(addr).await.unwrap();
        assert!(refused(&mut extra).await);

        // The held connections are alive and served; the first closes after its reply.
        let mut first = held.remove(0);
        let reply = exchange(&mut first, "GET", "/health", None, b"").await;
        assert_eq!(reply.unwrap().status, 200);
        drop(first);

        // Its slot comes back once the server has seen the close.
        let reply = eventually(|| async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            let reply = exchange(&mut stream, "GET", "/health", None, b"").await?;
            (reply.status != 503).then_some(reply)
        })
        .await;
        assert_eq!(reply.status, 200);
    }

    #[tokio::test]
    async fn one_client_cannot_take_every_slot() {
        let (_file, tokens) = tokens_file();
        let mut s = settings(&tokens);
        s.max_connections = 8;
        s.max_connections_per_client = Some(2);
        let server = start(s).await;
        let addr = server.addr;

        let _held = [
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        let mut third = TcpStream::connect(addr).await.unwrap();
        assert!(refused(&mut third).await);

        // Another loopback address is another client.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut other = socket.connect(addr).await.unwrap();
        let reply = exchange(&mut other, "GET", "/health", None, b"").await;
        assert_eq!(reply.unwrap().status, 200);
    }

    #[tokio::test]
    async fn slowloris_is_dropped_after_header_timeout() {
        let (_file, tokens) = tokens_file();
        let mut s = settings(&tokens);
        s.header_timeout = Duration::from_millis(200);
        let server = start(s).await;

        let started = tokio::time::Instant::now();
        let mut slow = TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nhost: te")
            .await
            .unwrap();

        // Meanwhile everyone else is served.
        let reply = call(server.addr, "GET", "/health", None, b"").await;
        assert_eq!(reply.status, 200);

        let reply = read_reply(&mut slow).await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(180), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        // hyper may say 408 before closing; it must not have served the request.
        if let Some(reply) = reply {
            assert_eq!(reply.status, 408, "{reply:?}");
        }
    }

    #[tokio::test]
    async fn stalled_body_is_dropped_but_busy_handler_is_not() {
        let (_file, tokens) = tokens_file();
        let mut s = settings(&tokens);
        s.idle_timeout = Duration::from_millis(150);
        let server = start(s).await;

        // Promises 100 bytes, sends 10, stalls: the handler waits on the client, so reap.
        let started = tokio::time::Instant::now();
        let mut stalled = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /upload HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {OPERATE}\r\n\
             content-length: 100\r\n\r\n0123456789"
        );
        stalled.write_all(head.as_bytes()).await.unwrap();
        let reply = read_reply(&mut stalled).await;
        let elapsed = started.elapsed();
        assert!(reply.is_none(), "{reply:?}");
        assert!(elapsed >= Duration::from_millis(140), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

        // A handler that takes longer than idle_timeout is working, not idle.
        let reply = call(server.addr, "GET", "/slow", Some(READ), b"").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "done"));

        // Idle between requests: closed after idle_timeout (before the 10 s header timeout).
        let started = tokio::time::Instant::now();
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        assert!(read_reply(&mut idle).await.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn client_that_does_not_read_its_response_is_dropped() {
        let (_file, tokens) = tokens_file();
        let mut s = settings(&tokens);
        s.idle_timeout = Duration::from_millis(150);
        s.max_connections = 1;
        let server = start(s).await;

        // A small receive window and a body that never ends, so the server's writes block.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut reader = socket.connect(server.addr).await.unwrap();
        reader
            .write_all(&request_text("GET", "/endless", Some(READ), b""))
            .await
            .unwrap();

        // It holds the only slot until the watchdog drops it; then others get in.
        let reply = eventually(|| async {
            let mut stream = TcpStream::connect(server.addr).await.ok()?;
            let reply = exchange(&mut stream, "GET", "/health", None, b"").await?;
            (reply.status != 503).then_some(reply)
        })
        .await;
        assert_eq!(reply.status, 200);

        // Whatever was buffered drains, then the close shows.
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut raw))
            .await
            .expect("slow reader was not closed");
        assert!(raw.starts_with(b"HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_ends_connections() {
        let (_file, tokens) = tokens_file();
        let mut server = start(settings(&tokens)).await;
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        // Make sure the idle connection has been accepted and is being served.
        let mut probe = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(
            exchange(&mut probe, "GET", "/health", None, b"")
                .await
                .unwrap()
                .status,
            200
        );

        let started = tokio::time::Instant::now();
        server.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(PATIENCE, &mut server.task)
            .await
            .expect("serve did not return")
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(read_reply(&mut idle).await.is_none());
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let (_file, tokens) = tokens_file();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let mut s = settings(&tokens);
        s.listen = addr;
        let err = bind(s).await.err().expect("bind should fail");
        assert!(matches!(err, RemoteError::Bind { .. }));
        let msg = err.to_string();
        assert!(msg.contains(&addr.to_string()), "{msg}");

        let mut s = settings(&tokens);
        s.max_connections = 0;
        let msg = bind(s).await.err().unwrap().to_string();
        assert!(msg.contains("max_connections"), "{msg}");
    }

    fn self_signed() -> (TempFile, TempFile, CertificateDer<'static>) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = TempFile::new(&generated.cert.pem(), 0o644);
        let key = TempFile::new(&generated.signing_key.serialize_pem(), 0o600);
        (cert, key, generated.cert.der().clone())
    }

    #[tokio::test]
    async fn tls_serves_http1_with_a_self_signed_cert() {
        let (_file, tokens) = tokens_file();
        let (cert, key, der) = self_signed();
        let mut s = settings(&tokens);
        s.tls = Some(TlsFiles {
            cert: cert.0.clone(),
            key: key.0.clone(),
        });
        let server = start(s).await;

        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();

        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut tls = connector.connect(name.clone(), tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let reply = exchange(&mut tls, "GET", "/health", None, b"")
            .await
            .unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));

        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let reply = exchange(&mut tls, "POST", "/whoami", Some(OPERATE), b"")
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["role"], "operate");

        // Plain HTTP to the TLS port gets nowhere.
        let mut plain = TcpStream::connect(server.addr).await.unwrap();
        let _ = plain
            .write_all(&request_text("GET", "/health", None, b""))
            .await;
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut raw))
            .await
            .expect("server neither answered nor closed");
        assert!(!raw.starts_with(b"HTTP/"), "{raw:?}");
    }

    #[tokio::test]
    async fn a_login_over_tls_gets_a_secure_cookie_whose_actions_need_the_csrf_token() {
        let (_file, tokens) = tokens_file();
        let (cert, key, der) = self_signed();
        let mut s = settings(&tokens);
        s.tls = Some(TlsFiles {
            cert: cert.0.clone(),
            key: key.0.clone(),
        });
        let server = start(s).await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let send = |request: String| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(server.addr).await.unwrap();
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let mut tls = connector.connect(name, tcp).await.unwrap();
                tls.write_all(request.as_bytes()).await.unwrap();
                read_reply(&mut tls).await.unwrap()
            }
        };
        let body = format!(r#"{{"token": "{OPERATE}"}}"#);
        let reply = send(format!(
            "POST /api/v1/session HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let set = reply.header("set-cookie").unwrap();
        for part in ["Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(set.contains(part), "{set}");
        }
        let cookie = set.split(';').next().unwrap().to_owned();
        let csrf = reply.json()["csrf_token"].as_str().unwrap().to_owned();
        let act = |extra: String| {
            send(format!(
                "POST /whoami HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
                 cookie: {cookie}\r\n{extra}content-length: 0\r\n\r\n"
            ))
        };
        assert_eq!(act(String::new()).await.status, 403);
        let other = act(format!(
            "x-csrf-token: {csrf}\r\norigin: https://elsewhere.example\r\n"
        ))
        .await;
        assert_eq!(other.status, 403, "{other:?}");
        let reply = act(format!(
            "x-csrf-token: {csrf}\r\norigin: https://localhost\r\n"
        ))
        .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["role"], "operate");
        assert!(
            reply.json()["who"]
                .as_str()
                .unwrap()
                .ends_with("(dashboard session)"),
            "{reply:?}"
        );
        assert_eq!(reply.json()["saw_authorization"], false);
    }

    #[tokio::test]
    async fn bad_tls_files_are_named() {
        let (_file, tokens) = tokens_file();
        let (cert, key, _) = self_signed();
        let try_files = |cert: &Path, key: &Path| {
            let mut s = settings(&tokens);
            s.tls = Some(TlsFiles {
                cert: cert.to_owned(),
                key: key.to_owned(),
            });
            async move { bind(s).await.err().expect("should fail").to_string() }
        };

        let missing = Path::new("/nonexistent/tend/key.pem");
        let msg = try_files(&cert.0, missing).await;
        assert!(
            msg.starts_with("/nonexistent/tend/key.pem: cannot read"),
            "{msg}"
        );

        let garbled = TempFile::new(
            "-----BEGIN PRIVATE KEY-----\nnot base64 at all!!\n-----END PRIVATE KEY-----\n",
            0o600,
        );
        let msg = try_files(&cert.0, &garbled.0).await;
        assert!(
            msg.starts_with(&format!("{}: ", garbled.0.display())),
            "{msg}"
        );

        // A certificate where the key should be: no key in that file.
        let msg = try_files(&cert.0, &cert.0).await;
        assert!(
            msg.starts_with(&format!("{}: no private key", cert.0.display())),
            "{msg}"
        );

        let msg = try_files(&key.0, &key.0).await;
        assert!(
            msg.starts_with(&format!("{}: no certificate", key.0.display())),
            "{msg}"
        );

        // Parses, but the key is not the certificate's.
        let (_, other_key, _) = self_signed();
        let msg = try_files(&cert.0, &other_key.0).await;
        assert!(msg.contains("cannot be used together"), "{msg}");
    }
}
