use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use pulse_shared::store::stream::StreamBatch;

#[tokio::main]
async fn main() -> Result<(), Error> {
    pulse_shared::telemetry::init();
    let config = pulse_shared::Config::from_env()?;
    let aws = pulse_shared::aws::load().await;
    let aggregator = stream_aggregator::wire(&config, &aws);
    run(service_fn(|event: LambdaEvent<StreamBatch>| async {
        Ok::<_, Error>(aggregator.handle(event.payload).await)
    }))
    .await
}
