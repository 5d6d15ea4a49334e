use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    pulse_http::telemetry::init();
    let config = pulse_core::Config::from_env()?;
    let aws = pulse_store::aws::load().await;
    let job = job_detect::wire(&config, &aws);
    run(service_fn(|e: LambdaEvent<job_detect::QueueBatch>| async {
        Ok::<_, Error>(job.handle(e.payload).await)
    }))
    .await
}
