//! Cost per request of the in-memory request path (lookup, conditional
//! check, choice of encoding, response build) on the embedded sample site,
//! without sockets: what a request costs before hyper and the kernel.

use criterion::{black_box, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method, Uri};
use server::{Routes, Site};

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    map
}

fn bench_routes(c: &mut Criterion) {
    let site = Site::load(None).expect("embedded site");
    let routes = Routes::from_site(&site, "https://blog.test");
    let post: Uri = format!("/posts/{}/", site.posts[0].slug).parse().unwrap();
    let index: Uri = "/".parse().unwrap();
    let browser = headers(&[
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept", "text/html,application/xhtml+xml"),
        ("user-agent", "Mozilla/5.0"),
    ]);
    let etag = routes
        .respond(&Method::GET, &post, &browser, true)
        .headers()["etag"]
        .clone();
    let mut revalidate = browser.clone();
    revalidate.insert("if-none-match", etag);

    let mut group = c.benchmark_group("request_path");
    group.bench_function("post_brotli", |b| {
        b.iter(|| {
            routes.respond(
                black_box(&Method::GET),
                black_box(&post),
                black_box(&browser),
                true,
            )
        })
    });
    group.bench_function("index_identity", |b| {
        let none = HeaderMap::new();
        b.iter(|| {
            routes.respond(
                black_box(&Method::GET),
                black_box(&index),
                black_box(&none),
                false,
            )
        })
    });
    group.bench_function("post_304_if_none_match", |b| {
        b.iter(|| {
            routes.respond(
                black_box(&Method::GET),
                black_box(&post),
                black_box(&revalidate),
                true,
            )
        })
    });
    let missing: Uri = "/posts/does-not-exist/".parse().unwrap();
    group.bench_function("not_found", |b| {
        b.iter(|| {
            routes.respond(
                black_box(&Method::GET),
                black_box(&missing),
                black_box(&browser),
                true,
            )
        })
    });
    let slashless: Uri = format!("/posts/{}", site.posts[0].slug).parse().unwrap();
    group.bench_function("redirect_to_trailing_slash", |b| {
        b.iter(|| {
            routes.respond(
                black_box(&Method::GET),
                black_box(&slashless),
                black_box(&browser),
                true,
            )
        })
    });
    group.finish();

    c.bench_function("choose_encoding", |b| {
        let value = HeaderValue::from_static("gzip, deflate, br;q=0.9, zstd");
        b.iter(|| server::response::choose_encoding(black_box(Some(&value))))
    });
}

// criterion_group! defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench_routes);
}
use group::benches;
criterion_main!(benches);
