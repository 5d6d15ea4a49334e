use lambda_http::{Error, run, service_fn};
use pulse_shared::http::HttpHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pulse_shared::telemetry::init();
    let config = pulse_shared::Config::from_env()?;
    let me = api_me::wire(&config);
    run(service_fn(|req| me.handle(req))).await
}
