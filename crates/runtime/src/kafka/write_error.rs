//! What a store service's failed batch write says: [`WriteError`], and the [`WriteFault`]
//! that tells the at-least-once loop what to do next (retry, dead-letter the record, or stop).
//! The store services build them; the loop, its metrics and the crate's error read them.

/// What a failed write says about what to do next (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// Slow, unreachable or restarting: retry the same records later.
    Transient,
    /// The store refuses a record of the batch (or its subject's key) and would take others:
    /// find it and dead-letter it.
    Record,
    /// Nothing can be written until an operator acts: stop.
    Deployment,
}

impl WriteFault {
    /// The fault of an error a store classifies by two questions: is it worth retrying, and
    /// if not, is it about the record rather than the whole deployment? When in doubt a store
    /// answers "the deployment": stopping loses nothing, dead-lettering a stream does harm.
    pub fn of(transient: bool, about_the_record: bool) -> Self {
        match (transient, about_the_record) {
            (true, _) => WriteFault::Transient,
            (false, true) => WriteFault::Record,
            (false, false) => WriteFault::Deployment,
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteFault::Transient => "transient",
            WriteFault::Record => "record",
            WriteFault::Deployment => "deployment",
        }
    }
}

/// A failed batch write, as the service's store reports it, with its [`WriteFault`]. Its
/// message must carry no personal data (it is logged, and becomes a dead letter's detail).
#[derive(Debug)]
pub struct WriteError {
    fault: WriteFault,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl WriteError {
    /// A failed write with what it means.
    pub fn new(
        fault: WriteFault,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            fault,
            source: source.into(),
        }
    }

    /// A failed write worth retrying.
    pub fn transient(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(WriteFault::Transient, source)
    }

    /// What it means for the loop.
    pub fn fault(&self) -> WriteFault {
        self.fault
    }
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}
