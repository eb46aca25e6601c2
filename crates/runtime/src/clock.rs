//! The wall clock as the loops read it: milliseconds since the epoch.

/// Now, in ms since the epoch (0 for a clock set before 1970).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
