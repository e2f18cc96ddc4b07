//! Placeholder until the import benchmark lands.
fn main() {}
