//! The lean HTTP/1.1 keep-alive path: request bytes built once per target,
//! and an incremental response parser (Content-Length, chunked, or until
//! close) that counts the body without copying or allocating it.

use crate::config::Url;

/// A GET request for one target, serialized once and written as is for
/// every request.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    bytes: Vec<u8>,
}

impl RequestTemplate {
    /// Builds `GET path HTTP/1.1` with Host (unless `headers` set one),
    /// a User-Agent, and the extra `headers` (`Name: value` lines). With
    /// `close` it asks the server to close after the response.
    pub fn new(url: &Url, headers: &[String], close: bool) -> Self {
        let has = |name: &str| {
            headers.iter().any(|h| {
                h.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            })
        };
        let mut s = format!("GET {} HTTP/1.1\r\n", url.path);
        if !has("host") {
            s.push_str(&format!("Host: {}\r\n", url.authority()));
        }
        if !has("user-agent") {
            s.push_str(concat!(
                "User-Agent: hopless-loadgen/",
                env!("CARGO_PKG_VERSION"),
                "\r\n"
            ));
        }
        for h in headers {
            s.push_str(h.trim());
            s.push_str("\r\n");
        }
        if close && !has("connection") {
            s.push_str("Connection: close\r\n");
        }
        s.push_str("\r\n");
        RequestTemplate {
            bytes: s.into_bytes(),
        }
    }

    /// The request as written on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Why a response could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The status line is not `HTTP/1.x NNN ...`.
    #[error("bad status line")]
    StatusLine,
    /// A header line has no colon, or Content-Length is not a number.
    #[error("bad header")]
    Header,
    /// The chunked encoding is malformed.
    #[error("bad chunked encoding")]
    Chunked,
    /// The response head does not fit in the read buffer.
    #[error("response head larger than the read buffer")]
    HeadTooLarge,
}

/// What the parser made of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Needs more bytes; the first `consumed` were used and may be dropped.
    /// While the head is incomplete `consumed` is 0 and the caller keeps
    /// the bytes and appends the next read after them.
    NeedMore {
        /// Bytes used.
        consumed: usize,
    },
    /// The response is complete after `consumed` bytes.
    Done {
        /// Bytes used.
        consumed: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    UntilClose,
    ChunkSize {
        value: u64,
        digits: u8,
        in_ext: bool,
    },
    ChunkData(u64),
    ChunkDataEnd {
        seen_cr: bool,
    },
    Trailer {
        line_len: usize,
    },
}

/// An incremental HTTP/1.1 response parser, reused across the responses of
/// one connection.
#[derive(Debug, Clone)]
pub struct ResponseParser {
    state: State,
    status: u16,
    keep_alive: bool,
    body_bytes: u64,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    /// A parser waiting for a response head.
    pub fn new() -> Self {
        ResponseParser {
            state: State::Head,
            status: 0,
            keep_alive: true,
            body_bytes: 0,
        }
    }

    /// Readies the parser for the next response on the connection.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The status code, once the head is parsed.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the connection may carry another request after this response.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive && self.state != State::UntilClose
    }

    /// Body bytes seen so far (after chunked framing is removed).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Whether the body runs until the server closes the connection, so
    /// end of file completes the response.
    pub fn reads_until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Marks a read-until-close body complete: the server closed the
    /// connection, which ends it.
    pub fn set_complete(&mut self) {
        self.state = State::Length(0);
        self.keep_alive = false;
    }

    /// Feeds the unparsed bytes of the connection's buffer.
    pub fn feed(&mut self, buf: &[u8]) -> Result<Feed, ParseError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Head => match self.parse_head(buf)? {
                    None => return Ok(Feed::NeedMore { consumed: 0 }),
                    Some(end) => {
                        pos = end;
                        if self.state == State::Head {
                            // A 1xx interim response: the real one follows.
                            return self.feed(&buf[end..]).map(|f| shift(f, end));
                        }
                    }
                },
                State::Length(0) => return Ok(Feed::Done { consumed: pos }),
                State::Length(left) => {
                    let take = left.min((buf.len() - pos) as u64);
                    pos += take as usize;
                    self.body_bytes += take;
                    self.state = State::Length(left - take);
                    if left == take {
                        return Ok(Feed::Done { consumed: pos });
                    }
                    return Ok(Feed::NeedMore { consumed: pos });
                }
                State::UntilClose => {
                    self.body_bytes += (buf.len() - pos) as u64;
                    return Ok(Feed::NeedMore {
                        consumed: buf.len(),
                    });
                }
                _ => return self.feed_chunked(buf, pos),
            }
        }
    }

    fn feed_chunked(&mut self, buf: &[u8], mut pos: usize) -> Result<Feed, ParseError> {
        while pos < buf.len() {
            let b = buf[pos];
            match &mut self.state {
                State::ChunkSize {
                    value,
                    digits,
                    in_ext,
                } => {
                    pos += 1;
                    match b {
                        b'\n' => {
                            if *digits == 0 {
                                return Err(ParseError::Chunked);
                            }
                            self.state = if *value == 0 {
                                State::Trailer { line_len: 0 }
                            } else {
                                State::ChunkData(*value)
                            };
                        }
                        b'\r' => {}
                        _ if *in_ext => {}
                        b';' | b' ' | b'\t' => *in_ext = true,
                        _ => {
                            let d = (b as char).to_digit(16).ok_or(ParseError::Chunked)?;
                            if *digits >= 15 {
                                return Err(ParseError::Chunked);
                            }
                            *value = *value * 16 + u64::from(d);
                            *digits += 1;
                        }
                    }
                }
                State::ChunkData(left) => {
                    let take = (*left).min((buf.len() - pos) as u64);
                    pos += take as usize;
                    self.body_bytes += take;
                    *left -= take;
                    if *left == 0 {
                        self.state = State::ChunkDataEnd { seen_cr: false };
                    }
                }
                State::ChunkDataEnd { seen_cr } => {
                    pos += 1;
                    match b {
                        b'\r' if !*seen_cr => *seen_cr = true,
                        b'\n' => {
                            self.state = State::ChunkSize {
                                value: 0,
                                digits: 0,
                                in_ext: false,
                            }
                        }
                        _ => return Err(ParseError::Chunked),
                    }
                }
                State::Trailer { line_len } => {
                    pos += 1;
                    match b {
                        b'\n' if *line_len == 0 => {
                            self.state = State::Length(0);
                            return Ok(Feed::Done { consumed: pos });
                        }
                        b'\n' => *line_len = 0,
                        b'\r' => {}
                        _ => *line_len += 1,
                    }
                }
                _ => unreachable!("feed_chunked only runs in chunked states"),
            }
        }
        Ok(Feed::NeedMore { consumed: pos })
    }

    /// Parses the head at the start of `buf` in one pass over its lines:
    /// None while its empty line has not arrived (nothing is changed
    /// then), else the index just past it.
    fn parse_head(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let mut ends = memchr::memchr_iter(b'\n', buf);
        let Some(first) = ends.next() else {
            return Ok(None);
        };
        let status_line = trim_cr(&buf[..first]);
        if status_line.len() < 12 || !status_line.starts_with(b"HTTP/1.") {
            return Err(ParseError::StatusLine);
        }
        let http10 = status_line[7] == b'0';
        let code = &status_line[9..12];
        if !code.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::StatusLine);
        }
        let status = code
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));

        let mut length = None;
        let mut chunked = false;
        let mut keep_alive = !http10;
        let mut start = first + 1;
        let end = loop {
            let Some(nl) = ends.next() else {
                return Ok(None);
            };
            let line = trim_cr(&buf[start..nl]);
            start = nl + 1;
            if line.is_empty() {
                break start;
            }
            let colon = memchr::memchr(b':', line).ok_or(ParseError::Header)?;
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
                length = Some(n.ok_or(ParseError::Header)?);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = contains_ignore_case(value, b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                if contains_ignore_case(value, b"close") {
                    keep_alive = false;
                } else if contains_ignore_case(value, b"keep-alive") {
                    keep_alive = true;
                }
            }
        };

        self.status = status;
        self.keep_alive = keep_alive;
        self.state = if (100..200).contains(&status) && status != 101 {
            State::Head
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            State::Length(0)
        } else if chunked {
            State::ChunkSize {
                value: 0,
                digits: 0,
                in_ext: false,
            }
        } else if let Some(n) = length {
            State::Length(n)
        } else {
            State::UntilClose
        };
        Ok(Some(end))
    }
}

fn shift(f: Feed, by: usize) -> Feed {
    match f {
        // The interim head is used up even if the final one is incomplete,
        // but the caller must keep the partial final head: report 0 until
        // it is whole, then the total.
        Feed::NeedMore { consumed: 0 } => Feed::NeedMore { consumed: 0 },
        Feed::NeedMore { consumed } => Feed::NeedMore {
            consumed: consumed + by,
        },
        Feed::Done { consumed } => Feed::Done {
            consumed: consumed + by,
        },
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` split at every possible point and returns (status,
    /// body bytes, keep-alive, consumed).
    fn parse_split(wire: &[u8]) -> Vec<(u16, u64, bool, usize)> {
        let mut results = Vec::new();
        for cut in 1..wire.len() {
            let mut p = ResponseParser::new();
            let mut buf = wire[..cut].to_vec();
            let mut total = 0;
            let mut rest = &wire[cut..];
            loop {
                match p.feed(&buf).unwrap() {
                    Feed::Done { consumed } => {
                        total += consumed;
                        break;
                    }
                    Feed::NeedMore { consumed } => {
                        total += consumed;
                        buf.drain(..consumed);
                        assert!(!rest.is_empty(), "ran out at cut {cut}");
                        buf.push(rest[0]);
                        rest = &rest[1..];
                    }
                }
            }
            results.push((p.status(), p.body_bytes(), p.keep_alive(), total));
        }
        results
    }

    #[test]
    fn content_length_response_completes_at_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for r in parse_split(wire) {
            assert_eq!(r, (200, 5, true, wire.len()));
        }
    }

    #[test]
    fn chunked_response_with_extension_and_trailer_completes_at_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     4;x=y\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n";
        for r in parse_split(wire) {
            assert_eq!(r, (200, 9, true, wire.len()));
        }
    }

    #[test]
    fn interim_100_is_skipped_and_close_is_seen() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n\
                     Connection: close\r\nContent-Length: 2\r\n\r\nno";
        for r in parse_split(wire) {
            assert_eq!(r, (404, 2, false, wire.len()));
        }
    }

    #[test]
    fn http10_without_length_reads_until_close() {
        let mut p = ResponseParser::new();
        let f = p.feed(b"HTTP/1.0 200 OK\r\n\r\nabc").unwrap();
        assert_eq!(f, Feed::NeedMore { consumed: 22 });
        assert!(p.reads_until_close() && !p.keep_alive());
        assert_eq!(p.body_bytes(), 3);
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert_eq!(
            ResponseParser::new().feed(b"SSH-2.0-x\r\n\r\n"),
            Err(ParseError::StatusLine)
        );
        let bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(
            ResponseParser::new().feed(bad_chunk),
            Err(ParseError::Chunked)
        );
    }

    #[test]
    fn request_carries_host_and_extra_headers() {
        let url = Url::parse("http://blog.test:8080/a?b").unwrap();
        let r = RequestTemplate::new(&url, &["X-A: 1".into()], false);
        let text = String::from_utf8(r.bytes().to_vec()).unwrap();
        assert!(
            text.starts_with("GET /a?b HTTP/1.1\r\nHost: blog.test:8080\r\n"),
            "{text}"
        );
        assert!(text.ends_with("X-A: 1\r\n\r\n"), "{text}");
    }
}
