//! One HTTP/1.1 keep-alive connection's request/response exchange on the
//! lean path: a prebuilt request written as is, the response parsed in a
//! reused buffer, nothing allocated per request.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::{Connector, Stream};
use crate::http1::{Feed, RequestTemplate, ResponseParser};
use crate::mix::Picker;
use crate::record::{ErrorKind, Recorder};

/// Read buffer per connection: holds any response head; bodies stream
/// through it.
const READ_BUF: usize = 32 * 1024;

/// What one exchange produced.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// When the request started (connect included if one was needed).
    pub sent: Instant,
    /// When the first response byte arrived.
    pub first_byte: Instant,
    /// When the response was complete.
    pub done: Instant,
    /// The status code.
    pub status: u16,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Bytes read.
    pub bytes_received: u64,
}

/// A failed exchange and the traffic it made before failing.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    /// Why it failed.
    pub kind: ErrorKind,
    /// Whether it failed while connecting.
    pub connecting: bool,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Bytes read.
    pub bytes_received: u64,
}

impl Failure {
    fn connecting(kind: ErrorKind) -> Self {
        Failure {
            kind,
            connecting: true,
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    /// Closed or reset before any response byte: what a reused keep-alive
    /// connection the server has just closed looks like.
    fn is_stale_keep_alive(&self) -> bool {
        self.bytes_received == 0 && matches!(self.kind, ErrorKind::Closed | ErrorKind::Reset)
    }
}

/// An HTTP/1.1 connection slot: reconnects when needed.
#[derive(Debug)]
pub struct H1Client {
    stream: Option<Stream>,
    buf: Box<[u8]>,
    start: usize,
    filled: usize,
    parser: ResponseParser,
    picker: Picker,
    new_connection: bool,
}

impl H1Client {
    /// A slot that opens its connection on first use; with
    /// `new_connection` it closes it after every response.
    pub fn new(picker: Picker, new_connection: bool) -> Self {
        H1Client {
            stream: None,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            start: 0,
            filled: 0,
            parser: ResponseParser::new(),
            picker,
            new_connection,
        }
    }

    /// Drops the connection (after a timeout left it mid-response).
    pub fn disconnect(&mut self) {
        self.stream = None;
    }

    /// Sends one request (to a target picked by weight) and reads its
    /// response. Phases of a new connection go to `rec` when `measured`;
    /// `sent` is when the request started (the caller's clock read).
    pub async fn exchange(
        &mut self,
        connector: &Connector,
        templates: &[RequestTemplate],
        rec: &std::cell::RefCell<Recorder>,
        measured: bool,
        sent: Instant,
    ) -> Result<Exchange, Failure> {
        let reused = self.stream.is_some();
        if !reused {
            self.connect(connector, rec, measured).await?;
        }
        let request = templates[self.picker.next_index()].bytes();
        let mut result = self.round_trip(request, sent).await;
        if reused && result.as_ref().is_err_and(Failure::is_stale_keep_alive) {
            // The server closed the idle connection as we reused it (its
            // keep-alive timeout): retry the GET once on a new connection.
            self.stream = None;
            self.connect(connector, rec, measured).await?;
            result = self.round_trip(request, sent).await;
        }
        if result.is_err() || !self.parser.keep_alive() || self.new_connection {
            self.stream = None;
        }
        result
    }

    async fn connect(
        &mut self,
        connector: &Connector,
        rec: &std::cell::RefCell<Recorder>,
        measured: bool,
    ) -> Result<(), Failure> {
        let c = connector.connect().await.map_err(Failure::connecting)?;
        if measured {
            rec.borrow_mut().record_connect(c.connect, c.tls);
        }
        self.stream = Some(c.stream);
        self.start = 0;
        self.filled = 0;
        Ok(())
    }

    async fn round_trip(&mut self, request: &[u8], sent: Instant) -> Result<Exchange, Failure> {
        let stream = self.stream.as_mut().expect("connected above");
        let bytes_sent = request.len() as u64;
        let mut received = 0u64;
        let fail = |kind, received| Failure {
            kind,
            connecting: false,
            bytes_sent,
            bytes_received: received,
        };

        let written = async {
            stream.write_all(request).await?;
            if let Stream::Tls(_) = stream {
                stream.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        written
            .await
            .map_err(|e| fail(ErrorKind::of_io(&e, false), 0))?;

        self.parser.reset();
        let mut first_byte = None;
        loop {
            match self.parser.feed(&self.buf[self.start..self.filled]) {
                Err(_) => return Err(fail(ErrorKind::Protocol, received)),
                Ok(Feed::Done { consumed }) => {
                    self.start += consumed;
                    if self.start == self.filled {
                        (self.start, self.filled) = (0, 0);
                    }
                    let done = Instant::now();
                    return Ok(Exchange {
                        sent,
                        first_byte: first_byte.unwrap_or(done),
                        done,
                        status: self.parser.status(),
                        bytes_sent,
                        bytes_received: received,
                    });
                }
                Ok(Feed::NeedMore { consumed }) => {
                    self.start += consumed;
                    self.make_room().map_err(|k| fail(k, received))?;
                }
            }
            let stream = self.stream.as_mut().expect("connected above");
            let n = match stream.read(&mut self.buf[self.filled..]).await {
                Ok(n) => n,
                Err(e) => return Err(fail(ErrorKind::of_io(&e, false), received)),
            };
            if first_byte.is_none() {
                first_byte = Some(Instant::now());
            }
            if n == 0 {
                if self.parser.reads_until_close() {
                    self.parser.set_complete();
                    continue;
                }
                return Err(fail(ErrorKind::Closed, received));
            }
            received += n as u64;
            self.filled += n;
        }
    }

    /// Moves unparsed bytes to the front so the next read has room.
    fn make_room(&mut self) -> Result<(), ErrorKind> {
        if self.start == self.filled {
            (self.start, self.filled) = (0, 0);
        } else if self.filled == self.buf.len() {
            if self.start == 0 {
                return Err(ErrorKind::Protocol);
            }
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        Ok(())
    }
}
