//! Shared support for the integration tests: where the local stack is, and fresh names.
