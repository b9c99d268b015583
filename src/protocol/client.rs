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
