use lambda_http::{Error, run, service_fn};
use pulse_http::HttpHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pulse_http::telemetry::init();
    let config = pulse_core::Config::from_env()?;
    let me = api_me::wire(&config);
    run(service_fn(|req| me.handle(req))).await
}
