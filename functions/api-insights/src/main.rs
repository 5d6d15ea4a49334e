use lambda_http::{Error, run, service_fn};
use pulse_http::HttpHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pulse_http::telemetry::init();
    let config = pulse_core::Config::from_env()?;
    let aws = pulse_store::aws::load().await;
    let insights = api_insights::wire(&config, &aws);
    run(service_fn(|req| insights.handle(req))).await
}
