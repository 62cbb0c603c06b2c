//! One HTTP/2 connection slot driven by hyper: a request at a time per
//! slot (as an HTTP/1.1 slot), so `-c` means requests in flight either way.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::client_h1::{Exchange, Failure};
use crate::conn::Connector;
use crate::mix::Picker;
use crate::record::{ErrorKind, Recorder};

/// What an HTTP/2 request needs besides the URL: extra headers parsed once.
#[derive(Debug, Clone)]
pub struct H2Target {
    /// Absolute URI (`https://host/path`), giving :scheme, :authority, :path.
    pub uri: http::Uri,
    /// Extra headers.
    pub headers: http::HeaderMap,
}

/// An HTTP/2 connection slot: reconnects when needed.
#[derive(Debug)]
pub struct H2Client {
    sender: Option<SendRequest<Empty<Bytes>>>,
    picker: Picker,
    new_connection: bool,
}

impl H2Client {
    /// A slot that opens its connection on first use.
    pub fn new(picker: Picker, new_connection: bool) -> Self {
        H2Client {
            sender: None,
            picker,
            new_connection,
        }
    }

    /// Drops the connection (after a timeout left a stream open).
    pub fn disconnect(&mut self) {
        self.sender = None;
    }

    /// Sends one request and reads its whole response.
    pub async fn exchange(
        &mut self,
        connector: &Connector,
        targets: &[H2Target],
        rec: &std::cell::RefCell<Recorder>,
        measured: bool,
    ) -> Result<Exchange, Failure> {
        let sent = Instant::now();
        let connecting = |kind| Failure {
            kind,
            connecting: true,
            bytes_sent: 0,
            bytes_received: 0,
        };
        if self.sender.as_ref().map_or(true, |s| s.is_closed()) {
            let c = connector.connect().await.map_err(connecting)?;
            if measured {
                rec.borrow_mut().record_connect(c.connect, c.tls);
            }
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(c.stream))
                    .await
                    .map_err(|e| connecting(classify(&e)))?;
            tokio::task::spawn_local(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }

        let target = &targets[self.picker.next_index()];
        let result = self.round_trip(target, sent).await;
        if result.is_err() || self.new_connection {
            self.sender = None;
        }
        result
    }

    async fn round_trip(&mut self, target: &H2Target, sent: Instant) -> Result<Exchange, Failure> {
        let fail = |e: &hyper::Error, received| Failure {
            kind: classify(e),
            connecting: false,
            bytes_sent: 0,
            bytes_received: received,
        };
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await.map_err(|e| fail(&e, 0))?;
        let mut request = http::Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = target.uri.clone();
        *request.headers_mut() = target.headers.clone();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail(&e, 0))?;
        let first_byte = Instant::now();
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| fail(&e, received))?;
            if let Some(data) = frame.data_ref() {
                received += data.len() as u64;
            }
        }
        Ok(Exchange {
            sent,
            first_byte,
            done: Instant::now(),
            status,
            bytes_sent: 0,
            bytes_received: received,
        })
    }
}

fn classify(e: &hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return ErrorKind::of_io(io, false);
        }
        source = s.source();
    }
    if e.is_closed() || e.is_canceled() || e.is_incomplete_message() {
        ErrorKind::Closed
    } else {
        ErrorKind::Protocol
    }
}
