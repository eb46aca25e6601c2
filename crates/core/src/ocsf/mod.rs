//! OCSF output: auditflow's records as Open Cybersecurity Schema Framework events, for SIEMs
//! and data lakes that ingest OCSF (Amazon Security Lake, Splunk, OpenSearch Security
//! Analytics). The mapping table, and why each record lands in its class, is
//! docs/ocsf.md.
//!
//! One version is emitted: [`VERSION`], the newest release (its compiled schema is checked in
//! under `tests/ocsf/`, and the tests validate every class emitted against it). A record's
//! OCSF event is a pure function of the record and the [`Mapper`]'s settings: `metadata.uid`
//! is the record's deterministic id, every time is the record's own, so a replay reproduces
//! every OCSF event byte for byte.
//!
//! Personal data leaves auditflow this way, beyond the reach of `gdpr delete`. With
//! [`Pseudonyms`], user ids and ip addresses are replaced by keyed pseudonyms (HMAC-SHA256
//! under a secret of the operator's): one user is one pseudonym across events, and only the
//! secret's holder can tell whose.

mod audit;
pub mod classes;
mod head;
mod security;

pub use head::Pseudonyms;

use serde_json::{Map, Value};

use crate::Event;
use crate::audit_record::{AuditRecord, DATA_ACCESS, SECURITY_EVENT, USER_ACTION};
use crate::detect::{ACTION_TYPE, ALERT_TYPE};

/// The OCSF version auditflow emits (`metadata.version`).
pub const VERSION: &str = "1.8.0";

/// Why a record has no OCSF event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotMapped {
    /// A type auditflow does not export (blocklist entries, sampling summaries, the operator
    /// log): counted and skipped, not an error of the input.
    #[error("{0} has no OCSF class")]
    NoClass(String),
    /// A record of an exported type that breaks its schema: a dead letter.
    #[error("{0}")]
    Invalid(String),
}

/// Turns records into OCSF events under fixed settings.
#[derive(Debug, Clone)]
pub struct Mapper {
    /// `service.name` of authentications (OCSF requires a service or a destination, and a
    /// record names neither): the audited application, `[ocsf] service_name`.
    service_name: String,
    /// Replaces user ids and ips when set.
    pseudonyms: Option<Pseudonyms>,
    /// `metadata.product.version`.
    product_version: String,
}

impl Mapper {
    /// A mapper naming `service_name` as the authenticating service, with pseudonyms or not.
    pub fn new(service_name: &str, pseudonyms: Option<Pseudonyms>) -> Self {
        Self {
            service_name: service_name.to_owned(),
            pseudonyms,
            product_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// The Kafka key of a record's OCSF event: its own key (a user id or an ip, so one user's
    /// events stay in order), or that key's pseudonym when pseudonymising.
    pub fn key(&self, key: &str) -> String {
        match &self.pseudonyms {
            Some(p) => p.of("key", key),
            None => key.to_owned(),
        }
    }

    /// The OCSF event of one auditflow record.
    pub fn map(&self, event: &Event) -> Result<Map<String, Value>, NotMapped> {
        let head = head::Head::new(self, event);
        match event.ty.as_str() {
            USER_ACTION | DATA_ACCESS | SECURITY_EVENT => {
                let record = AuditRecord::from_event(event)
                    .map_err(|r| NotMapped::Invalid(r.detail.clone()))?;
                audit::map(&head, &record)
            }
            ALERT_TYPE => security::alert(&head, &event.data),
            ACTION_TYPE => security::action(&head, &event.data),
            other => Err(NotMapped::NoClass(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests;
