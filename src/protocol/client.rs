//! A small HTTP/1.1 client over the daemon's unix socket, used by the CLI and the TUI.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::protocol::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("tend is not running (no daemon answers on {0})")]
    NotRunning(PathBuf),
    #[error("talking to the daemon: {0}")]
    Transport(String),
    /// The daemon answered with an error status and this message.
    #[error("{message}")]
    Api { status: u16, message: String },
}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_path_buf(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let bytes = self.request(Method::GET, path, None).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("bad response: {e}")))
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Transport(e.to_string()))?;
        let bytes = self.request(Method::POST, path, Some(body)).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("bad response: {e}")))
    }

    /// GET a streaming response, handing each piece of the body to `chunk` as it arrives.
    pub async fn stream(&self, path: &str, chunk: impl FnMut(&[u8])) -> Result<(), ClientError> {
        self.stream_opened(path, || {}, chunk).await
    }

    /// [`Client::stream`], calling `opened` once the daemon has accepted the request: a
    /// quiet stream is open before its first byte (the TUI says "following", not
    /// "connecting").
    pub async fn stream_opened(
        &self,
        path: &str,
        opened: impl FnOnce(),
        mut chunk: impl FnMut(&[u8]),
    ) -> Result<(), ClientError> {
        let (status, mut body) = self.send(Method::GET, path, None).await?;
        if status != StatusCode::OK {
            return Err(api_error(status, &collect(body).await?));
        }
        opened();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(transport)?;
            if let Some(data) = frame.data_ref() {
                chunk(data);
            }
        }
        Ok(())
    }

    /// [`Client::get`] on a blocking socket, for a command that asks once and prints: it
    /// then needs no runtime, whose start (and the HTTP stack's) costs more than the exchange
    /// itself (`tend status`: 3.3 → 2.9 ms).
    pub fn get_blocking<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, bytes) = self.exchange("GET", path)?;
        if status != StatusCode::OK && status != StatusCode::ACCEPTED {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("bad response: {e}")))
    }

    /// One bodiless request on a fresh blocking connection: the answer's status and body.
    fn exchange(&self, method: &str, path: &str) -> Result<(StatusCode, Vec<u8>), ClientError> {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket)
            .map_err(|_| ClientError::NotRunning(self.socket.clone()))?;
        // `close`: an answer without a length then still ends.
        let request =
            format!("{method} {path} HTTP/1.1\r\nhost: tend\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).map_err(transport)?;
        let mut answer = Answer::default();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buffer).map_err(transport)?;
            if answer.take(&buffer[..n])? {
                return answer.finish();
            }
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ClientError> {
        let (status, body) = self.send(method, path, body).await?;
        let bytes = collect(body).await?;
        if status == StatusCode::OK || status == StatusCode::ACCEPTED {
            return Ok(bytes);
        }
        Err(api_error(status, &bytes))
    }

    /// One request on a fresh connection; the body is left to the caller to read.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, hyper::body::Incoming), ClientError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|_| ClientError::NotRunning(self.socket.clone()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(transport)?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "tend")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(transport)?;
        let response = sender.send_request(request).await.map_err(transport)?;
        Ok((response.status(), response.into_body()))
    }
}

fn transport(error: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(error.to_string())
}

async fn collect(body: hyper::body::Incoming) -> Result<Vec<u8>, ClientError> {
    Ok(body.collect().await.map_err(transport)?.to_bytes().to_vec())
}

/// An error status with the daemon's `{"error": ...}` body (or its text).
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<ErrorBody>(bytes)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned());
    ClientError::Api {
        status: status.as_u16(),
        message,
    }
}

/// A response read off a blocking socket: the head, then a body delimited by its
/// `content-length`, by chunks, or by the end of the connection.
#[derive(Default)]
struct Answer {
    bytes: Vec<u8>,
    head: Option<Head>,
}

struct Head {
    status: StatusCode,
    /// Where the body starts in `bytes`.
    body: usize,
    length: Option<usize>,
    chunked: bool,
}

impl Answer {
    /// Add what was read (nothing: the connection ended); true once the answer is whole.
    fn take(&mut self, read: &[u8]) -> Result<bool, ClientError> {
        let ended = read.is_empty();
        self.bytes.extend_from_slice(read);
        if self.head.is_none() {
            match find(&self.bytes, b"\r\n\r\n") {
                Some(end) => self.head = Some(parse_head(&self.bytes[..end], end + 4)?),
                None if ended => return Err(transport("the daemon closed the connection")),
                None => return Ok(false),
            }
        }
        let head = self.head.as_ref().expect("parsed above");
        let body = &self.bytes[head.body..];
        Ok(ended
            || match (head.length, head.chunked) {
                (Some(length), false) => body.len() >= length,
                (_, true) => body.ends_with(b"0\r\n\r\n") && dechunk(body).is_some(),
                (None, false) => false,
            })
    }

    fn finish(self) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let head = self.head.expect("a whole answer has a head");
        let body = &self.bytes[head.body..];
        let body = if head.chunked {
            dechunk(body).ok_or_else(|| transport("a chunked body ends early"))?
        } else {
            match head.length {
                Some(length) if body.len() < length => {
                    return Err(transport("the body ends early"));
                }
                Some(length) => body[..length].to_vec(),
                None => body.to_vec(),
            }
        };
        Ok((head.status, body))
    }
}

fn parse_head(head: &[u8], body: usize) -> Result<Head, ClientError> {
    let text = std::str::from_utf8(head).map_err(|_| transport("a response head not in UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| {
            line.strip_prefix("HTTP/1.1 ")
                .or(line.strip_prefix("HTTP/1.0 "))
        })
        .and_then(|rest| StatusCode::from_bytes(rest.get(..3)?.as_bytes()).ok())
        .ok_or_else(|| transport("not an HTTP response"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| transport("a bad content-length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Head {
        status,
        body,
        length,
        chunked,
    })
}

/// The body of a whole chunked encoding; `None` while it is incomplete.
fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = find(bytes, b"\r\n")?;
        let size = std::str::from_utf8(&bytes[..line]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        bytes = &bytes[line + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(bytes.get(..size)?);
        bytes = bytes.get(size + 2..)?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    /// Every answer, read in pieces split at every position: the same status and body.
    fn read_in_two(answer: &[u8]) -> Vec<Result<(StatusCode, Vec<u8>), String>> {
        (1..answer.len())
            .map(|split| {
                let mut reading = Answer::default();
                for piece in [&answer[..split], &answer[split..], &[][..]] {
                    match reading.take(piece) {
                        Ok(true) => return reading.finish().map_err(|e| e.to_string()),
                        Ok(false) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Err("never whole".into())
            })
            .collect()
    }

    #[test]
    fn a_body_is_read_by_its_length_by_its_chunks_or_to_the_end() {
        let cases: [(&[u8], &[u8]); 3] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                b"hello",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=1\r\nlo\r\n0\r\n\r\n",
                b"hello",
            ),
            (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello", b"hello"),
        ];
        for (answer, body) in cases {
            for read in read_in_two(answer) {
                assert_eq!(read, Ok((StatusCode::OK, body.to_vec())), "{answer:?}");
            }
        }
    }

    #[test]
    fn an_answer_cut_short_is_an_error_not_a_short_body() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\ncontent-le",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            for read in read_in_two(answer) {
                assert!(read.is_err(), "{answer:?} read as {read:?}");
            }
        }
    }

    /// A real socket with a server that answers in two writes, as a busy daemon may.
    fn serve_once(
        status: &str,
        body: &str,
    ) -> (tempfile::TempDir, std::thread::JoinHandle<String>) {
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("tend.sock")).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                request.push(byte[0]);
            }
            let (first, rest) = answer.as_bytes().split_at(answer.len() / 2);
            stream.write_all(first).unwrap();
            stream.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
            stream.write_all(rest).unwrap();
            String::from_utf8(request).unwrap()
        });
        (dir, server)
    }

    #[test]
    fn a_blocking_get_decodes_the_answer_or_the_daemon_s_error() {
        let (dir, server) = serve_once("200 OK", "[1, 2, 3]");
        let client = Client::new(&dir.path().join("tend.sock"));
        let got: Vec<u32> = client.get_blocking("/api/v1/x?targets=a%2Cb").unwrap();
        assert_eq!(got, vec![1, 2, 3]);
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /api/v1/x?targets=a%2Cb HTTP/1.1\r\n"),
            "{request}"
        );

        let (dir, server) = serve_once("404 Not Found", r#"{"error":"no service `x`"}"#);
        let client = Client::new(&dir.path().join("tend.sock"));
        match client.get_blocking::<Vec<u32>>("/api/v1/x") {
            Err(ClientError::Api { status, message }) => {
                assert_eq!(status, 404);
                assert_eq!(message, "no service `x`");
            }
            other => panic!("{other:?}"),
        }
        server.join().unwrap();

        let missing = dir.path().join("nothing.sock");
        assert!(matches!(
            Client::new(&missing).get_blocking::<Vec<u32>>("/api/v1/x"),
            Err(ClientError::NotRunning(path)) if path == missing
        ));
    }
}
