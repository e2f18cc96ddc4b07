//! Placeholder until the Redis benchmark lands.
fn main() {}
