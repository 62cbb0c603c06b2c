//! Worker threads: each a current-thread tokio runtime driving its share
//! of the connections, each connection following its share of the
//! open-loop schedule (or looping closed), recording into the worker's own
//! [`Recorder`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::sleep_until;

use crate::client_h1::{Exchange, Failure, H1Client};
use crate::client_h2::{H2Client, H2Target, SharedConnection};
use crate::config::Load;
use crate::conn::Connector;
use crate::env::CpuTimes;
use crate::http1::RequestTemplate;
use crate::mix::Picker;
use crate::pacer::Pacer;
use crate::record::{own_lag, ErrorKind, Recorder, Sample};
use crate::schedule::Schedule;

/// After a failed connect in closed loop, wait this long before the next
/// attempt, so a dead target is not hammered in a tight loop.
pub const CLOSED_LOOP_BACKOFF: Duration = Duration::from_millis(10);

/// Everything the connections of every worker share, read-only.
#[derive(Debug)]
pub struct Plan {
    /// Open or closed loop.
    pub load: Load,
    /// Connections over all workers.
    pub connections: u32,
    /// Request slots sharing one HTTP/2 connection (1 for HTTP/1.1).
    pub streams: u32,
    /// How to connect.
    pub connector: Connector,
    /// HTTP/1.1 requests, one per target (empty with HTTP/2).
    pub templates: Vec<RequestTemplate>,
    /// HTTP/2 requests, one per target (empty with HTTP/1.1).
    pub h2_targets: Vec<H2Target>,
    /// Target weights, in the order of the requests.
    pub weights: Vec<u32>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// One connection per request.
    pub new_connection: bool,
    /// When the schedule (and the warm-up) starts.
    pub start: Instant,
    /// When measuring starts (after the warm-up).
    pub window_start: Instant,
    /// When the run ends.
    pub end: Instant,
}

/// Runs connections `ids` on a new current-thread runtime in this thread
/// and returns what they recorded. `progress` gets the worker's count of
/// finished requests as it goes.
pub fn run_worker(
    plan: Arc<Plan>,
    ids: Vec<u32>,
    progress: Arc<AtomicU64>,
) -> std::io::Result<Recorder> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let rec = Rc::new(RefCell::new(Recorder::new(plan.window_start)));
    let window_cpu = Rc::new(std::cell::Cell::new(None));
    local.block_on(&runtime, async {
        let at_start = window_cpu.clone();
        let window_start = plan.window_start;
        let clock = tokio::task::spawn_local(async move {
            Pacer::new().sleep_until(window_start).await;
            at_start.set(Some(CpuTimes::this_thread()));
        });
        let mut tasks = Vec::new();
        for id in ids {
            let shared = SharedConnection::default();
            for stream in 0..plan.streams {
                let slot = id * plan.streams + stream;
                tasks.push(tokio::task::spawn_local(connection(
                    plan.clone(),
                    slot,
                    shared.clone(),
                    rec.clone(),
                    progress.clone(),
                )));
            }
        }
        for t in tasks {
            // A panicking connection task loses its own requests only.
            let _ = t.await;
        }
        let _ = clock.await;
    });
    let busy = window_cpu.get().map_or(Duration::ZERO, |start: CpuTimes| {
        CpuTimes::this_thread()
            .total()
            .saturating_sub(start.total())
    });
    drop(local);
    drop(runtime);
    let mut rec = Rc::try_unwrap(rec)
        .expect("every task has finished")
        .into_inner();
    rec.busy_s = busy.as_secs_f64();
    rec.finish();
    Ok(rec)
}

enum Client {
    H1(H1Client),
    H2(H2Client),
}

/// One request slot: slot `id` of connections × streams, on the HTTP/2
/// connection `shared` when the plan is HTTP/2.
async fn connection(
    plan: Arc<Plan>,
    id: u32,
    shared: SharedConnection,
    rec: Rc<RefCell<Recorder>>,
    progress: Arc<AtomicU64>,
) {
    let picker = Picker::new(&plan.weights, u64::from(id) + 1);
    let mut client = if plan.h2_targets.is_empty() {
        Client::H1(H1Client::new(picker, plan.new_connection))
    } else {
        Client::H2(H2Client::new(shared, picker, plan.new_connection))
    };
    let schedule = match plan.load {
        Load::Open { rate } => Some(Schedule::new(
            plan.start,
            rate,
            plan.connections * plan.streams,
            id,
        )),
        Load::Closed => None,
    };

    let mut pacer = Pacer::new();
    pacer.sleep_until(plan.start).await;
    // One timer per connection bounds every request: armed at the first
    // request's deadline and moved on only when it fires before the
    // current request's (deadlines only grow), so a request costs no timer
    // registration.
    let watchdog = sleep_until(plan.end.into());
    tokio::pin!(watchdog);
    let mut k = 0u64;
    let mut free_at = plan.start;
    loop {
        let (intended, send_at) = match &schedule {
            Some(s) => {
                let due = s.due(k);
                if due >= plan.end {
                    break;
                }
                pacer.sleep_until(due).await;
                (due, Instant::now())
            }
            None => {
                let now = Instant::now();
                if now >= plan.end {
                    break;
                }
                (now, now)
            }
        };
        k += 1;
        let measured = intended >= plan.window_start;
        let own_lag = own_lag(intended, free_at, send_at);
        if measured {
            let mut r = rec.borrow_mut();
            r.sent += 1;
            r.record_send_lag(send_at.saturating_duration_since(intended), own_lag);
        }

        let deadline = (send_at + plan.timeout).min(plan.end);
        if watchdog.deadline() > deadline.into() {
            watchdog.as_mut().reset(deadline.into());
        }
        // None: the deadline passed with the request unfinished.
        let outcome = {
            let exchange = async {
                match &mut client {
                    Client::H1(c) => {
                        c.exchange(&plan.connector, &plan.templates, &rec, measured, send_at)
                            .await
                    }
                    Client::H2(c) => {
                        c.exchange(&plan.connector, &plan.h2_targets, &rec, measured, send_at)
                            .await
                    }
                }
            };
            tokio::pin!(exchange);
            loop {
                tokio::select! {
                    biased;
                    done = &mut exchange => break Some(done),
                    () = &mut watchdog => {
                        if Instant::now() >= deadline {
                            break None;
                        }
                        watchdog.as_mut().reset(deadline.into());
                    }
                }
            }
        };
        free_at = match &outcome {
            Some(Ok(x)) => x.done,
            _ => Instant::now(),
        };
        // Anything that ends at or after the deadline (the timer may fire
        // a little late) was in flight at the deadline: unfinished.
        if free_at >= plan.end {
            break;
        }
        let backoff = match outcome {
            None => {
                reset(&mut client);
                if measured {
                    rec.borrow_mut().record_error(ErrorKind::Timeout, free_at);
                }
                false
            }
            Some(Ok(x)) => {
                if measured {
                    // Closed loop: the request is due when it is sent.
                    let intended = if schedule.is_some() { intended } else { x.sent };
                    record_exchange(&mut rec.borrow_mut(), intended, own_lag, &x);
                }
                false
            }
            Some(Err(f)) => {
                if measured {
                    record_failure(&mut rec.borrow_mut(), &f, free_at);
                }
                f.connecting
            }
        };
        if measured {
            let r = rec.borrow();
            progress.store(r.completed + r.error_count(), Ordering::Relaxed);
        }
        if backoff && schedule.is_none() {
            let until = (Instant::now() + CLOSED_LOOP_BACKOFF).min(plan.end);
            sleep_until(until.into()).await;
        }
    }

    // Open loop: requests due in the window that never got sent still count.
    if let Some(s) = &schedule {
        rec.borrow_mut().sent += s.due_between(k, plan.window_start, plan.end);
    }
}

fn reset(client: &mut Client) {
    match client {
        Client::H1(c) => c.disconnect(),
        Client::H2(c) => c.disconnect(),
    }
}

fn record_exchange(rec: &mut Recorder, intended: Instant, own_lag: Duration, x: &Exchange) {
    if (200..400).contains(&x.status) {
        rec.record_ok(&Sample {
            intended,
            sent: x.sent,
            own_lag,
            first_byte: x.first_byte,
            done: x.done,
            bytes_received: x.bytes_received,
            bytes_sent: x.bytes_sent,
        });
    } else {
        rec.record_bytes(x.bytes_sent, x.bytes_received);
        rec.record_error(ErrorKind::Status(x.status), x.done);
    }
}

fn record_failure(rec: &mut Recorder, f: &Failure, at: Instant) {
    rec.record_bytes(f.bytes_sent, f.bytes_received);
    rec.record_error(f.kind, at);
}
