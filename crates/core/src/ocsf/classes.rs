//! The OCSF 1.8.0 vocabulary auditflow emits: classes with their category, the activities,
//! statuses and severities used, each with the caption the schema gives it (OCSF's `*_name`
//! siblings must equal the caption of their `*_id`).

/// An OCSF class as emitted: its uid, name and category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// `class_uid`.
    pub uid: u32,
    /// `class_name`.
    pub name: &'static str,
    /// `category_uid`.
    pub category_uid: u32,
    /// `category_name`.
    pub category_name: &'static str,
}

/// Detection Finding (2004), Findings.
pub const DETECTION_FINDING: Class = Class {
    uid: 2004,
    name: "Detection Finding",
    category_uid: 2,
    category_name: "Findings",
};
/// Account Change (3001), Identity & Access Management.
pub const ACCOUNT_CHANGE: Class = Class {
    uid: 3001,
    name: "Account Change",
    category_uid: 3,
    category_name: "Identity & Access Management",
};
/// Authentication (3002), Identity & Access Management.
pub const AUTHENTICATION: Class = Class {
    uid: 3002,
    name: "Authentication",
    category_uid: 3,
    category_name: "Identity & Access Management",
};
/// User Access Management (3005), Identity & Access Management.
pub const USER_ACCESS: Class = Class {
    uid: 3005,
    name: "User Access Management",
    category_uid: 3,
    category_name: "Identity & Access Management",
};
/// Base Event (0), uncategorized: a user action no specific class describes.
pub const BASE_EVENT: Class = Class {
    uid: 0,
    name: "Base Event",
    category_uid: 0,
    category_name: "Uncategorized",
};
/// Datastore Activity (6005), Application Activity.
pub const DATASTORE_ACTIVITY: Class = Class {
    uid: 6005,
    name: "Datastore Activity",
    category_uid: 6,
    category_name: "Application Activity",
};
/// Remediation Activity (7001), Remediation.
pub const REMEDIATION: Class = Class {
    uid: 7001,
    name: "Remediation Activity",
    category_uid: 7,
    category_name: "Remediation",
};
/// Network Remediation Activity (7004), Remediation.
pub const NETWORK_REMEDIATION: Class = Class {
    uid: 7004,
    name: "Network Remediation Activity",
    category_uid: 7,
    category_name: "Remediation",
};

/// Every class auditflow emits (what the tests validate against the schema, one by one).
pub const ALL: [Class; 8] = [
    DETECTION_FINDING,
    ACCOUNT_CHANGE,
    AUTHENTICATION,
    USER_ACCESS,
    BASE_EVENT,
    DATASTORE_ACTIVITY,
    REMEDIATION,
    NETWORK_REMEDIATION,
];

/// An `activity_id` with its caption.
pub type Activity = (u8, &'static str);

/// The "Other" activity of every class: `activity_name` then says what it was.
pub const OTHER: u8 = 99;

/// Account Change activities.
pub mod account {
    use super::Activity;
    /// Create.
    pub const CREATE: Activity = (1, "Create");
    /// Enable.
    pub const ENABLE: Activity = (2, "Enable");
    /// Password Change.
    pub const PASSWORD_CHANGE: Activity = (3, "Password Change");
    /// Password Reset.
    pub const PASSWORD_RESET: Activity = (4, "Password Reset");
    /// Disable.
    pub const DISABLE: Activity = (5, "Disable");
    /// Delete.
    pub const DELETE: Activity = (6, "Delete");
    /// Lock.
    pub const LOCK: Activity = (9, "Lock");
    /// MFA Factor Enable.
    pub const MFA_ENABLE: Activity = (10, "MFA Factor Enable");
    /// MFA Factor Disable.
    pub const MFA_DISABLE: Activity = (11, "MFA Factor Disable");
    /// Unlock.
    pub const UNLOCK: Activity = (12, "Unlock");
}

/// Authentication activities.
pub mod authentication {
    use super::Activity;
    /// Logon.
    pub const LOGON: Activity = (1, "Logon");
    /// Logoff.
    pub const LOGOFF: Activity = (2, "Logoff");
}

/// User Access Management activities.
pub mod user_access {
    use super::Activity;
    /// Assign Privileges.
    pub const ASSIGN: Activity = (1, "Assign Privileges");
    /// Revoke Privileges.
    pub const REVOKE: Activity = (2, "Revoke Privileges");
}

/// Datastore Activity activities.
pub mod datastore {
    use super::Activity;
    /// Read.
    pub const READ: Activity = (1, "Read");
    /// Update.
    pub const UPDATE: Activity = (2, "Update");
    /// Create.
    pub const CREATE: Activity = (6, "Create");
    /// Delete.
    pub const DELETE: Activity = (7, "Delete");
}

/// Detection Finding activities.
pub mod finding {
    use super::Activity;
    /// Create.
    pub const CREATE: Activity = (1, "Create");
}

/// Remediation activities (every remediation class has the same).
pub mod remediation {
    use super::Activity;
    /// Isolate.
    pub const ISOLATE: Activity = (1, "Isolate");
    /// Evict.
    pub const EVICT: Activity = (2, "Evict");
}

/// A `status_id` with its caption.
pub type Status = (u8, &'static str);

/// Success (every class emitted here).
pub const SUCCESS: Status = (1, "Success");
/// Failure (every class emitted here).
pub const FAILURE: Status = (2, "Failure");
/// Other: `status_detail` says what.
pub const STATUS_OTHER: Status = (99, "Other");
/// Unknown: a remediation auditflow asks for and others carry out.
pub const STATUS_UNKNOWN: Status = (0, "Unknown");
/// A new finding (Detection Finding's status).
pub const NEW: Status = (1, "New");

/// A `severity_id` with its caption.
pub type Severity = (u8, &'static str);

/// Informational.
pub const INFORMATIONAL: Severity = (1, "Informational");
/// Low.
pub const LOW: Severity = (2, "Low");
/// Medium.
pub const MEDIUM: Severity = (3, "Medium");
/// High.
pub const HIGH: Severity = (4, "High");
/// Critical.
pub const CRITICAL: Severity = (5, "Critical");
