//! The `berth` binary (to be written).
fn main() {}
