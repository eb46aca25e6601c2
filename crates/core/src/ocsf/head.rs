//! What every OCSF event carries (class, activity, type, severity, time, metadata), and the
//! people and places in it: users and endpoints, as they are or as pseudonyms.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::classes::{Class, Severity, Status};
use super::{Mapper, NotMapped, VERSION};
use crate::Event;

/// The key user ids and ips are pseudonymised under, and how: HMAC-SHA256 of what the value
/// is (`user`, `ip`) and the value, its first 16 bytes in hex. Deterministic, so one user is
/// one pseudonym in every event, and keyed, so the pseudonyms cannot be reversed by trying
/// every plausible id or address without the key.
#[derive(Clone)]
pub struct Pseudonyms(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(<key>)")
    }
}

impl Pseudonyms {
    /// Pseudonyms under a 32-byte key.
    pub fn new(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// The pseudonym of `value`, a `what` (`user`, `ip`).
    pub fn of(&self, what: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes a key of any length");
        mac.update(what.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        crate::hex::encode(&digest[..16])
    }
}

/// One record's mapping in progress: the mapper's settings and the record's CloudEvent.
pub(super) struct Head<'a> {
    mapper: &'a Mapper,
    event: &'a Event,
}

impl<'a> Head<'a> {
    pub(super) fn new(mapper: &'a Mapper, event: &'a Event) -> Self {
        Self { mapper, event }
    }

    /// The authenticating service's name (`[ocsf] service_name`).
    pub(super) fn service_name(&self) -> &str {
        &self.mapper.service_name
    }

    /// The common attributes of an event of `class`: class, category, activity, type,
    /// severity, time (the record's) and metadata (`uid` the record's id).
    pub(super) fn event(
        &self,
        class: Class,
        (activity_id, activity_name): (u8, &str),
        (severity_id, severity): Severity,
    ) -> Result<Map<String, Value>, NotMapped> {
        let time = self
            .event
            .time
            .ok_or_else(|| NotMapped::Invalid(format!("{} without a time", self.event.ty)))?;
        let type_uid = u64::from(class.uid) * 100 + u64::from(activity_id);
        let mut metadata = json!({
            "version": VERSION,
            "uid": self.event.id,
            "product": {
                "name": "auditflow",
                "vendor_name": "auditflow",
                "version": self.mapper.product_version,
            },
            "log_name": self.event.ty,
        });
        if let Some(correlation) = self.extension("correlationid") {
            metadata["correlation_uid"] = correlation.into();
        }
        if let Some(original) = self.extension("originaltype") {
            metadata["event_code"] = original.into();
        }
        let mut out = Map::new();
        out.insert("class_uid".into(), class.uid.into());
        out.insert("class_name".into(), class.name.into());
        out.insert("category_uid".into(), class.category_uid.into());
        out.insert("category_name".into(), class.category_name.into());
        out.insert("activity_id".into(), activity_id.into());
        out.insert("activity_name".into(), activity_name.into());
        out.insert("type_uid".into(), type_uid.into());
        out.insert(
            "type_name".into(),
            format!("{}: {activity_name}", class.name).into(),
        );
        out.insert("severity_id".into(), severity_id.into());
        out.insert("severity".into(), severity.into());
        out.insert("time".into(), ms(time).into());
        out.insert("metadata".into(), metadata);
        let mut unmapped = Map::new();
        for name in ["retention", "samplerate", "causationid"] {
            if let Some(value) = self.event.extensions.get(name) {
                unmapped.insert(name.into(), value.clone());
            }
        }
        if !unmapped.is_empty() {
            out.insert("unmapped".into(), Value::Object(unmapped));
        }
        Ok(out)
    }

    /// The common attributes of a new Detection Finding (activity Create, status New), the
    /// class of security events and alerts alike.
    pub(super) fn finding(&self, severity: Severity) -> Result<Map<String, Value>, NotMapped> {
        let mut out = self.event(
            super::classes::DETECTION_FINDING,
            super::classes::finding::CREATE,
            severity,
        )?;
        set_status(&mut out, super::classes::NEW, None);
        Ok(out)
    }

    /// The input type the record came from (`originaltype`), else its own type.
    pub(super) fn original_type(&self) -> &str {
        self.extension("originaltype").unwrap_or(&self.event.ty)
    }

    fn extension(&self, name: &str) -> Option<&str> {
        self.event.extensions.get(name).and_then(Value::as_str)
    }

    /// A `user` object: `uid` the user id, or its pseudonym.
    pub(super) fn user(&self, user_id: &str) -> Value {
        let uid = match &self.mapper.pseudonyms {
            Some(p) => p.of("user", user_id),
            None => user_id.to_owned(),
        };
        json!({ "uid": uid })
    }

    /// A `network_endpoint` for an ip: `ip` when it is an address, `uid` its pseudonym when
    /// pseudonymising; `None` for text that is no address (kept in `unmapped` by the caller).
    pub(super) fn endpoint(&self, ip: &str) -> Option<Value> {
        let address: IpAddr = ip.parse().ok()?;
        Some(match &self.mapper.pseudonyms {
            Some(p) => json!({ "uid": p.of("ip", &address.to_string()) }),
            None => json!({ "ip": address.to_string() }),
        })
    }

    /// `ip` as [`Head::endpoint`] names it, or as an ip pseudonym of the text itself (a
    /// blocklist's IPv6 /64 is no address).
    pub(super) fn source(&self, ip: &str) -> Value {
        if let Some(endpoint) = self.endpoint(ip) {
            return endpoint;
        }
        match &self.mapper.pseudonyms {
            Some(p) => json!({ "uid": p.of("ip", ip) }),
            None => json!({ "name": ip }),
        }
    }

    /// Whether user ids and ips are pseudonymised.
    pub(super) fn pseudonymised(&self) -> bool {
        self.mapper.pseudonyms.is_some()
    }
}

/// Sets `status_id` and `status`, with `status_detail` for statuses that need one.
pub(super) fn set_status(out: &mut Map<String, Value>, (id, name): Status, detail: Option<&str>) {
    out.insert("status_id".into(), id.into());
    out.insert("status".into(), name.into());
    if let Some(detail) = detail {
        out.insert("status_detail".into(), detail.into());
    }
}

/// Milliseconds since the epoch: OCSF's `timestamp_t`.
pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Declares that `out` uses the attributes of profile `name` (`metadata.profiles`): the
/// `host` profile's `actor` and `device` exist in the classes used here only through it.
pub(super) fn declare_profile(out: &mut Map<String, Value>, name: &str) {
    if let Some(Value::Object(metadata)) = out.get_mut("metadata") {
        let profiles = metadata
            .entry("profiles")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = profiles
            && !list.iter().any(|p| p == name)
        {
            list.push(name.into());
        }
    }
}

/// Keeps `value` under `unmapped.<name>` (what no OCSF attribute of the class holds).
pub(super) fn unmapped(out: &mut Map<String, Value>, name: &str, value: Value) {
    let entry = out
        .entry("unmapped")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(map) = entry {
        map.insert(name.into(), value);
    }
}
