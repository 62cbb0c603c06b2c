//! Criterion benchmarks of the lean HTTP/1.1 path: parsing a typical
//! response (Content-Length and chunked) and building a request.
// criterion_main! generates an undocumented `main`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use loadgen::config::Url;
use loadgen::http1::{Feed, RequestTemplate, ResponseParser};

fn response(body: usize, chunked: bool) -> Vec<u8> {
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nServer: hopless\r\nDate: Thu, 03 Dec 2026 18:00:00 GMT\r\n\
         Content-Type: text/html; charset=utf-8\r\nCache-Control: max-age=60\r\n\
         ETag: \"abcdef\"\r\n",
    );
    let mut wire = Vec::new();
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        wire.extend_from_slice(head.as_bytes());
        for chunk in vec![b'x'; body].chunks(4096) {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {body}\r\n\r\n"));
        wire.extend_from_slice(head.as_bytes());
        wire.resize(wire.len() + body, b'x');
    }
    wire
}

fn parse_all(parser: &mut ResponseParser, wire: &[u8]) -> usize {
    parser.reset();
    match parser.feed(wire).expect("valid response") {
        Feed::Done { consumed } => consumed,
        Feed::NeedMore { .. } => panic!("whole response given"),
    }
}

fn bench_parser(c: &mut Criterion) {
    let mut group = c.benchmark_group("http1_parse");
    for (name, wire) in [
        ("content_length_13k", response(13_000, false)),
        ("chunked_13k", response(13_000, true)),
        ("content_length_0", response(0, false)),
    ] {
        group.throughput(Throughput::Elements(1));
        let mut parser = ResponseParser::new();
        group.bench_function(name, |b| {
            b.iter(|| parse_all(&mut parser, std::hint::black_box(&wire)))
        });
    }
    group.finish();
}

fn bench_request(c: &mut Criterion) {
    let url = Url::parse("https://blog.test/posts/hello-world/").expect("valid URL");
    let headers = vec!["Accept-Encoding: gzip".to_string()];
    c.bench_function("http1_request_template_build", |b| {
        b.iter(|| RequestTemplate::new(std::hint::black_box(&url), &headers, false))
    });
}

criterion_group!(benches, bench_parser, bench_request);
criterion_main!(benches);
