//! hopless load generator: closed and open loop HTTP/1.1 and HTTP/2 load,
//! latency corrected for coordinated omission, HdrHistogram recorders per
//! worker, and a versioned JSON report.

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
