use lambda_http::{Error, run, service_fn};
use pulse_shared::http::HttpHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pulse_shared::telemetry::init();
    let config = pulse_shared::Config::from_env()?;
    let aws = pulse_shared::aws::load().await;
    let definitions = api_metric_definitions::wire(&config, &aws);
    run(service_fn(|req| definitions.handle(req))).await
}
