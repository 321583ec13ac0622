//! The bench's SSE subscriber connection: one plain TCP socket per stream, read by the
//! task that parses its events. A full HTTP client (reqwest on hyper) drives each
//! connection from a task of its own and hands the body over through a channel, which
//! doubled the wake-ups per delivery; with 10,000 streams the bench then spent more CPU
//! per delivery than the server and its latency figures measured the bench. Framing is
//! left to maintained parsers: `httparse` for the response head and chunk sizes,
//! `eventsource-stream` (in the caller) for the events.

use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most response headers the bench accepts before the body.
const MAX_HEADERS: usize = 32;
/// Initial read buffer per stream; events are a few hundred bytes.
const READ_BUFFER: usize = 2048;

/// Opens `GET path` with a bearer token and returns the body as a stream of bytes once
/// the server has answered 200 (chunked or not).
pub async fn open(
    addr: SocketAddr,
    host: &str,
    path: &str,
    token: &str,
) -> Result<impl Stream<Item = Result<Bytes, String>> + use<>, String> {
    let mut socket = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let chunked = loop {
        if socket
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("connection closed before the response head".to_owned());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Response::new(&mut headers);
        match head
            .parse(&buf)
            .map_err(|e| format!("bad response head: {e}"))?
        {
            httparse::Status::Partial => continue,
            httparse::Status::Complete(len) => {
                let code = head.code.unwrap_or(0);
                if code != 200 {
                    return Err(format!("stream answered {code}"));
                }
                let chunked = head.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("transfer-encoding")
                        && h.value.eq_ignore_ascii_case(b"chunked")
                });
                buf.advance(len);
                break chunked;
            }
        }
    };
    let body = Body {
        socket,
        buf,
        chunked,
        remaining: 0,
        after_data: false,
    };
    Ok(futures_util::stream::unfold(
        Some(body),
        |body| async move {
            let mut body = body?;
            match body.next().await {
                Ok(Some(bytes)) => Some((Ok(bytes), Some(body))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}

/// A response body being read: raw, or HTTP/1.1 chunked.
struct Body {
    socket: TcpStream,
    buf: BytesMut,
    chunked: bool,
    /// Bytes left in the current chunk.
    remaining: u64,
    /// The CRLF that closes a chunk's data is still to be read.
    after_data: bool,
}

impl Body {
    /// The next piece of body, `None` at its end.
    async fn next(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if !self.chunked {
                if !self.buf.is_empty() {
                    return Ok(Some(self.buf.split().freeze()));
                }
            } else if self.remaining > 0 {
                if !self.buf.is_empty() {
                    let take = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.buf.len());
                    self.remaining -= take as u64;
                    self.after_data = self.remaining == 0;
                    return Ok(Some(self.buf.split_to(take).freeze()));
                }
            } else if self.after_data {
                if self.buf.len() >= 2 {
                    if &self.buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".to_owned());
                    }
                    self.buf.advance(2);
                    self.after_data = false;
                    continue;
                }
            } else {
                match httparse::parse_chunk_size(&self.buf)
                    .map_err(|_| "bad chunk size line".to_owned())?
                {
                    httparse::Status::Complete((used, 0)) => {
                        self.buf.advance(used);
                        return Ok(None);
                    }
                    httparse::Status::Complete((used, size)) => {
                        self.buf.advance(used);
                        self.remaining = size;
                        continue;
                    }
                    httparse::Status::Partial => {}
                }
            }
            let read = self
                .socket
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if read == 0 {
                return if self.chunked {
                    Err("connection closed inside a chunked body".to_owned())
                } else {
                    Ok(None)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::open;

    /// Serves `response` one byte per write, so every boundary (inside a chunk-size
    /// line, between data and its CRLF) falls between reads somewhere.
    async fn serve_once(response: &'static [u8]) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.set_nodelay(true).unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await.unwrap();
            for byte in response {
                if socket.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        addr
    }

    async fn body_of(response: &'static [u8]) -> Result<Vec<u8>, String> {
        let addr = serve_once(response).await;
        let body = open(addr, "test", "/stream", "t").await?;
        let mut body = std::pin::pin!(body);
        let mut all = Vec::new();
        while let Some(piece) = body.next().await {
            all.extend_from_slice(&piece?);
        }
        Ok(all)
    }

    #[tokio::test]
    async fn a_chunked_body_is_decoded_across_any_read_boundary() {
        let body = body_of(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
              6\r\nevent:\r\n1a\r\n alert\ndata: {\"title\":1}\n\n\r\n0\r\n\r\n",
        )
        .await
        .expect("decoded");
        assert_eq!(body, b"event: alert\ndata: {\"title\":1}\n\n");
    }

    #[tokio::test]
    async fn a_body_without_chunking_runs_to_the_end_of_the_connection() {
        let body = body_of(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\ndata: x\n\n")
            .await
            .expect("read");
        assert_eq!(body, b"data: x\n\n");
    }

    #[tokio::test]
    async fn a_refused_stream_reports_its_status() {
        let err = body_of(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
            .await
            .expect_err("refused");
        assert_eq!(err, "stream answered 401");
    }

    #[tokio::test]
    async fn a_chunked_body_cut_short_is_an_error_not_an_end() {
        let err = body_of(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nonly part")
            .await
            .expect_err("cut short");
        assert!(err.contains("closed inside"), "{err}");
    }

    #[tokio::test]
    async fn a_malformed_chunk_is_an_error() {
        let err = body_of(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabXY")
            .await
            .expect_err("malformed");
        assert!(err.contains("CRLF"), "{err}");
    }
}
