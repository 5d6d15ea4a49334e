//! PostToConnection through API Gateway's management API (the local cloud serves the same
//! API at `WS_ENDPOINT`), behind [`ConnectionPush`].

use super::{ConnectionPush, PushError, StoreError};
use aws_sdk_apigatewaymanagement::primitives::Blob;

/// The management API of the WebSocket API at `WS_ENDPOINT`.
#[derive(Debug)]
pub struct ManagementApi {
    client: Option<aws_sdk_apigatewaymanagement::Client>,
}

impl ManagementApi {
    /// Without an endpoint every post fails (and says why).
    pub fn new(aws: &aws_config::SdkConfig, endpoint: Option<&str>) -> Self {
        let client = endpoint.map(|url| {
            let conf = aws_sdk_apigatewaymanagement::config::Builder::from(aws)
                .endpoint_url(url)
                .build();
            aws_sdk_apigatewaymanagement::Client::from_conf(conf)
        });
        Self { client }
    }
}

impl ConnectionPush for ManagementApi {
    async fn post(&self, connection: &str, frame: &str) -> Result<(), PushError> {
        let Some(client) = &self.client else {
            return Err(PushError::Failed(StoreError::Unavailable(
                "WS_ENDPOINT is not set".into(),
            )));
        };
        match client
            .post_to_connection()
            .connection_id(connection)
            .data(Blob::new(frame.as_bytes()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                Err(PushError::Gone)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_limit_exceeded_exception())
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 429) =>
            {
                Err(PushError::Throttled)
            }
            Err(e) => Err(PushError::Failed(StoreError::Unavailable(Box::new(e)))),
        }
    }
}
