//! Hour buckets: how the per-user tables keep the partitions of busy non-person subjects
//! bounded.
//!
//! A person's rows live in one partition per day, (pseudonym, day): one day of one person's
//! actions. But the classifier files every login attempt without a user under `unknown` and
//! every system event under `system`, and records naming no user share one key as well: such
//! a subject's day holds all of that traffic, e.g. a whole credential-stuffing attack. Their
//! rows go to one partition per hour instead: hour h of day d lives in
//! (`bucket_pseudonym(key id, h)`, d).
//!
//! Which subjects are hourly is `[store] hourly_subjects` (plus the no-user subject, always),
//! pinned in the subject's `user_keys` row when its key is created: a later change of the
//! configuration never moves where a stored row is. Keys created before migration 4 have no
//! flag and stay daily.
//!
//! The bucket pseudonym is a UUID v5 of the subject's random key id and the hour, not of the
//! user id: once `gdpr delete` removed the key rows, nothing links those partitions to the
//! subject, exactly as for the key id itself. A v5 UUID never equals a key id (v4).
//!
//! Why hours and not hours × shards: every record is also written to `records_by_time`, one
//! partition per day and shard (`[store] time_shards`, default 16), so a subject's burst
//! already fills those partitions to a sixteenth of the day's traffic (more, with everything
//! else that day). An hour bucket holds a twenty-fourth of that subject's day: smaller than
//! the by-time partition the same rows land in, so sharding hours further would not lower the
//! store's largest partition, while every shard would multiply the queries of a read.

use chrono::{DateTime, NaiveDate, NaiveTime, Timelike, Utc};
use uuid::Uuid;

use auditflow_core::RetentionClass;

/// Part of the stored layout like the derivation itself: never change it.
const BUCKET_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c52_9d0e_4b7a_8c21_5e9f_07d4_b316);

/// The partition pseudonym of hour `hour` (0-23, UTC) of an hourly subject.
pub(crate) fn bucket_pseudonym(key_id: Uuid, hour: u8) -> Uuid {
    let mut name = [0u8; 17];
    name[..16].copy_from_slice(key_id.as_bytes());
    name[16] = hour;
    Uuid::new_v5(&BUCKET_NAMESPACE, &name)
}

/// Where a subject's row of `time` lives: the partition pseudonym (with the day of `time`) and,
/// for an hourly subject, the hour that chose it.
pub(crate) fn partition_of(key_id: Uuid, hourly: bool, time: DateTime<Utc>) -> (Uuid, Option<u8>) {
    if !hourly {
        return (key_id, None);
    }
    let hour = hour_of(time);
    (bucket_pseudonym(key_id, hour), Some(hour))
}

/// The UTC hour of a time, 0-23.
pub(crate) fn hour_of(time: DateTime<Utc>) -> u8 {
    // Seconds into the day / 3600 is below 24 by construction.
    (time.time().num_seconds_from_midnight() / 3_600) as u8
}

/// The partitions of one day of a subject that may hold rows in `[from, upper)`, in groups
/// such that every row of a group is newer than every row of the next: a reader merges one
/// group at a time and stops as soon as it has a page.
///
/// `classes` are the day's `user_days` rows: a class and, for an hourly subject, the hours
/// written. A daily subject has one group, a partition per class; an hourly subject one group
/// per written hour overlapping the range, newest hour first. Hours outside 0-23 (a row this
/// build did not write) are ignored.
pub(crate) fn day_partitions(
    key_id: Uuid,
    hourly: bool,
    day: NaiveDate,
    classes: &[(RetentionClass, Vec<i32>)],
    (from, upper): (DateTime<Utc>, DateTime<Utc>),
) -> Vec<Vec<(RetentionClass, Uuid)>> {
    if !hourly {
        let group: Vec<_> = classes.iter().map(|(class, _)| (*class, key_id)).collect();
        return if group.is_empty() {
            Vec::new()
        } else {
            vec![group]
        };
    }
    (0..24u8)
        .rev()
        .filter(|&hour| hour_overlaps(day, hour, from, upper))
        .map(|hour| {
            classes
                .iter()
                .filter(|(_, hours)| hours.contains(&i32::from(hour)))
                .map(|(class, _)| (*class, bucket_pseudonym(key_id, hour)))
                .collect::<Vec<_>>()
        })
        .filter(|group| !group.is_empty())
        .collect()
}

/// Does hour `hour` of `day` intersect `[from, upper)`?
fn hour_overlaps(day: NaiveDate, hour: u8, from: DateTime<Utc>, upper: DateTime<Utc>) -> bool {
    let Some(start) = NaiveTime::from_hms_opt(u32::from(hour), 0, 0) else {
        return false;
    };
    let start = day.and_time(start).and_utc();
    let end = start + chrono::Duration::hours(1);
    start < upper && end > from
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key() -> Uuid {
        Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef)
    }

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, hour, minute, 0).unwrap()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
    }

    #[test]
    fn buckets_are_stable_distinct_per_hour_and_never_a_key_id() {
        let all: std::collections::HashSet<Uuid> =
            (0..24).map(|h| bucket_pseudonym(key(), h)).collect();
        assert_eq!(all.len(), 24);
        assert!(!all.contains(&key()));
        assert_eq!(bucket_pseudonym(key(), 7), bucket_pseudonym(key(), 7));
        assert_ne!(
            bucket_pseudonym(key(), 7),
            bucket_pseudonym(Uuid::new_v4(), 7)
        );
        for bucket in all {
            assert_eq!(bucket.get_version_num(), 5);
        }
        // Pinned: the stored layout depends on these exact values. Computed outside this
        // code (Python: SHA-1 of the namespace's bytes, the key id's 16 bytes and the hour
        // byte, as a version-5 UUID), so a change of the namespace or the name is caught.
        assert_eq!(
            bucket_pseudonym(Uuid::nil(), 0).to_string(),
            "001b623b-83a1-5501-b7ff-af6e4148f908"
        );
        assert_eq!(
            bucket_pseudonym(key(), 13).to_string(),
            "6a7476b3-7a84-5d98-800b-8cfdaed8d6ed"
        );
        assert_eq!(
            bucket_pseudonym(key(), 23).to_string(),
            "79b1df6a-e31b-5f31-8e0f-86e0ad40f696"
        );
    }

    #[test]
    fn a_row_goes_to_its_hour_when_hourly_and_to_the_key_otherwise() {
        assert_eq!(partition_of(key(), false, at(13, 59)), (key(), None));
        assert_eq!(
            partition_of(key(), true, at(13, 59)),
            (bucket_pseudonym(key(), 13), Some(13))
        );
        assert_eq!(hour_of(at(0, 0)), 0);
        assert_eq!(
            hour_of(Utc.with_ymd_and_hms(2026, 11, 20, 23, 59, 59).unwrap()),
            23
        );
    }

    #[test]
    fn a_daily_subject_has_one_group_of_its_classes() {
        let classes = [
            (RetentionClass::Security, vec![]),
            (RetentionClass::General, vec![]),
        ];
        let groups = day_partitions(key(), false, day(), &classes, (at(0, 0), at(23, 0)));
        assert_eq!(
            groups,
            vec![vec![
                (RetentionClass::Security, key()),
                (RetentionClass::General, key())
            ]]
        );
        assert!(day_partitions(key(), false, day(), &[], (at(0, 0), at(23, 0))).is_empty());
    }

    #[test]
    fn an_hourly_subject_has_its_written_hours_in_range_newest_first() {
        let classes = [
            (RetentionClass::Security, vec![3, 9, 14, 23]),
            (RetentionClass::General, vec![9, 12, 99, -1]),
        ];
        let b = |h| bucket_pseudonym(key(), h);
        let whole_day = (at(0, 0), at(0, 0) + chrono::Duration::days(1));
        assert_eq!(
            day_partitions(key(), true, day(), &classes, whole_day),
            vec![
                vec![(RetentionClass::Security, b(23))],
                vec![(RetentionClass::Security, b(14))],
                vec![(RetentionClass::General, b(12))],
                vec![
                    (RetentionClass::Security, b(9)),
                    (RetentionClass::General, b(9))
                ],
                vec![(RetentionClass::Security, b(3))],
            ]
        );
        // [09:30, 14:00): hour 14 starts at the exclusive end, hour 9 overlaps the start.
        let hours: Vec<Vec<Uuid>> =
            day_partitions(key(), true, day(), &classes, (at(9, 30), at(14, 0)))
                .into_iter()
                .map(|g| g.into_iter().map(|(_, p)| p).collect())
                .collect();
        assert_eq!(hours, vec![vec![b(12)], vec![b(9), b(9)]]);
        // A range on another day touches none of this day's hours.
        let next_day = (
            at(0, 0) + chrono::Duration::days(1),
            at(0, 0) + chrono::Duration::days(2),
        );
        assert!(day_partitions(key(), true, day(), &classes, next_day).is_empty());
    }
}
