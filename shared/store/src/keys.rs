//! Attribute names shared by the three tables and by template.yaml. The local cloud's tests
//! check the template's key schemas against these constants.

/// Partition key of every table.
pub const PK: &str = "pk";
/// Sort key of every table.
pub const SK: &str = "sk";
/// Partition key of each table's first global secondary index.
pub const GSI1_PK: &str = "gsi1pk";
/// Sort key of each table's first global secondary index.
pub const GSI1_SK: &str = "gsi1sk";
/// Name of each table's first global secondary index.
pub const GSI1: &str = "gsi1";
/// TTL attribute of every table: epoch seconds after which DynamoDB deletes the item.
pub const EXPIRES_AT: &str = "expires_at";
/// Write shards per tenant and minute on the Events table: 10,000 events/s from one tenant
/// spread over 16 partition keys stays under DynamoDB's 1,000 writes/s per key.
pub const EVENT_SHARDS: u32 = 16;
