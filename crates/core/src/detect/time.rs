//! Time arithmetic on event times. Event times are what producers claim, anywhere in the
//! representable range, so every `t ± d` the engine computes (a window's start, a block's
//! expiry) saturates at the ends of that range instead of panicking.

use chrono::{DateTime, TimeDelta, Utc};

/// `t + d`, saturating instead of panicking at the ends of representable time.
pub(crate) fn later(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, saturating instead of panicking at the ends of representable time.
pub(crate) fn earlier(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
