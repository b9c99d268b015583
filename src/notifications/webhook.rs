//! Webhook delivery: one POST per notice over a fresh HTTP/1.1 connection (plain or rustls),
//! retried with backoff while the failure looks temporary.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::{Notice, PayloadFormat, human};

/// Attempts per notice before giving up.
pub const MAX_ATTEMPTS: usize = 5;
/// The wait after each failed attempt but the last: a receiver down for half a minute (a
/// deploy, a restart) still gets the notice.
pub const RETRY_DELAYS: [Duration; MAX_ATTEMPTS - 1] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// The most a receiver's Retry-After may hold a notice back, per attempt.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
/// How much of an error reply goes into the report (Slack says "invalid_payload" there).
const SNIPPET: usize = 200;

/// The system's trust roots, read once per process (hundreds of files) and only if some
/// target is https.
static NATIVE_TLS: OnceCell<Arc<ClientConfig>> = OnceCell::const_new();

pub(super) struct Webhook {
    endpoint: Endpoint,
    format: PayloadFormat,
    headers: HeaderMap,
    timeout: Duration,
    host: Arc<str>,
    /// Replaces the system roots (tests).
    pub(super) tls: Option<Arc<ClientConfig>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    https: bool,
    /// For connecting and SNI: no brackets around an IPv6 address.
    host: String,
    port: u16,
    /// The Host header: as written in the URL.
    authority: String,
    path: String,
    /// The URL without path and query, for reports: Slack's and Discord's webhook URLs carry
    /// their secret in the path, and reports end up in logs.
    label: String,
}

/// What one attempt came to.
#[derive(Debug, PartialEq)]
enum Reply {
    Delivered,
    /// Worth another attempt, after `after` if the receiver said so.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// The receiver will not take it; asking again will not help.
    Refused(String),
}

impl Webhook {
    pub(super) fn new(
        url: &str,
        format: PayloadFormat,
        user_headers: &[(String, String)],
        timeout: Duration,
        host: Arc<str>,
    ) -> Result<Webhook, String> {
        let endpoint = Endpoint::parse(url)?;
        let mut user = Vec::with_capacity(user_headers.len());
        for (name, value) in user_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name}"))?;
            user.push((name, value));
        }
        let content_type = match format {
            PayloadFormat::Text => "text/plain; charset=utf-8",
            _ => "application/json",
        };
        let defaults = [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::USER_AGENT,
                HeaderValue::from_static(concat!("tend/", env!("CARGO_PKG_VERSION"))),
            ),
            (
                header::HOST,
                HeaderValue::from_str(&endpoint.authority)
                    .map_err(|_| "invalid host in webhook URL".to_owned())?,
            ),
        ];
        let mut headers = HeaderMap::new();
        // The user's headers win over ours (an API that wants its own Content-Type).
        for (name, value) in defaults {
            if !user.iter().any(|(n, _)| *n == name) {
                headers.insert(name, value);
            }
        }
        for (name, value) in user {
            headers.append(name, value);
        }
        Ok(Webhook {
            endpoint,
            format,
            headers,
            timeout,
            host,
            tls: None,
        })
    }

    pub(super) fn label(&self) -> &str {
        &self.endpoint.label
    }

    pub(super) async fn deliver(
        &mut self,
        notice: &Notice,
        report: &(dyn Fn(String) + Send + Sync),
    ) {
        let body = payload(self.format, notice, &self.host);
        let mut last = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            let wait = match tokio::time::timeout(self.timeout, self.attempt(body.clone())).await {
                Ok(Ok(Reply::Delivered)) => return,
                Ok(Ok(Reply::Refused(why))) => {
                    report(format!(
                        "notify: {} refused the {} notice for {}: {why}",
                        self.endpoint.label,
                        notice.kind.as_str(),
                        notice.instance
                    ));
                    return;
                }
                Ok(Err(why)) => {
                    report(format!(
                        "notify: cannot send the {} notice for {} to {}: {why}",
                        notice.kind.as_str(),
                        notice.instance,
                        self.endpoint.label
                    ));
                    return;
                }
                Ok(Ok(Reply::Retry { why, after })) => {
                    last = why;
                    after
                }
                Err(_) => {
                    last = format!("no reply within {}", human_or_ms(self.timeout));
                    None
                }
            };
            if let Some(delay) = RETRY_DELAYS.get(attempt) {
                tokio::time::sleep(wait.unwrap_or(*delay)).await;
            }
        }
        report(format!(
            "notify: gave up on {} after {MAX_ATTEMPTS} attempts: {last}",
            self.endpoint.label
        ));
    }

    /// One try. `Err` is a problem on our side that another try will not fix.
    async fn attempt(&self, body: Bytes) -> Result<Reply, String> {
        let endpoint = &self.endpoint;
        let tcp = match TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await {
            Ok(tcp) => tcp,
            Err(error) => {
                return Ok(Reply::Retry {
                    why: format!("cannot connect to {}: {error}", endpoint.authority),
                    after: None,
                });
            }
        };
        // One small write per request; do not let Nagle hold it back.
        let _ = tcp.set_nodelay(true);
        let request = self.request(body);
        if !endpoint.https {
            return exchange(tcp, request).await;
        }
        let config = match &self.tls {
            Some(config) => config.clone(),
            None => NATIVE_TLS.get_or_try_init(native_config).await?.clone(),
        };
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|_| format!("{:?} is not a valid TLS server name", endpoint.host))?;
        match TlsConnector::from(config).connect(name, tcp).await {
            Ok(tls) => exchange(tls, request).await,
            Err(error) => {
                let why = format!("TLS with {} failed: {error}", endpoint.authority);
                // A certificate that does not verify will not start verifying in 30 s.
                let bad_certificate = error
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|e| {
                        matches!(
                            e,
                            rustls::Error::InvalidCertificate(_)
                                | rustls::Error::NoCertificatesPresented
                        )
                    });
                if bad_certificate {
                    Ok(Reply::Refused(why))
                } else {
                    Ok(Reply::Retry { why, after: None })
                }
            }
        }
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self
            .endpoint
            .path
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/"));
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// Sends the request on a fresh HTTP/1.1 connection and judges the reply.
async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Reply, String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(error) => {
                return Ok(Reply::Retry {
                    why: format!("HTTP handshake failed: {error}"),
                    after: None,
                });
            }
        };
    // The connection task must not outlive the attempt (a timed-out attempt drops us).
    let connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(error) => {
            return Ok(Reply::Retry {
                why: format!("request failed: {error}"),
                after: None,
            });
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let snippet = if status.is_success() {
        String::new()
    } else {
        read_snippet(response.into_body()).await
    };
    drop(connection);
    Ok(judge(status, retry_after, &snippet))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn judge(status: StatusCode, retry_after: Option<Duration>, snippet: &str) -> Reply {
    if status.is_success() {
        return Reply::Delivered;
    }
    let mut why = format!("HTTP {status}");
    if !snippet.is_empty() {
        why.push_str(": ");
        why.push_str(snippet);
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Reply::Retry {
            why,
            after: retry_after.map(|after| after.min(RETRY_AFTER_CAP)),
        }
    } else {
        // 4xx: the URL, token or payload is wrong. 3xx: a webhook that moved should be
        // updated, not followed (a redirect would turn the POST into a GET).
        Reply::Refused(why)
    }
}

/// Retry-After in seconds; Discord sends fractions ("1.5"). The HTTP-date form is rare on
/// webhook endpoints: our own backoff applies then.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        seconds.min(RETRY_AFTER_CAP.as_secs_f64()),
    ))
}

/// The start of an error reply, on one line.
async fn read_snippet(mut body: Incoming) -> String {
    let mut raw = Vec::new();
    while raw.len() < SNIPPET {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    raw.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&raw[..raw.len().min(SNIPPET)]).into_owned();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn native_config() -> Result<Arc<ClientConfig>, String> {
    let found = tokio::task::spawn_blocking(rustls_native_certs::load_native_certs)
        .await
        .map_err(|error| format!("loading CA certificates: {error}"))?;
    client_config(roots_from(found)?)
}

fn roots_from(found: rustls_native_certs::CertificateResult) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = match found.errors.first() {
            Some(error) => format!(" ({error})"),
            None => String::new(),
        };
        return Err(format!(
            "no trusted CA certificates could be loaded from the system{why}; install the \
             ca-certificates package or set SSL_CERT_FILE to a CA bundle"
        ));
    }
    Ok(roots)
}

/// TLS 1.2 and 1.3 on ring, verifying against `roots`.
pub(super) fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, String> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if !lower.starts_with("http://") && !lower.starts_with("https://") {
            return Err("a webhook URL must start with http:// or https://".into());
        }
        // The URL itself stays out of errors: it may hold a secret.
        let uri: Uri = url
            .parse()
            .map_err(|error| format!("invalid webhook URL: {error}"))?;
        let (https, default_port) = match uri.scheme_str() {
            Some("http") => (false, 80),
            Some("https") => (true, 443),
            _ => return Err("a webhook URL must start with http:// or https://".into()),
        };
        let authority = uri.authority().ok_or("a webhook URL needs a host")?.clone();
        if authority.as_str().contains('@') {
            return Err(
                "credentials in a webhook URL are not supported; send them in `headers`".into(),
            );
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err("a webhook URL needs a host".into());
        }
        let path = match uri.path_and_query() {
            Some(path) if !path.as_str().is_empty() => path.as_str().to_owned(),
            _ => "/".to_owned(),
        };
        let scheme = if https { "https" } else { "http" };
        let label = if path == "/" {
            format!("{scheme}://{authority}/")
        } else {
            format!("{scheme}://{authority}/…")
        };
        Ok(Endpoint {
            https,
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(default_port),
            authority: authority.as_str().to_owned(),
            path,
            label,
        })
    }
}

/// The request body for `format`.
pub(super) fn payload(format: PayloadFormat, notice: &Notice, host: &str) -> Bytes {
    let text = match format {
        PayloadFormat::Json => serde_json::json!({
            "event": notice.kind.as_str(),
            "service": notice.service,
            "instance": notice.instance,
            "at": super::rfc3339_millis(notice.at),
            "reason": notice.reason,
            "exit": notice.exit,
            "host": host,
        })
        .to_string(),
        // Slack reads &, < and > as markup (links, mentions): escape them, as its docs ask.
        PayloadFormat::Slack => serde_json::json!({
            "text": notice
                .summary(host)
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;"),
        })
        .to_string(),
        // A reason quoting a program's output could say "@everyone": never ping on its say.
        PayloadFormat::Discord => serde_json::json!({
            "content": notice.summary(host),
            "allowed_mentions": { "parse": [] },
        })
        .to_string(),
        PayloadFormat::Text => notice.summary(host),
    };
    Bytes::from(text)
}

/// Timeouts below a second are for tests; say them exactly.
fn human_or_ms(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        human(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::NoticeKind;
    use std::time::SystemTime;

    fn notice() -> Notice {
        Notice {
            kind: NoticeKind::Fatal,
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            service: "web".into(),
            instance: "web:2".into(),
            reason: "exited with code 3; 5 restarts in 1m, giving up".into(),
            exit: Some("exit code 3".into()),
        }
    }

    #[test]
    fn urls() {
        let e = Endpoint::parse("https://hooks.slack.com/services/T0/B0/secret").unwrap();
        assert_eq!(
            e,
            Endpoint {
                https: true,
                host: "hooks.slack.com".into(),
                port: 443,
                authority: "hooks.slack.com".into(),
                path: "/services/T0/B0/secret".into(),
                label: "https://hooks.slack.com/…".into(),
            }
        );
        let e = Endpoint::parse("http://127.0.0.1:8080/hook?token=1").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert_eq!(e.path, "/hook?token=1");
        assert_eq!(e.authority, "127.0.0.1:8080");
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("::1", 9000, "/")
        );
        assert_eq!(e.label, "http://[::1]:9000/");
        let e = Endpoint::parse("https://ntfy.sh/alerts").unwrap();
        assert_eq!(e.port, 443);

        for (bad, why) in [
            ("ftp://example.com/", "http:// or https://"),
            ("example.com/hook", "http:// or https://"),
            ("https://user:pw@example.com/", "credentials"),
            ("http://exa mple.com/", "invalid webhook URL"),
            ("", "http:// or https://"),
            ("http://", "invalid webhook URL"),
        ] {
            let error = Endpoint::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
            assert!(!error.contains("pw"), "{error}");
        }
    }

    #[test]
    fn replies() {
        assert_eq!(judge(StatusCode::OK, None, ""), Reply::Delivered);
        assert_eq!(judge(StatusCode::NO_CONTENT, None, ""), Reply::Delivered);
        assert_eq!(
            judge(StatusCode::INTERNAL_SERVER_ERROR, None, "boom"),
            Reply::Retry {
                why: "HTTP 500 Internal Server Error: boom".into(),
                after: None
            }
        );
        assert_eq!(
            judge(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(3600)),
                ""
            ),
            Reply::Retry {
                why: "HTTP 429 Too Many Requests".into(),
                after: Some(RETRY_AFTER_CAP)
            }
        );
        assert_eq!(
            judge(
                StatusCode::BAD_REQUEST,
                Some(Duration::from_secs(1)),
                "invalid_payload"
            ),
            Reply::Refused("HTTP 400 Bad Request: invalid_payload".into())
        );
        assert!(matches!(
            judge(StatusCode::MOVED_PERMANENTLY, None, ""),
            Reply::Refused(_)
        ));
        assert!(matches!(
            judge(StatusCode::NOT_FOUND, None, ""),
            Reply::Refused(_)
        ));
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("99999999"), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("NaN"), None);
    }

    #[test]
    fn payloads() {
        let n = notice();
        let json: serde_json::Value =
            serde_json::from_slice(&payload(PayloadFormat::Json, &n, "box")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event": "fatal",
                "service": "web",
                "instance": "web:2",
                "at": "2023-11-14T22:13:20.123Z",
                "reason": "exited with code 3; 5 restarts in 1m, giving up",
                "exit": "exit code 3",
                "host": "box",
            })
        );
        let line = "tend@box: web:2 is fatal: exited with code 3; 5 restarts in 1m, giving up";
        assert_eq!(payload(PayloadFormat::Text, &n, "box"), line);
        let slack: serde_json::Value =
            serde_json::from_slice(&payload(PayloadFormat::Slack, &n, "box")).unwrap();
        assert_eq!(slack, serde_json::json!({ "text": line }));
        let discord: serde_json::Value =
            serde_json::from_slice(&payload(PayloadFormat::Discord, &n, "box")).unwrap();
        assert_eq!(discord["content"], line);
        assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));

        let mut odd = notice();
        odd.reason = "<!channel> & co".into();
        odd.exit = None;
        let slack: serde_json::Value =
            serde_json::from_slice(&payload(PayloadFormat::Slack, &odd, "box")).unwrap();
        assert_eq!(
            slack["text"],
            "tend@box: web:2 is fatal: &lt;!channel&gt; &amp; co"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&payload(PayloadFormat::Json, &odd, "box")).unwrap();
        assert_eq!(json["exit"], serde_json::Value::Null);
    }

    #[test]
    fn user_headers_replace_ours_and_bad_ones_are_refused() {
        let headers = vec![
            ("Content-Type".to_owned(), "application/x-custom".to_owned()),
            ("X-Token".to_owned(), "abc".to_owned()),
        ];
        let hook = Webhook::new(
            "http://127.0.0.1:1/",
            PayloadFormat::Json,
            &headers,
            Duration::from_secs(1),
            "box".into(),
        )
        .unwrap();
        let content_types: Vec<_> = hook.headers.get_all(header::CONTENT_TYPE).iter().collect();
        assert_eq!(content_types, vec!["application/x-custom"]);
        assert_eq!(hook.headers["x-token"], "abc");
        assert_eq!(hook.headers[header::HOST], "127.0.0.1:1");
        assert!(
            hook.headers[header::USER_AGENT]
                .to_str()
                .unwrap()
                .starts_with("tend/")
        );
        let text = Webhook::new(
            "http://127.0.0.1:1/",
            PayloadFormat::Text,
            &[],
            Duration::from_secs(1),
            "box".into(),
        )
        .unwrap();
        assert_eq!(
            text.headers[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );

        for (name, value, why) in [
            ("Bad Name", "x", "invalid header name"),
            ("X-Ok", "line\nbreak", "invalid value for header x-ok"),
        ] {
            let error = Webhook::new(
                "http://127.0.0.1:1/",
                PayloadFormat::Json,
                &[(name.to_owned(), value.to_owned())],
                Duration::from_secs(1),
                "box".into(),
            )
            .err()
            .unwrap();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn no_roots_is_a_clear_error() {
        let error = roots_from(rustls_native_certs::CertificateResult::default()).unwrap_err();
        assert!(error.contains("no trusted CA certificates"), "{error}");
        assert!(error.contains("ca-certificates"), "{error}");
    }
}
