use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    pulse_shared::telemetry::init();
    let config = pulse_shared::Config::from_env()?;
    let aws = pulse_shared::aws::load().await;
    let live = ws::wire(&config, &aws);
    run(service_fn(|e: LambdaEvent<ws::WsEvent>| {
        live.handle(e.payload)
    }))
    .await
}
