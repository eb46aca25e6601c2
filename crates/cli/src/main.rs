//! `auditflow`: runs any service and is the operator's command-line tool.

fn main() {
    println!("auditflow {}", env!("CARGO_PKG_VERSION"));
}
