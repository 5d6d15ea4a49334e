//! Publishes Pulse's static files to the dashboard bucket, which CloudFront serves: today the
//! tracking script (`tracker/dist/pulse.js` → `pulse.js`), built by `make tracker`.
//!
//! `pulse-local publish --bucket <DashboardBucketName>` runs it against AWS with the default
//! credential chain after `sam deploy`; tests run it against the emulator.

use aws_sdk_s3::primitives::ByteStream;
use std::path::Path;
use thiserror::Error;

/// A file to publish: where it is built, its key in the bucket, and how it is served.
struct Asset {
    source: &'static str,
    key: &'static str,
    content_type: &'static str,
    /// The script's URL never changes, so browsers and CloudFront keep it only briefly.
    cache_control: &'static str,
}

const ASSETS: &[Asset] = &[Asset {
    source: "tracker/dist/pulse.js",
    key: "pulse.js",
    content_type: "application/javascript; charset=utf-8",
    cache_control: "public, max-age=300",
}];

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("{path} is missing: build it first (make tracker)")]
    NotBuilt {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("uploading {key} to {bucket} failed")]
    Upload {
        key: String,
        bucket: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Uploads every asset under `root` to `bucket`; returns the keys written.
pub async fn publish(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    root: &Path,
) -> Result<Vec<String>, PublishError> {
    let mut written = Vec::new();
    for asset in ASSETS {
        let path = root.join(asset.source);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|source| PublishError::NotBuilt {
                path: path.display().to_string(),
                source,
            })?;
        s3.put_object()
            .bucket(bucket)
            .key(asset.key)
            .content_type(asset.content_type)
            .cache_control(asset.cache_control)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| PublishError::Upload {
                key: asset.key.to_owned(),
                bucket: bucket.to_owned(),
                source: Box::new(e),
            })?;
        written.push(asset.key.to_owned());
    }
    Ok(written)
}
