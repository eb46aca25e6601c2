//! The classification rules 1-9 of docs/topics-and-records.md: which audit records an input
//! becomes.
//!
//! Fields the producer controls (`data`) are checked here, as the records are built: a value
//! of the wrong type for its output field is a `schema_violation` naming the field, never a
//! guess and never a panic. Values with an explicit fallback in the contract ("`D.severity`
//! when valid, else `info`") fall back instead.

use serde_json::{Map, Value};

use super::derive::{Derived, field};
use crate::audit_record::{
    AuditRecord, DataAccess, Operation, Outcome, RiskLevel, SecurityEvent, Severity, UserAction,
};
use crate::envelope::{Event, Reason, Rejection, id_text};
use crate::pattern::PatternTable;

/// Keys of `D.changes` that make a profile update sensitive (rule 4).
pub const SENSITIVE_FIELDS: [&str; 4] = ["email", "phone", "ssn", "payment_info"];
/// Roles that make a privilege change high risk (rule 5), compared exactly, as the security
/// monitor compares its `privileged_roles`, so both agree on what is privileged.
pub const PRIVILEGED_ROLES: [&str; 4] = ["admin", "owner", "superuser", "root"];

/// Whether `role` is one of [`PRIVILEGED_ROLES`].
pub fn is_privileged_role(role: &str) -> bool {
    PRIVILEGED_ROLES.contains(&role)
}

/// A row of the rules table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// 1: `audit.**`, the loop guard.
    LoopGuard,
    /// 2: `user.created`.
    AccountCreated,
    /// 3: `user.login.attempt`.
    LoginAttempt,
    /// 4: `user.profile.updated`.
    ProfileUpdate,
    /// 5: `user.role.changed`, `user.permission.granted`.
    PrivilegeChange,
    /// 6: `user.data.read|export|delete`.
    DataAccess(Operation),
    /// 7: any other `user.**`.
    OtherUserEvent,
    /// 8: `system.security.**`.
    SystemSecurity,
    /// 9: any other `system.**`.
    OtherSystemEvent,
}

/// The rules as a pattern table. The rules say "first match wins" in table order; here every
/// earlier row is strictly more specific than the later rows it overlaps (`user.created` vs
/// `user.**`, `system.security.**` vs `system.**`), so specificity picks the same row — tested
/// below — and one matcher serves rules, sampling and retention alike.
pub(crate) fn rule_table() -> PatternTable<Rule> {
    PatternTable::parse([
        ("audit.**", Rule::LoopGuard),
        ("user.created", Rule::AccountCreated),
        ("user.login.attempt", Rule::LoginAttempt),
        ("user.profile.updated", Rule::ProfileUpdate),
        ("user.role.changed", Rule::PrivilegeChange),
        ("user.permission.granted", Rule::PrivilegeChange),
        ("user.data.read", Rule::DataAccess(Operation::Read)),
        ("user.data.export", Rule::DataAccess(Operation::Read)),
        ("user.data.delete", Rule::DataAccess(Operation::Delete)),
        ("user.**", Rule::OtherUserEvent),
        ("system.security.**", Rule::SystemSecurity),
        ("system.**", Rule::OtherSystemEvent),
    ])
    .expect("the built-in rule patterns are valid")
}

/// The records `event` becomes under `rule`, a user action or data access before its security
/// event. The loop guard yields none.
pub(crate) fn apply(
    rule: Rule,
    event: &Event,
    derived: &Derived<'_>,
) -> Result<Vec<AuditRecord>, Rejection> {
    let data = &event.data;
    let records = match rule {
        Rule::LoopGuard => Vec::new(),
        Rule::AccountCreated => {
            let user = required_user(derived)?;
            vec![user_action(
                user,
                "account_created",
                Outcome::Success,
                RiskLevel::Low,
                derived,
                data,
            )?]
        }
        Rule::LoginAttempt => login_attempt(derived, data)?,
        Rule::ProfileUpdate => {
            let user = required_user(derived)?;
            let mut fields: Vec<&str> = match field(data, "changes") {
                None => Vec::new(),
                Some(Value::Object(changes)) => changes.keys().map(String::as_str).collect(),
                Some(_) => return Err(violation("data.changes must be an object")),
            };
            fields.sort_unstable();
            let sensitive = fields.iter().any(|f| SENSITIVE_FIELDS.contains(f));
            let risk = if sensitive {
                RiskLevel::Medium
            } else {
                RiskLevel::Low
            };
            let mut record = user_action(
                user,
                "profile_update",
                Outcome::Success,
                risk,
                derived,
                data,
            )?;
            let mut context = Map::new();
            context.insert("sensitive_data".into(), Value::Bool(sensitive));
            context.insert(
                "fields_changed".into(),
                fields.into_iter().map(Value::from).collect(),
            );
            set_context(&mut record, context);
            vec![record]
        }
        Rule::PrivilegeChange => {
            let user = required_user(derived)?;
            let privileged = field(data, "new_role")
                .and_then(Value::as_str)
                .is_some_and(is_privileged_role);
            let risk = if privileged {
                RiskLevel::High
            } else {
                RiskLevel::Medium
            };
            let mut record = user_action(
                user,
                "privilege_change",
                Outcome::Success,
                risk,
                derived,
                data,
            )?;
            let context: Map<String, Value> = ["new_role", "old_role", "permission", "changed_by"]
                .into_iter()
                .filter_map(|key| Some((key.to_owned(), field(data, key)?.clone())))
                .collect();
            set_context(&mut record, context);
            vec![record]
        }
        Rule::DataAccess(operation) => {
            let user_id = required_user(derived)?;
            let data_type = match field(data, "data_type") {
                None => "user_profile".to_owned(),
                Some(Value::String(text)) if !text.is_empty() => text.clone(),
                Some(_) => return Err(violation("data.data_type must be a non-empty string")),
            };
            let record_count = match field(data, "record_count") {
                None => 1,
                Some(value) => value
                    .as_u64()
                    .ok_or_else(|| violation("data.record_count must be a non-negative integer"))?,
            };
            vec![AuditRecord::DataAccess(DataAccess {
                user_id,
                data_type,
                operation,
                record_count,
                sensitive: flag(data, "sensitive")?,
                purpose: optional_text(data, "purpose")?,
            })]
        }
        Rule::OtherUserEvent => {
            let user = required_user(derived)?;
            vec![user_action(
                user,
                &event.ty,
                Outcome::Success,
                RiskLevel::Low,
                derived,
                data,
            )?]
        }
        Rule::SystemSecurity => {
            let event_type = event.ty.strip_prefix("system.security.").ok_or_else(|| {
                violation("event_type would be empty: the type is system.security itself")
            })?;
            let severity = field(data, "severity")
                .and_then(Value::as_str)
                .and_then(Severity::parse)
                .unwrap_or(Severity::Info);
            vec![AuditRecord::SecurityEvent(SecurityEvent {
                user_id: derived.user_id.as_deref().map(str::to_owned),
                source_ip: derived.ip_address.as_deref().map(str::to_owned),
                blocked: flag(data, "blocked")?,
                ..SecurityEvent::new(event_type, severity, data.clone())
            })]
        }
        Rule::OtherSystemEvent => {
            let user = derived.user_id.as_deref().unwrap_or("system").to_owned();
            let outcome = field(data, "outcome")
                .and_then(Value::as_str)
                .and_then(Outcome::parse)
                .unwrap_or(Outcome::Success);
            let risk = field(data, "risk_level")
                .and_then(Value::as_str)
                .and_then(RiskLevel::parse)
                .unwrap_or(RiskLevel::Low);
            vec![user_action(user, &event.ty, outcome, risk, derived, data)?]
        }
    };
    Ok(records)
}

/// Rule 3: a user action, and on failure a `failed_login` security event after it.
fn login_attempt(
    derived: &Derived<'_>,
    data: &Map<String, Value>,
) -> Result<Vec<AuditRecord>, Rejection> {
    let is_true = |key: &str| field(data, key) == Some(&Value::Bool(true));
    let outcome = if is_true("success") {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let many_failures = field(data, "failure_count")
        .and_then(Value::as_f64)
        .is_some_and(|count| count > 5.0);
    let risk = if is_true("multiple_failures") && many_failures {
        RiskLevel::Critical
    } else if is_true("suspicious_location") {
        RiskLevel::High
    } else if is_true("new_device") {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    };
    // A login attempt names whoever tried, even nobody known: it is audited all the same.
    let user = derived.user_id.as_deref().unwrap_or("unknown").to_owned();
    let mut action = user_action(user.clone(), "login_attempt", outcome, risk, derived, data)?;
    if let Some(geo) = geo(data)? {
        set_context(&mut action, Map::from_iter([("geo".to_owned(), geo)]));
    }
    let mut records = vec![action];
    if outcome == Outcome::Failure {
        let severity = if risk >= RiskLevel::High {
            Severity::Critical
        } else {
            Severity::Warning
        };
        records.push(AuditRecord::SecurityEvent(SecurityEvent {
            user_id: Some(user),
            source_ip: derived.ip_address.as_deref().map(str::to_owned),
            ..SecurityEvent::new("failed_login", severity, data.clone())
        }));
    }
    Ok(records)
}

/// `D.geo` as `{lat, lon, country?}`, coordinates in range: the security monitor computes
/// travel speeds from it, so a malformed one is refused rather than passed on.
fn geo(data: &Map<String, Value>) -> Result<Option<Value>, Rejection> {
    let Some(geo) = field(data, "geo") else {
        return Ok(None);
    };
    let coordinate = |key: &str, limit: f64| {
        geo.get(key)
            .and_then(Value::as_f64)
            .is_some_and(|x| (-limit..=limit).contains(&x))
    };
    let country_ok = geo
        .get("country")
        .is_none_or(|c| c.is_string() || c.is_null());
    if geo.is_object() && coordinate("lat", 90.0) && coordinate("lon", 180.0) && country_ok {
        Ok(Some(geo.clone()))
    } else {
        Err(violation(
            "data.geo must be {lat, lon, country?} with lat in [-90, 90] and lon in [-180, 180]",
        ))
    }
}

fn user_action(
    user_id: String,
    action: &str,
    outcome: Outcome,
    risk: RiskLevel,
    derived: &Derived<'_>,
    data: &Map<String, Value>,
) -> Result<AuditRecord, Rejection> {
    let owned = |value: &Option<std::borrow::Cow<'_, str>>| value.as_deref().map(str::to_owned);
    Ok(AuditRecord::UserAction(UserAction {
        resource: optional_text(data, "resource")?,
        resource_id: optional_text(data, "resource_id")?,
        ip_address: owned(&derived.ip_address),
        user_agent: owned(&derived.user_agent),
        session_id: owned(&derived.session_id),
        risk_level: Some(risk),
        ..UserAction::new(user_id, action, outcome)
    }))
}

fn set_context(record: &mut AuditRecord, context: Map<String, Value>) {
    if let AuditRecord::UserAction(action) = record {
        action.context = Some(context);
    }
}

fn required_user(derived: &Derived<'_>) -> Result<String, Rejection> {
    derived.user_id.as_deref().map(str::to_owned).ok_or_else(|| {
        Rejection::new(
            Reason::MissingUserId,
            "a user event needs a user id: data.user_id, subject user:<id>, extension userid or metadata.user_id",
        )
    })
}

/// An optional string field from `data`: a string or an integer (ids often are); empty or
/// null is absent; anything else breaks the schema.
fn optional_text(data: &Map<String, Value>, key: &str) -> Result<Option<String>, Rejection> {
    match field(data, key) {
        None => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(value) => id_text(value)
            .map(|text| Some(text.into_owned()))
            .ok_or_else(|| violation(format!("data.{key} must be a string"))),
    }
}

/// An optional boolean field from `data`, false when absent.
fn flag(data: &Map<String, Value>, key: &str) -> Result<bool, Rejection> {
    match field(data, key) {
        None => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(_) => Err(violation(format!("data.{key} must be a boolean"))),
    }
}

fn violation(detail: impl Into<String>) -> Rejection {
    Rejection::new(Reason::SchemaViolation, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_picks_the_rule_the_contract_lists_first() {
        let table = rule_table();
        let cases = [
            ("audit", Rule::LoopGuard),
            ("audit.user.action", Rule::LoopGuard),
            ("user.created", Rule::AccountCreated),
            ("user.login.attempt", Rule::LoginAttempt),
            ("user.profile.updated", Rule::ProfileUpdate),
            ("user.role.changed", Rule::PrivilegeChange),
            ("user.permission.granted", Rule::PrivilegeChange),
            ("user.data.read", Rule::DataAccess(Operation::Read)),
            ("user.data.export", Rule::DataAccess(Operation::Read)),
            ("user.data.delete", Rule::DataAccess(Operation::Delete)),
            ("user.data.update", Rule::OtherUserEvent),
            ("user.login", Rule::OtherUserEvent),
            ("user.login.attempt.retry", Rule::OtherUserEvent),
            ("user", Rule::OtherUserEvent),
            ("system.security.intrusion", Rule::SystemSecurity),
            ("system.security", Rule::SystemSecurity),
            ("system.security.a.b", Rule::SystemSecurity),
            ("system.backup.completed", Rule::OtherSystemEvent),
            ("system", Rule::OtherSystemEvent),
        ];
        for (ty, rule) in cases {
            assert_eq!(table.get(ty), Some(&rule), "{ty}");
        }
        for ty in ["order.created", "users.created", "auditx"] {
            assert_eq!(table.get(ty), None, "{ty}");
        }
    }

    #[test]
    fn privileged_roles_are_exact() {
        for role in PRIVILEGED_ROLES {
            assert!(is_privileged_role(role));
        }
        for role in ["editor", "admins", "Admin", ""] {
            assert!(!is_privileged_role(role));
        }
    }
}
