//! The security monitor's records as OCSF events (docs/ocsf.md has the table):
//!
//! - a `security.alert` → Detection Finding (Create, status New): the rule as the finding's
//!   title and analytic, its window as first and last seen, its evidence ids as related
//!   events, its level as the severity, its score as the risk score;
//! - a `security.action` → the remediation it asks for: `block_ip` → Network Remediation
//!   Activity, Isolate (the blocked source as the `device`, the block's end as `end_time`);
//!   `disable_account` → Remediation Activity, Evict (the account in `unmapped.user_uid`:
//!   the class has no attribute for a user). Their status is Unknown: auditflow asks, the
//!   operator's systems carry out.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::NotMapped;
use super::classes::{self, Severity};
use super::head::{Head, declare_profile, ms, set_status, unmapped};

fn text<'d>(data: &'d Map<String, Value>, key: &str) -> Option<&'d str> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn required<'d>(data: &'d Map<String, Value>, ty: &str, key: &str) -> Result<&'d str, NotMapped> {
    text(data, key).ok_or_else(|| NotMapped::Invalid(format!("{ty} data: missing `{key}`")))
}

fn time(data: &Map<String, Value>, ty: &str, key: &str) -> Result<DateTime<Utc>, NotMapped> {
    required(data, ty, key)?
        .parse()
        .map_err(|_| NotMapped::Invalid(format!("{ty} data: `{key}` is not an RFC 3339 time")))
}

fn level_severity(level: &str) -> Result<Severity, NotMapped> {
    Ok(match level {
        "low" => classes::LOW,
        "medium" => classes::MEDIUM,
        "high" => classes::HIGH,
        "critical" => classes::CRITICAL,
        other => {
            return Err(NotMapped::Invalid(format!(
                "security.alert data: unknown level `{other}`"
            )));
        }
    })
}

pub(super) fn alert(
    head: &Head<'_>,
    data: &Map<String, Value>,
) -> Result<Map<String, Value>, NotMapped> {
    const TY: &str = "security.alert";
    let rule = required(data, TY, "rule")?;
    let severity = level_severity(required(data, TY, "level")?)?;
    let (start, end) = (
        time(data, TY, "window_start")?,
        time(data, TY, "window_end")?,
    );
    let mut out = head.finding(severity)?;
    let related: Vec<Value> = data
        .get("evidence")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|id| json!({ "uid": id }))
        .collect();
    let mut finding = json!({
        "uid": out["metadata"]["uid"],
        "title": rule,
        "types": ["alert"],
        "analytic": { "name": rule, "uid": rule, "type_id": 1, "type": "Rule" },
        "first_seen_time": ms(start),
        "last_seen_time": ms(end),
    });
    if !related.is_empty() {
        finding["related_events_count"] = related.len().into();
        finding["related_events"] = related.into();
    }
    out.insert("finding_info".into(), finding);
    out.insert("is_alert".into(), true.into());
    out.insert("start_time".into(), ms(start).into());
    out.insert("end_time".into(), ms(end).into());
    if let Some(score) = data.get("score").and_then(Value::as_u64) {
        out.insert("risk_score".into(), score.into());
    }
    if let Some(count) = data.get("count").and_then(Value::as_u64) {
        out.insert("count".into(), count.into());
    }
    let mut evidence = Map::new();
    if let Some(user) = text(data, "user_id") {
        evidence.insert("user".into(), head.user(user));
    }
    if let Some(ip) = text(data, "source_ip") {
        evidence.insert("src_endpoint".into(), head.source(ip));
    }
    if !evidence.is_empty() {
        out.insert("evidences".into(), json!([evidence]));
    }
    Ok(out)
}

pub(super) fn action(
    head: &Head<'_>,
    data: &Map<String, Value>,
) -> Result<Map<String, Value>, NotMapped> {
    const TY: &str = "security.action";
    let mut out = match required(data, TY, "action")? {
        "block_ip" => {
            let ip = required(data, TY, "ip")?;
            let until = time(data, TY, "expires_at")?;
            let mut out = head.event(
                classes::NETWORK_REMEDIATION,
                classes::remediation::ISOLATE,
                classes::CRITICAL,
            )?;
            out.insert(
                "connection_info".into(),
                json!({ "direction_id": 1, "direction": "Inbound" }),
            );
            // The blocked source: an address, or a blocklist key (an IPv6 /64).
            let mut device = json!({ "type_id": 0, "type": "Unknown" });
            for (k, v) in head.source(ip).as_object().into_iter().flatten() {
                device[k] = v.clone();
            }
            declare_profile(&mut out, "host");
            out.insert("device".into(), device);
            out.insert("end_time".into(), ms(until).into());
            let reason = text(data, "reason").unwrap_or("a critical alert");
            out.insert(
                "remediation".into(),
                json!({ "desc": format!(
                    "Refuse inbound traffic from the device's address until end_time ({reason})"
                ) }),
            );
            out
        }
        "disable_account" => {
            let user = required(data, TY, "user_id")?;
            let mut out = head.event(
                classes::REMEDIATION,
                classes::remediation::EVICT,
                classes::CRITICAL,
            )?;
            let uid = head.user(user)["uid"].clone();
            unmapped(&mut out, "user_uid", uid);
            out.insert(
                "remediation".into(),
                json!({ "desc": "Disable the account unmapped.user_uid names" }),
            );
            out
        }
        other => {
            return Err(NotMapped::Invalid(format!(
                "security.action data: unknown action `{other}`"
            )));
        }
    };
    let id = out["metadata"]["uid"].clone();
    out.insert("command_uid".into(), id);
    set_status(&mut out, classes::STATUS_UNKNOWN, None);
    Ok(out)
}
