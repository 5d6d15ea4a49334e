//! What the bench binaries (`src/bin/`) share.

/// The `q` quantile (0..=1) of `sorted` by the nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

/// The numeric command-line arguments, in order (the program's path is never a number).
pub fn numeric_args() -> Vec<usize> {
    std::env::args().filter_map(|a| a.parse().ok()).collect()
}

/// Counts every DynamoDB request attempt of the client it is installed in.
#[derive(Debug, Default)]
pub struct Counter(pub std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl aws_sdk_dynamodb::config::Intercept for Counter {
    fn name(&self) -> &'static str {
        "request-counter"
    }
    fn read_before_attempt(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// A DynamoDB client of `sdk` whose requests `count` counts.
pub fn counted_client(
    sdk: &aws_config::SdkConfig,
    count: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .interceptor(Counter(count.clone()))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// An HTTP API (payload 2.0) `GET path?query` of an admin of `tenant`, as API Gateway hands
/// it to a function after its JWT authorizer.
pub fn admin_get(path: &str, query: &[(&str, &str)], tenant: &str) -> lambda_http::Request {
    let params: serde_json::Map<String, serde_json::Value> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    let raw: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let event = serde_json::json!({
        "version": "2.0", "routeKey": format!("GET {path}"), "rawPath": path, "rawQueryString": raw.join("&"),
        "headers": {}, "queryStringParameters": params,
        "requestContext": {
            "accountId": "1", "apiId": "a", "domainName": "d", "requestId": "r", "routeKey": format!("GET {path}"),
            "stage": "$default", "time": "22/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "bench"},
            "authorizer": {"jwt": {"claims": {"sub": "u", "custom:tenant": tenant, "cognito:groups": "[admin]"}, "scopes": null}}
        },
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("HTTP API event")
}
