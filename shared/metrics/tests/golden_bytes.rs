//! Stored buckets must read back after any upgrade: a bucket's `state` (postcard of the
//! bucket, its DDSketch and HyperLogLog included) is pinned here byte for byte. If a crate
//! upgrade changes the encoding, these tests fail before a deployment could write buckets
//! that older rollups cannot merge with, or read rollups it can no longer decode.
//!
//! To pin a deliberate format change, write a migration first; then regenerate with
//! `PULSE_WRITE_GOLDEN=1 cargo test -p pulse-metrics --test golden_bytes`.

use pulse_metrics::aggregate::Bucket;
use std::path::PathBuf;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(name)
}

/// A bucket with every part in use: 100 values spread over three orders of magnitude, 40
/// distinct visitors, merged from two halves (as rollups do), and frozen (as stored).
fn known_bucket() -> Bucket {
    let mut first = Bucket::default();
    let mut second = Bucket::default();
    for i in 0..100u32 {
        let value = f64::from(i * i) / 7.0 + 0.5;
        let visitor = format!("visitor-{}", i % 40);
        if i % 2 == 0 {
            first.add(value, Some(&visitor));
        } else {
            second.add(value, Some(&visitor));
        }
    }
    first.merge(&second);
    first.freeze();
    first
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn a_bucket_encodes_to_the_pinned_bytes() {
    // Given the known bucket
    let bytes = postcard::to_allocvec(&known_bucket()).expect("encoded");
    let path = golden("bucket-v1.hex");
    if std::env::var_os("PULSE_WRITE_GOLDEN").is_some() {
        std::fs::write(&path, hex(&bytes) + "\n").expect("written");
    }
    // When it is encoded as a stored bucket's state
    let pinned = unhex(&std::fs::read_to_string(&path).expect("golden file"));
    // Then the bytes are the pinned ones, but for one word: cardinality-estimator 1.x writes
    // its tagged-pointer field (`data`: the heap address, the length and the representation
    // in one usize) before the registers, and decoding reads only its tag and the registers
    // that follow. That word is the one run of bytes allowed to differ.
    assert_eq!(
        bytes.len(),
        pinned.len(),
        "the stored bucket format changed: rollups written before would not read back"
    );
    let differing: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] != pinned[i])
        .collect();
    if let (Some(first), Some(last)) = (differing.first(), differing.last()) {
        assert!(
            last - first < 10,
            "the stored bucket format changed at bytes {first}..={last}: rollups written before would not read back"
        );
    }
}

#[test]
fn pinned_bytes_decode_to_the_same_figures() {
    // Given the bytes a bucket was stored as
    let pinned = unhex(&std::fs::read_to_string(golden("bucket-v1.hex")).expect("golden"));
    // When they are decoded by this build
    let stored: Bucket = postcard::from_bytes(&pinned).expect("decodes");
    let expected = known_bucket();
    // Then every figure, percentile and the unique count are what was written
    assert_eq!(stored.count, 100);
    assert_eq!(stored.count, expected.count);
    assert_eq!(stored.sum.to_bits(), expected.sum.to_bits());
    assert_eq!(stored.min.to_bits(), expected.min.to_bits());
    assert_eq!(stored.max.to_bits(), expected.max.to_bits());
    assert_eq!(stored.quantiles, expected.quantiles);
    for q in [0.5, 0.9, 0.99] {
        assert_eq!(stored.quantile(q), expected.quantile(q), "q{q}");
    }
    assert_eq!(stored.unique_visitors(), expected.unique_visitors());
    // And it still merges with a bucket made today (a rollup across an upgrade)
    let mut merged = stored;
    merged.merge(&expected);
    assert_eq!(merged.count, 200);
    assert_eq!(merged.unique_visitors(), expected.unique_visitors());
}
