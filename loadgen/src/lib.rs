//! hopless load generator: closed and open loop HTTP/1.1 and HTTP/2 load,
//! latency corrected for coordinated omission, HdrHistogram recorders per
//! worker, and a versioned JSON report.

pub mod report;
