//! The dashboard's sessions and what guards a browser's requests: on the TCP listener a token
//! is traded once (`POST /api/v1/session`) for an HttpOnly cookie that keeps its role, held
//! here in memory with an idle and an absolute expiry and a CSRF token for the page's actions;
//! on either listener, the checks that tell a page's own request from one another site forged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use crate::api::control::audit;
use crate::api::remote::Clock;
use crate::api::{ApiError, AppState, Caller, Role};
use crate::protocol::{LogoutResponse, SessionInfo};

/// Where the page asks who it is (GET), logs in (POST) and out (DELETE).
pub const PATH: &str = "/api/v1/session";
pub const COOKIE: &str = "tend_session";
/// The header the page sends its session's CSRF token in, with every request that acts.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused for this long is gone: a dashboard left open keeps its own alive (it
/// refreshes every few seconds), a forgotten tab's cookie stops working by the next day.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);
/// And however much it is used, a login lasts this long; the cookie's Max-Age says the same.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Sessions held at once. Only holders of a token can add one, so this is against a script
/// logging in in a loop, not against strangers; the oldest unused one makes room.
const MAX_SESSIONS: usize = 1024;

/// The sessions of one TCP listener. Keyed by the SHA-256 of the cookie's value, so the table
/// holds nothing a memory dump could replay.
pub struct Sessions {
    clock: Clock,
    random: SystemRandom,
    table: Mutex<HashMap<[u8; 32], Session>>,
    /// Cookies go out with `Secure` (the listener speaks TLS).
    secure: bool,
}

struct Session {
    role: Role,
    who: String,
    csrf: String,
    created: std::time::Instant,
    last_used: std::time::Instant,
}

impl Session {
    fn ends(&self) -> std::time::Instant {
        (self.last_used + IDLE).min(self.created + LIFETIME)
    }
}

/// A request's live session, in its extensions: what `GET /api/v1/session` reports and what
/// `DELETE` ends.
#[derive(Clone)]
pub struct SessionHandle {
    sessions: Arc<Sessions>,
    key: [u8; 32],
    pub role: Role,
    pub who: String,
    pub csrf: String,
    /// Wall-clock end if it is not used again.
    pub expires_at: SystemTime,
}

/// A session the listener just opened for a login; the router's handler answers with it.
#[derive(Clone)]
pub struct NewSession {
    pub handle: SessionHandle,
    /// The cookie's value.
    pub id: String,
}

impl Sessions {
    pub fn new(clock: Clock, secure: bool) -> Sessions {
        Sessions {
            clock,
            random: SystemRandom::new(),
            table: Mutex::new(HashMap::new()),
            secure,
        }
    }

    /// Opens a session for a caller whose token checked out.
    pub fn open(self: &Arc<Self>, role: Role, who: String) -> Result<NewSession, ApiError> {
        let id = self.random_hex()?;
        let csrf = self.random_hex()?;
        let now = (self.clock)();
        let key = sha256(&id);
        let mut table = lock(&self.table);
        if table.len() >= MAX_SESSIONS {
            table.retain(|_, s| s.ends() > now);
            if table.len() >= MAX_SESSIONS
                && let Some(oldest) = table
                    .iter()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(k, _)| *k)
            {
                table.remove(&oldest);
            }
        }
        let session = Session {
            role,
            who,
            csrf,
            created: now,
            last_used: now,
        };
        let handle = self.handle(key, &session, now);
        table.insert(key, session);
        Ok(NewSession { handle, id })
    }

    /// The live session this cookie value names, marked used; an expired one is dropped.
    pub fn find(self: &Arc<Self>, id: &str) -> Option<SessionHandle> {
        let key = sha256(id);
        let now = (self.clock)();
        let mut table = lock(&self.table);
        let session = table.get_mut(&key)?;
        if session.ends() <= now {
            table.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(self.handle(key, session, now))
    }

    pub fn secure(&self) -> bool {
        self.secure
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.table).len()
    }

    fn handle(
        self: &Arc<Self>,
        key: [u8; 32],
        session: &Session,
        now: std::time::Instant,
    ) -> SessionHandle {
        SessionHandle {
            sessions: self.clone(),
            key,
            role: session.role,
            who: session.who.clone(),
            csrf: session.csrf.clone(),
            expires_at: SystemTime::now() + session.ends().saturating_duration_since(now),
        }
    }

    fn random_hex(&self) -> Result<String, ApiError> {
        let mut bytes = [0u8; 32];
        self.random.fill(&mut bytes).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the system's random source failed",
            )
        })?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl SessionHandle {
    pub fn end(&self) {
        lock(&self.sessions.table).remove(&self.key);
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub fn csrf_matches(&self, presented: &[u8]) -> bool {
        let (a, b) = (sha256_bytes(presented), sha256(&self.csrf));
        let diff = a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

fn sha256(text: &str) -> [u8; 32] {
    sha256_bytes(text.as_bytes())
}

fn sha256_bytes(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update is one step; a holder that panicked left nothing half-done.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The values of every `tend_session` cookie the request carries (another site on the same
/// host name may have set one too: cookies do not keep to a port).
pub fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// `Set-Cookie` for a new session, or (no id) one that tells the browser to forget it.
pub fn set_cookie(id: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).expect("UNWRAP: hex and ASCII only")
}

/// GET, HEAD and OPTIONS change nothing; every other method is an action.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a request that changes something looks sent by a page of another origin, if it does:
/// `Sec-Fetch-Site` other than `same-origin`, or an `Origin` whose host and port are not the
/// `Host` the request was sent to. A client that sends neither header (the CLI, curl,
/// scripts) is no browser, and passes. The scheme is not compared: one listener speaks only
/// one, and behind a proxy that ends TLS the page's `https` origin reaches a plain listener.
pub fn cross_origin(headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Some("refused: the browser says this request comes from another site");
    }
    let origin = headers.get(header::ORIGIN)?;
    let same = origin
        .to_str()
        .ok()
        .and_then(|o| {
            o.strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"))
        })
        .zip(headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .is_some_and(|(from, host)| {
            without_default_port(from).eq_ignore_ascii_case(without_default_port(host))
        });
    (!same).then_some("refused: the request's Origin is not this server")
}

/// Browsers leave a scheme's default port out of `Origin`, and most clients out of `Host`.
fn without_default_port(authority: &str) -> &str {
    authority
        .strip_suffix(":80")
        .or_else(|| authority.strip_suffix(":443"))
        .unwrap_or(authority)
}

/// Why a browser's request on the unix socket is refused, if it is. The socket needs no
/// login, so a page reaching it (through `ssh -L`) must be one of its own: no action from
/// another origin, and no host name but `localhost` (an IP address is fine), since a name
/// could be rebound by its owner's DNS to 127.0.0.1, making their page same-origin with the
/// forwarded port. Requests without browser headers (the CLI) are not looked at.
pub fn unix_browser_refusal(method: &Method, headers: &HeaderMap) -> Option<&'static str> {
    let browser = headers.contains_key(header::ORIGIN)
        || headers.contains_key("sec-fetch-site")
        || headers.contains_key("sec-fetch-mode");
    if !browser {
        return None;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !host.is_some_and(local_host) {
        return Some(
            "refused: through the unix socket a browser must use localhost or an IP address \
             (a host name could be a DNS-rebinding page)",
        );
    }
    if is_safe(method) {
        return None;
    }
    cross_origin(headers)
}

/// `localhost`, a name under `.localhost`, or an IP address, with or without a port.
fn local_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// `GET /api/v1/session`: who the caller is, and for a session its CSRF token and end.
pub async fn current(
    caller: Option<axum::Extension<Caller>>,
    session: Option<axum::Extension<SessionHandle>>,
) -> Json<SessionInfo> {
    let caller = caller.map_or_else(Caller::unknown, |c| c.0);
    Json(info(&caller, session.as_ref().map(|s| &s.0)))
}

fn info(caller: &Caller, session: Option<&SessionHandle>) -> SessionInfo {
    let via = match session {
        Some(_) => "session",
        None if caller.origin == "unix" => "unix",
        None => "token",
    };
    SessionInfo {
        role: caller.role.to_string(),
        who: caller.who.clone(),
        via: via.to_owned(),
        csrf_token: session.map(|s| s.csrf.clone()),
        expires_ms: session.map(|s| crate::api::unix_ms(s.expires_at).max(0) as u64),
    }
}

/// `POST /api/v1/session`. The TCP listener has checked the token and opened the session
/// before the request gets here; this answers with it and the cookie. On the unix socket
/// there is nothing to log in to.
pub async fn login(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    opened: Option<axum::Extension<NewSession>>,
) -> Result<Response, ApiError> {
    let (Some(axum::Extension(caller)), Some(axum::Extension(opened))) = (caller, opened) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no login here: the unix socket needs none (its file mode is the access control)",
        ));
    };
    if let Some(history) = &state.history {
        audit(
            history,
            caller.clone(),
            "login",
            String::new(),
            true,
            format!("dashboard session ({})", caller.role),
        );
    }
    Ok(opened_response(caller, &opened))
}

/// The answer to a login: who the session is, and the cookie.
pub fn opened_response(caller: Caller, opened: &NewSession) -> Response {
    let caller = Caller {
        who: session_who(&opened.handle.who),
        ..caller
    };
    let mut response = Json(info(&caller, Some(&opened.handle))).into_response();
    let cookie = set_cookie(Some(&opened.id), opened.handle.sessions.secure());
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    // The body holds the CSRF token: no cache keeps it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `DELETE /api/v1/session`: ends the request's session, if it came with one, and tells the
/// browser to forget the cookie either way.
pub async fn logout(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    session: Option<axum::Extension<SessionHandle>>,
) -> Response {
    let secure = session.as_ref().is_some_and(|s| s.sessions.secure());
    if let Some(axum::Extension(session)) = &session {
        session.end();
        if let (Some(history), Some(axum::Extension(caller))) = (&state.history, caller) {
            audit(
                history,
                caller,
                "logout",
                String::new(),
                true,
                "dashboard session ended".to_owned(),
            );
        }
    }
    let mut response = Json(LogoutResponse {
        ended: session.is_some(),
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(None, secure));
    response
}

/// How the audit names a caller who acts through a session.
pub fn session_who(token_who: &str) -> String {
    format!("{token_who} (dashboard session)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn clock() -> (Clock, Arc<AtomicU64>) {
        let base = std::time::Instant::now();
        let offset = Arc::new(AtomicU64::new(0));
        let moved = offset.clone();
        let clock: Clock =
            Arc::new(move || base + Duration::from_secs(moved.load(Ordering::SeqCst)));
        (clock, offset)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn sessions_expire_when_idle_and_after_their_lifetime() {
        let (clock, secs) = clock();
        let sessions = Arc::new(Sessions::new(clock, false));
        let opened = sessions.open(Role::Read, "token at t:1".into()).unwrap();
        assert_eq!(opened.id.len(), 64);
        assert_ne!(opened.id, opened.handle.csrf);
        let found = sessions.find(&opened.id).unwrap();
        assert_eq!(
            (found.role, found.who.as_str()),
            (Role::Read, "token at t:1")
        );
        assert!(sessions.find("not-a-session").is_none());

        // Used just within the idle limit, again and again: alive until the lifetime ends.
        let step = IDLE.as_secs() - 60;
        let mut at = 0;
        while at + step < LIFETIME.as_secs() {
            at += step;
            secs.store(at, Ordering::SeqCst);
            assert!(sessions.find(&opened.id).is_some(), "alive at {at} s");
        }
        secs.store(LIFETIME.as_secs(), Ordering::SeqCst);
        assert!(sessions.find(&opened.id).is_none());
        assert_eq!(sessions.len(), 0);

        let idle = sessions.open(Role::Operate, "w".into()).unwrap();
        secs.fetch_add(IDLE.as_secs(), Ordering::SeqCst);
        assert!(sessions.find(&idle.id).is_none());
    }

    #[test]
    fn ended_sessions_are_gone_and_the_table_is_bounded() {
        let (clock, secs) = clock();
        let sessions = Arc::new(Sessions::new(clock, true));
        let first = sessions.open(Role::Operate, "first".into()).unwrap();
        secs.store(1, Ordering::SeqCst);
        let mut last = None;
        for _ in 0..MAX_SESSIONS {
            last = Some(sessions.open(Role::Read, "more".into()).unwrap());
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.find(&first.id).is_none(), "the oldest made room");
        let last = last.unwrap();
        let handle = sessions.find(&last.id).unwrap();
        handle.end();
        assert!(sessions.find(&last.id).is_none());
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let (clock, _) = clock();
        let sessions = Arc::new(Sessions::new(clock, false));
        let opened = sessions.open(Role::Operate, "w".into()).unwrap();
        let csrf = opened.handle.csrf.clone();
        assert!(opened.handle.csrf_matches(csrf.as_bytes()));
        assert!(!opened.handle.csrf_matches(&csrf.as_bytes()[1..]));
        assert!(!opened.handle.csrf_matches(b""));
    }

    #[test]
    fn cookies_are_found_among_others_and_set_strictly() {
        let h = headers(&[
            ("cookie", "a=1; tend_session=abc ; b=2"),
            ("cookie", "tend_session=def"),
        ]);
        assert_eq!(cookie_values(&h).collect::<Vec<_>>(), ["abc", "def"]);
        assert_eq!(
            cookie_values(&headers(&[("cookie", "tend_session=")])).count(),
            0
        );
        let set = set_cookie(Some("abc"), true);
        let set = set.to_str().unwrap();
        for part in [
            "tend_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Secure",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(
            !set_cookie(Some("abc"), false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
        assert!(
            set_cookie(None, false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn cross_origin_requests_are_told_apart() {
        let ok = headers(&[
            ("host", "127.0.0.1:9100"),
            ("origin", "http://127.0.0.1:9100"),
        ]);
        assert_eq!(cross_origin(&ok), None);
        // A proxy that ends TLS: the page is https, the listener plain.
        let proxied = headers(&[("host", "tend.example"), ("origin", "https://TEND.example")]);
        assert_eq!(cross_origin(&proxied), None);
        assert_eq!(cross_origin(&headers(&[("host", "h")])), None, "no browser");
        let same_site = headers(&[("host", "h:1"), ("sec-fetch-site", "same-site")]);
        assert!(cross_origin(&same_site).is_some());
        let other = headers(&[("host", "h:1"), ("origin", "http://h:2")]);
        assert!(cross_origin(&other).is_some());
        let other = headers(&[("host", "h"), ("origin", "http://h.evil")]);
        assert!(cross_origin(&other).is_some());
        let null = headers(&[("host", "h:1"), ("origin", "null")]);
        assert!(cross_origin(&null).is_some());
        let no_host = headers(&[("origin", "http://h:1")]);
        assert!(cross_origin(&no_host).is_some());
        let same = headers(&[
            ("host", "h:1"),
            ("origin", "http://h:1"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(cross_origin(&same), None);
    }

    #[test]
    fn the_unix_socket_takes_browsers_on_local_names_only() {
        let cli = headers(&[("host", "tend")]);
        assert_eq!(unix_browser_refusal(&Method::POST, &cli), None);
        for host in [
            "localhost:9000",
            "127.0.0.1:9000",
            "[::1]:9000",
            "app.localhost",
            "10.1.2.3",
        ] {
            let mut h = headers(&[
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-mode", "cors"),
            ]);
            h.insert("host", HeaderValue::from_str(host).unwrap());
            h.insert(
                "origin",
                HeaderValue::from_str(&format!("http://{host}")).unwrap(),
            );
            assert_eq!(unix_browser_refusal(&Method::POST, &h), None, "{host}");
        }
        let rebound = headers(&[
            ("host", "evil.example:9000"),
            ("sec-fetch-mode", "navigate"),
        ]);
        assert!(unix_browser_refusal(&Method::GET, &rebound).is_some());
        let forged = headers(&[
            ("host", "localhost:9000"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(
            unix_browser_refusal(&Method::GET, &forged),
            None,
            "reads are same-origin only"
        );
        assert!(unix_browser_refusal(&Method::POST, &forged).is_some());
    }
}
