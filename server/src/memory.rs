//! The memory budget: the memory limit of the cgroup the server sees as
//! its root (a container's `mem_limit`) and how many connections it
//! affords, so a small box sheds idle connections instead of meeting the
//! OOM killer.

use std::path::Path;

/// What one open connection may cost at most, user space and kernel:
/// hyper's read and write buffers, rustls' record buffers during a
/// handshake, the task and the socket. Measured here at about 24 KiB for a
/// kept-alive HTTP connection and 28 KiB for HTTPS after its handshake.
pub const CONNECTION_BUDGET: u64 = 48 * 1024;

/// Memory kept for the process itself: the site in memory, the TLS state,
/// the runtime and the allocator's slack.
pub const RESERVE: u64 = 16 * 1024 * 1024;

/// The memory limit at the root of the cgroup mount, v2 (`memory.max`) or
/// v1 (`memory/memory.limit_in_bytes`): inside a container, the
/// container's own. `None` when there is none or it cannot be read. A
/// limit set on a cgroup below the root (a systemd unit's `MemoryMax=` on
/// the host) is not seen; `--max-connections` covers that case.
pub fn cgroup_limit() -> Option<u64> {
    let root = Path::new("/sys/fs/cgroup");
    [
        root.join("memory.max"),
        root.join("memory/memory.limit_in_bytes"),
    ]
    .iter()
    .find_map(|file| parse_limit(&std::fs::read_to_string(file).ok()?))
}

/// A limit file's value: bytes, or `None` for `max` and for v1's "no
/// limit" (a page-rounded `i64::MAX`, anything from 2^60 up).
fn parse_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes < 1 << 60).then_some(bytes)
}

/// The connection cap: `configured`, lowered to what `limit` affords
/// (at least 64, so a tiny limit still serves).
pub fn connection_cap(configured: usize, limit: Option<u64>) -> usize {
    let Some(limit) = limit else {
        return configured;
    };
    let affordable = (limit.saturating_sub(RESERVE) / CONNECTION_BUDGET).max(64);
    configured.min(usize::try_from(affordable).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_files_give_bytes_or_nothing() {
        assert_eq!(parse_limit("67108864\n"), Some(64 << 20));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit(""), None);
    }

    #[test]
    fn a_64_mib_limit_affords_a_thousand_connections() {
        assert_eq!(connection_cap(10_000, Some(64 << 20)), 1024);
        assert_eq!(connection_cap(500, Some(64 << 20)), 500);
        assert_eq!(connection_cap(10_000, None), 10_000);
        assert_eq!(connection_cap(10_000, Some(8 << 20)), 64);
    }
}
