//! Guards the hot path against per-request allocation: the number of heap
//! allocations the generator makes must not grow with the number of
//! requests (HTTP/1.1 keep-alive, open and closed loop).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use loadgen::run::run;
use support::{config, Behaviour, TestServer, SERVER_THREAD};

/// Counts allocations made outside the test server's threads.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !SERVER_THREAD.try_with(|s| s.get()).unwrap_or(true) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and completed requests of one run with `args`.
fn measure(args: &[&str]) -> (u64, u64) {
    let cfg = config(args);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let r = run(&cfg, false).unwrap();
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    (allocations, r.summary.requests_completed)
}

#[test]
fn allocations_do_not_grow_with_requests() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    for rate in [None, Some("2000")] {
        let mut short = vec!["-c", "4", "-t", "1", "-d", "300ms"];
        let mut long = vec!["-c", "4", "-t", "1", "-d", "1200ms"];
        if let Some(r) = rate {
            short.extend(["-R", r]);
            long.extend(["-R", r]);
        }
        short.push(&url);
        long.push(&url);
        let (a_short, n_short) = measure(&short);
        let (a_long, n_long) = measure(&long);
        let extra_requests = n_long.saturating_sub(n_short).max(1);
        let per_request = a_long.saturating_sub(a_short) as f64 / extra_requests as f64;
        // The per-second series encodes one histogram a second per worker:
        // a handful of allocations a second, far below one per request.
        assert!(
            per_request < 0.05,
            "rate {rate:?}: {a_short} allocations for {n_short} requests, {a_long} for {n_long}"
        );
    }
}
