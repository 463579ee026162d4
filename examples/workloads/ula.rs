//! The `ula` workload (filled in below).
use crate::Args;

pub fn run(_args: &Args) -> Result<(), String> {
    Err("ula workload not yet written".into())
}
