//! The Events stream, as Lambda delivers it: decodes only what the aggregator needs from
//! each record (event name, sequence number, and the stored event in `NewImage.data`), and
//! the partial-batch-failure answer.

use pulse_ingest::events::Event;
use serde::{Deserialize, Serialize};

/// A batch of DynamoDB stream records.
#[derive(Debug, Deserialize)]
pub struct StreamBatch {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    pub dynamodb: Change,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: String,
    #[serde(rename = "NewImage", default)]
    new_image: Option<Image>,
}

#[derive(Debug, Deserialize)]
struct Image {
    data: Option<StringAttribute>,
    pk: Option<StringAttribute>,
    imported: Option<BoolAttribute>,
}

#[derive(Debug, Deserialize)]
struct BoolAttribute {
    #[serde(rename = "BOOL")]
    value: bool,
}

#[derive(Debug, Deserialize)]
struct StringAttribute {
    #[serde(rename = "S")]
    s: String,
}

impl StreamRecord {
    /// Whether the record is a new item (retries overwrite in place: MODIFY, not counted).
    pub fn is_insert(&self) -> bool {
        self.event_name == "INSERT"
    }

    /// Whether the item was written by a history import, which merged its buckets itself: the
    /// stream neither counts nor marks it (a live event in its minute still marks it, and
    /// that seal reads it with the rest).
    pub fn is_imported(&self) -> bool {
        self.dynamodb
            .new_image
            .as_ref()
            .and_then(|i| i.imported.as_ref())
            .is_some_and(|b| b.value)
    }

    /// Where the record sits in the stream: its item's Events partition and its sequence
    /// number ([`pulse_core::watermark`]). A record without a partition key is its own partition.
    pub fn position(&self) -> pulse_core::watermark::Position {
        let partition = self
            .dynamodb
            .new_image
            .as_ref()
            .and_then(|i| i.pk.as_ref())
            .map_or_else(String::new, |pk| pk.s.clone());
        pulse_core::watermark::Position {
            partition,
            sequence: pulse_core::watermark::Sequence::new(self.dynamodb.sequence_number.clone()),
        }
    }

    /// The event the record's new image holds.
    pub fn event(&self) -> Result<Event, String> {
        let data = self
            .dynamodb
            .new_image
            .as_ref()
            .and_then(|i| i.data.as_ref())
            .ok_or("the record's new image has no data attribute")?;
        serde_json::from_str(&data.s).map_err(|e| format!("the stored event does not parse: {e}"))
    }
}

/// Lambda's partial batch response: the records to retry.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    pub fn failed(sequence_numbers: impl IntoIterator<Item = String>) -> Self {
        let mut ids: Vec<String> = sequence_numbers.into_iter().collect();
        ids.sort();
        ids.dedup();
        Self {
            batch_item_failures: ids
                .into_iter()
                .map(|item_identifier| ItemFailure { item_identifier })
                .collect(),
        }
    }
}
