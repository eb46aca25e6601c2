//! `cargo xtask demo`: the pipeline demo from a clean checkout. For now it brings the stack
//! up and shows its status; as the services land, this is where they are built, started
//! against the stack and fed the demo traffic (`auditflow demo`).

use crate::error::Result;
use crate::stack::{self, Layout};

pub fn run(layout: &Layout) -> Result<()> {
    stack::up(layout)?;
    println!();
    stack::status(layout)?;
    println!();
    println!(
        "the services are not wired into the demo yet; the stack stays up (`cargo xtask down` stops it)"
    );
    Ok(())
}
