//! Benchmark of `DynamoMessages` on DynamoDB Local (placeholder until written).

fn main() {}
