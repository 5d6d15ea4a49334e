//! Publishes Pulse's static files to the dashboard bucket, which CloudFront serves: the
//! tracking script (`tracker/dist/pulse.js` → `pulse.js`, by `make tracker`), the dashboard
//! (`dashboard/dist/**`, by `make dashboard`) and the dashboard's `config.json`, written from
//! the stack's outputs so one build runs in any deployment.
//!
//! After `sam deploy`: `sam list stack-outputs --stack-name pulse --output json > outputs.json`
//! then `pulse-local publish --outputs outputs.json` (default AWS credentials). Tests run it
//! against the emulator.

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The tracking script's URL never changes, so browsers and CloudFront keep it only briefly.
const SCRIPT_CACHE: &str = "public, max-age=300";

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("{path} is missing: build it first (make tracker dashboard)")]
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
    #[error("the stack outputs are not usable: {0}")]
    Outputs(String),
}

/// What the dashboard's `config.json` needs from a deployed stack, read from
/// `sam list stack-outputs --output json` (a list of `OutputKey` / `OutputValue`).
#[derive(Debug, Clone, PartialEq)]
pub struct StackOutputs {
    pub bucket: String,
    pub api_url: String,
    pub ws_url: String,
    /// The Cognito hosted UI (`AuthDomain`), when the stack made the user pool.
    pub auth_domain: Option<String>,
    pub client_id: Option<String>,
}

impl StackOutputs {
    pub fn from_sam_json(text: &str) -> Result<Self, PublishError> {
        let list: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| PublishError::Outputs(format!("not sam's JSON list: {e}")))?;
        let get = |key: &str| {
            list.iter()
                .find(|o| o["OutputKey"] == key)
                .and_then(|o| o["OutputValue"].as_str())
                .map(str::to_owned)
        };
        let need =
            |key: &str| get(key).ok_or_else(|| PublishError::Outputs(format!("{key} is missing")));
        Ok(Self {
            bucket: need("DashboardBucketName")?,
            api_url: need("ApiUrl")?,
            ws_url: need("WebSocketUrl")?,
            auth_domain: get("AuthDomain"),
            client_id: get("UserPoolClientId"),
        })
    }

    /// The dashboard's `config.json`: the API, the WebSocket API and the hosted UI.
    pub fn dashboard_config(&self) -> Result<Value, PublishError> {
        let (Some(domain), Some(client)) = (&self.auth_domain, &self.client_id) else {
            return Err(PublishError::Outputs(
                "AuthDomain and UserPoolClientId are missing: the stack uses an external issuer; pass --auth-domain and --client-id".into(),
            ));
        };
        Ok(json!({
            "apiUrl": self.api_url,
            "wsUrl": self.ws_url,
            "auth": {"mode": "oidc", "domain": domain, "clientId": client},
        }))
    }
}

/// A file to upload: its key, content type, cache policy and bytes' source.
struct Upload {
    key: String,
    content_type: &'static str,
    cache_control: &'static str,
    body: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>, PublishError> {
    std::fs::read(path).map_err(|source| PublishError::NotBuilt {
        path: path.display().to_string(),
        source,
    })
}

/// Every file below `dir`, depth first, as paths relative to it.
fn files(dir: &Path, prefix: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let rel = prefix.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            files(&entry.path(), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// What [`publish`] uploads from `root`: the script, the dashboard's files and `config`.
fn uploads(root: &Path, config: Option<&Value>) -> Result<Vec<Upload>, PublishError> {
    let mut out = vec![Upload {
        key: "pulse.js".into(),
        content_type: "application/javascript; charset=utf-8",
        cache_control: SCRIPT_CACHE,
        body: read(&root.join("tracker/dist/pulse.js"))?,
    }];
    let dist = root.join("dashboard/dist");
    let mut names = Vec::new();
    files(&dist, Path::new(""), &mut names).map_err(|source| PublishError::NotBuilt {
        path: dist.display().to_string(),
        source,
    })?;
    for rel in names {
        let key = rel.to_string_lossy().replace('\\', "/");
        out.push(Upload {
            content_type: crate::dashboard::content_type(&rel),
            // Hashed asset names never change content; pages must be revalidated.
            cache_control: if key.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            },
            body: read(&dist.join(&rel))?,
            key,
        });
    }
    if let Some(config) = config {
        out.push(Upload {
            key: "config.json".into(),
            content_type: "application/json",
            cache_control: "no-cache",
            body: serde_json::to_vec_pretty(config).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Uploads the built files under `root` (and `config`, the dashboard's `config.json`) to
/// `bucket`; returns the keys written.
pub async fn publish(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    root: &Path,
    config: Option<&Value>,
) -> Result<Vec<String>, PublishError> {
    let mut written = Vec::new();
    for upload in uploads(root, config)? {
        s3.put_object()
            .bucket(bucket)
            .key(&upload.key)
            .content_type(upload.content_type)
            .cache_control(upload.cache_control)
            .body(ByteStream::from(upload.body))
            .send()
            .await
            .map_err(|e| PublishError::Upload {
                key: upload.key.clone(),
                bucket: bucket.to_owned(),
                source: Box::new(e),
            })?;
        written.push(upload.key);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_config_comes_from_sams_stack_outputs() {
        // Given the outputs `sam list stack-outputs --output json` prints
        let text = r#"[
          {"OutputKey": "ApiUrl", "OutputValue": "https://abc.execute-api.eu-west-1.amazonaws.com", "Description": "x"},
          {"OutputKey": "WebSocketUrl", "OutputValue": "wss://def.execute-api.eu-west-1.amazonaws.com/prod"},
          {"OutputKey": "DashboardBucketName", "OutputValue": "pulse-dashboard-1"},
          {"OutputKey": "AuthDomain", "OutputValue": "https://pulse-1.auth.eu-west-1.amazoncognito.com"},
          {"OutputKey": "UserPoolClientId", "OutputValue": "client123"}
        ]"#;
        // When they are read
        let outputs = StackOutputs::from_sam_json(text).expect("outputs");
        // Then the bucket and the dashboard's settings are found
        assert_eq!(outputs.bucket, "pulse-dashboard-1");
        assert_eq!(
            outputs.dashboard_config().expect("config"),
            json!({"apiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com",
                   "wsUrl": "wss://def.execute-api.eu-west-1.amazonaws.com/prod",
                   "auth": {"mode": "oidc", "domain": "https://pulse-1.auth.eu-west-1.amazoncognito.com", "clientId": "client123"}})
        );
        // And a stack without its user pool says what to pass instead
        let external = StackOutputs {
            auth_domain: None,
            ..outputs
        };
        assert!(matches!(
            external.dashboard_config(),
            Err(PublishError::Outputs(_))
        ));
        assert!(StackOutputs::from_sam_json("[]").is_err());
    }
}
