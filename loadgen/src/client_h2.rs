//! HTTP/2 request slots driven by hyper: each slot has one request in
//! flight at a time, and `--streams` slots share one connection, so
//! connections × streams requests are in flight.

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

/// One HTTP/2 connection shared by the slots of a worker; opened by the
/// first slot that needs it, the others wait on the lock meanwhile.
pub type SharedConnection = std::rc::Rc<tokio::sync::Mutex<Option<SendRequest<Empty<Bytes>>>>>;

/// An HTTP/2 request slot: (re)connects its shared connection when needed.
#[derive(Debug)]
pub struct H2Client {
    shared: SharedConnection,
    picker: Picker,
    new_connection: bool,
}

impl H2Client {
    /// A slot on `shared`, which it opens on first use.
    pub fn new(shared: SharedConnection, picker: Picker, new_connection: bool) -> Self {
        H2Client {
            shared,
            picker,
            new_connection,
        }
    }

    /// Drops the shared connection (after a timeout), unless another slot
    /// is using the lock right now.
    pub fn disconnect(&mut self) {
        if let Ok(mut guard) = self.shared.try_lock() {
            *guard = None;
        }
    }

    /// Sends one request and reads its whole response; `sent` is when the
    /// request started (the caller's clock read).
    pub async fn exchange(
        &mut self,
        connector: &Connector,
        targets: &[H2Target],
        rec: &std::cell::RefCell<Recorder>,
        measured: bool,
        sent: Instant,
    ) -> Result<Exchange, Failure> {
        let connecting = |kind| Failure {
            kind,
            connecting: true,
            bytes_sent: 0,
            bytes_received: 0,
        };
        let mut guard = self.shared.lock().await;
        if guard.as_ref().is_none_or(|s| s.is_closed()) {
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
            *guard = Some(sender);
        }
        let mut sender = guard.as_ref().expect("connected above").clone();
        drop(guard);

        let target = &targets[self.picker.next_index()];
        let result = round_trip(&mut sender, target, sent).await;
        if result.is_err() || self.new_connection {
            *self.shared.lock().await = None;
        }
        result
    }
}

async fn round_trip(
    sender: &mut SendRequest<Empty<Bytes>>,
    target: &H2Target,
    sent: Instant,
) -> Result<Exchange, Failure> {
    let fail = |e: &hyper::Error, received| Failure {
        kind: classify(e),
        connecting: false,
        bytes_sent: 0,
        bytes_received: received,
    };
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
