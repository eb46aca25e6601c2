//! The three audit records as OCSF events (docs/ocsf.md has the table):
//!
//! - a user action: `login_attempt` → Authentication Logon, a logout → Logoff; account
//!   lifecycle and password actions → Account Change (create, password change or reset,
//!   enable, disable, delete, lock, unlock, MFA); `privilege_change` → User Access Management;
//!   any other action → Base Event, activity Other named by the action;
//! - a data access → Datastore Activity (read, create, update, delete), the data type as the
//!   table;
//! - a security event → Detection Finding, the event type as the finding's title.

use serde_json::{Map, Value, json};

use super::NotMapped;
use super::classes::{self, Activity, Class, Severity};
use super::head::{Head, declare_profile, set_status, unmapped};
use crate::audit_record::{
    AuditRecord, DataAccess, Operation, Outcome, RiskLevel, SecurityEvent, UserAction,
};

pub(super) fn map(head: &Head<'_>, record: &AuditRecord) -> Result<Map<String, Value>, NotMapped> {
    match record {
        AuditRecord::UserAction(a) => user_action(head, a),
        AuditRecord::DataAccess(d) => data_access(head, d),
        AuditRecord::SecurityEvent(s) => security_event(head, s),
    }
}

/// Where a user action goes: its class and activity. `original` is the input's type.
fn class_of(action: &UserAction, original: &str) -> (Class, Activity) {
    use classes::{account, authentication, user_access};
    let a = action.action.as_str();
    // Actions named by the rules, then those named by their input type (`user.password.reset`):
    // the segments after `user.`, matched by the words they hold.
    match a {
        "login_attempt" => return (classes::AUTHENTICATION, authentication::LOGON),
        "account_created" => return (classes::ACCOUNT_CHANGE, account::CREATE),
        "privilege_change" => {
            // `user.permission.revoked`, `user.role.removed`: a revocation; the rest assign.
            let revoked = original
                .rsplit('.')
                .next()
                .is_some_and(|last| ["revoked", "removed"].contains(&last));
            let activity = if revoked {
                user_access::REVOKE
            } else {
                user_access::ASSIGN
            };
            return (classes::USER_ACCESS, activity);
        }
        _ => {}
    }
    let words: Vec<&str> = a
        .strip_prefix("user.")
        .unwrap_or("")
        .split(['.', '_'])
        .collect();
    let has = |w: &str| words.contains(&w);
    let activity = if has("logout") || has("logoff") || (has("session") && has("ended")) {
        return (classes::AUTHENTICATION, authentication::LOGOFF);
    } else if has("password") && has("reset") {
        account::PASSWORD_RESET
    } else if has("password") {
        account::PASSWORD_CHANGE
    } else if has("mfa") && (has("disabled") || has("removed")) {
        account::MFA_DISABLE
    } else if has("mfa") && (has("enabled") || has("added")) {
        account::MFA_ENABLE
    } else if (has("account") || words.len() == 1) && has("deleted") {
        account::DELETE
    } else if (has("account") || words.len() == 1) && has("disabled") {
        account::DISABLE
    } else if (has("account") || words.len() == 1) && has("enabled") {
        account::ENABLE
    } else if (has("account") || words.len() == 1) && has("unlocked") {
        account::UNLOCK
    } else if (has("account") || words.len() == 1) && has("locked") {
        account::LOCK
    } else {
        return (classes::BASE_EVENT, (classes::OTHER, ""));
    };
    (classes::ACCOUNT_CHANGE, activity)
}

fn risk_severity(risk: Option<RiskLevel>) -> Severity {
    match risk {
        None => classes::INFORMATIONAL,
        Some(RiskLevel::Low) => classes::LOW,
        Some(RiskLevel::Medium) => classes::MEDIUM,
        Some(RiskLevel::High) => classes::HIGH,
        Some(RiskLevel::Critical) => classes::CRITICAL,
    }
}

fn user_action(head: &Head<'_>, a: &UserAction) -> Result<Map<String, Value>, NotMapped> {
    let (class, (activity_id, caption)) = class_of(a, head.original_type());
    let activity_name = if activity_id == classes::OTHER {
        a.action.as_str()
    } else {
        caption
    };
    let activity = (activity_id, activity_name);
    let mut out = head.event(class, activity, risk_severity(a.risk_level))?;
    match a.outcome {
        Outcome::Success => set_status(&mut out, classes::SUCCESS, None),
        Outcome::Failure => set_status(&mut out, classes::FAILURE, None),
        Outcome::Partial => set_status(&mut out, classes::STATUS_OTHER, Some("partial")),
    }
    let user = head.user(&a.user_id);
    if class == classes::BASE_EVENT {
        declare_profile(&mut out, "host");
        out.insert("actor".into(), json!({ "user": user }));
    } else {
        out.insert("user".into(), user);
    }
    if class == classes::AUTHENTICATION {
        out.insert("service".into(), json!({ "name": head.service_name() }));
    }
    if class == classes::USER_ACCESS {
        let context = a.context.as_ref();
        let privilege = ["new_role", "permission"]
            .iter()
            .find_map(|k| context.and_then(|c| c.get(*k)).and_then(Value::as_str))
            .unwrap_or("unspecified");
        out.insert("privileges".into(), json!([privilege]));
    }
    if let Some(ip) = &a.ip_address {
        match head.endpoint(ip) {
            // Base Event has no endpoint of its own.
            Some(endpoint) if class != classes::BASE_EVENT => {
                out.insert("src_endpoint".into(), endpoint);
            }
            _ if head.pseudonymised() => {}
            _ => unmapped(&mut out, "ip_address", ip.as_str().into()),
        }
    }
    if let Some(session) = &a.session_id
        && class == classes::AUTHENTICATION
    {
        out.insert("session".into(), json!({ "uid": session }));
    }
    if let Some(agent) = &a.user_agent
        && class != classes::BASE_EVENT
    {
        out.insert("http_request".into(), json!({ "user_agent": agent }));
    }
    if let Some(risk) = a.risk_level {
        unmapped(&mut out, "risk_level", risk.as_str().into());
    }
    Ok(out)
}

fn data_access(head: &Head<'_>, d: &DataAccess) -> Result<Map<String, Value>, NotMapped> {
    use classes::datastore;
    let activity = match d.operation {
        Operation::Read => datastore::READ,
        Operation::Create => datastore::CREATE,
        Operation::Update => datastore::UPDATE,
        Operation::Delete => datastore::DELETE,
    };
    let severity = if d.sensitive {
        classes::MEDIUM
    } else {
        classes::INFORMATIONAL
    };
    let mut out = head.event(classes::DATASTORE_ACTIVITY, activity, severity)?;
    set_status(&mut out, classes::SUCCESS, None);
    out.insert("actor".into(), json!({ "user": head.user(&d.user_id) }));
    // Required, and a record names no endpoint: the application the data was accessed
    // through, as `[ocsf] service_name` names it.
    out.insert(
        "src_endpoint".into(),
        json!({ "svc_name": head.service_name() }),
    );
    out.insert("table".into(), json!({ "name": d.data_type }));
    out.insert("count".into(), d.record_count.into());
    unmapped(&mut out, "sensitive", d.sensitive.into());
    if let Some(purpose) = &d.purpose {
        unmapped(&mut out, "purpose", purpose.as_str().into());
    }
    Ok(out)
}

fn security_event(head: &Head<'_>, s: &SecurityEvent) -> Result<Map<String, Value>, NotMapped> {
    let severity = match s.severity {
        crate::audit_record::Severity::Info => classes::INFORMATIONAL,
        crate::audit_record::Severity::Warning => classes::MEDIUM,
        crate::audit_record::Severity::Critical => classes::CRITICAL,
    };
    let mut out = head.finding(severity)?;
    let id = out["metadata"]["uid"].clone();
    out.insert(
        "finding_info".into(),
        json!({ "uid": id, "title": s.event_type, "types": ["security_event"] }),
    );
    out.insert("is_alert".into(), false.into());
    let mut evidence = Map::new();
    if let Some(user) = &s.user_id {
        evidence.insert("user".into(), head.user(user));
    }
    if let Some(ip) = &s.source_ip {
        match head.endpoint(ip) {
            Some(endpoint) => {
                evidence.insert("src_endpoint".into(), endpoint);
            }
            None if head.pseudonymised() => {}
            None => unmapped(&mut out, "source_ip", ip.as_str().into()),
        }
    }
    if !evidence.is_empty() {
        out.insert("evidences".into(), json!([evidence]));
    }
    if s.blocked {
        // The producer stopped the attempt: action Denied (2), disposition Blocked (2), both
        // attributes of the security_control profile.
        declare_profile(&mut out, "security_control");
        out.insert("action_id".into(), 2.into());
        out.insert("action".into(), "Denied".into());
        out.insert("disposition_id".into(), 2.into());
        out.insert("disposition".into(), "Blocked".into());
    }
    Ok(out)
}
