//! hopless load generator: closed and open loop HTTP/1.1 and HTTP/2 load,
//! latency corrected for coordinated omission, HdrHistogram recorders per
//! worker, and a versioned JSON report.
//!
//! How a run is built:
//! - [`cli`] parses the flags into a validated [`config::Config`];
//! - [`run::run`] starts one thread per worker ([`worker`]), each a
//!   current-thread tokio runtime driving its share of the connections;
//! - each connection follows its share of the absolute open-loop
//!   [`schedule`] (waking by [`pacer`]) or loops closed, and exchanges
//!   requests on the lean HTTP/1.1 path ([`client_h1`], [`http1`]) or
//!   through hyper for h2 ([`client_h2`]), over [`conn`] and [`tls`];
//! - every worker records into its own [`record::Recorder`]; at the end
//!   [`assemble`] adds them up exactly into a [`report::Report`], which
//!   [`human`] prints and [`merge`] combines across machines; [`sweep`]
//!   repeats runs to find the highest rate under a p99 objective.
//!
//! # Examples
//!
//! Reading a saved report (the bench does this):
//!
//! ```no_run
//! let report = loadgen::report::Report::from_json_file("run.json".as_ref())?;
//! println!("p99 {} µs", report.summary.latency_corrected.p99_us);
//! # Ok::<(), loadgen::report::ReportError>(())
//! ```

pub mod assemble;
pub mod cli;
pub mod client_h1;
pub mod client_h2;
pub mod config;
pub mod conn;
pub mod env;
pub mod http1;
pub mod human;
pub mod merge;
pub mod mix;
pub mod pacer;
pub mod record;
pub mod report;
pub mod run;
pub mod schedule;
pub mod sweep;
pub mod tls;
pub mod worker;
