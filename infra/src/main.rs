//! `pulse-local`: runs Pulse's local cloud, or mints a dev token for it.

use clap::{Parser, Subcommand};
use pulse_local::{LocalCloud, Options, default_root, template};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Pulse's local cloud: template.yaml on localhost, no AWS account needed")]
struct Cli {
    /// Clear the state folder (signing key, logs) before starting.
    #[arg(long)]
    reset: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a dev JWT signed by the local issuer.
    Token {
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// admin, analyst or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 12 * 3600)]
        ttl: u64,
    },
    /// Upload the static files (the tracking script, the dashboard and its config.json) to a
    /// deployed stack's dashboard bucket, with the default AWS credentials. `--outputs` is the
    /// file `sam list stack-outputs --stack-name <stack> --output json` writes.
    Publish {
        #[arg(long)]
        outputs: PathBuf,
        /// The hosted UI, when the stack uses an external issuer instead of its user pool.
        #[arg(long)]
        auth_domain: Option<String>,
        /// The OAuth client id at that issuer.
        #[arg(long)]
        client_id: Option<String>,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let opts = Options::from_env(default_root());
    if cli.reset && opts.state_dir.exists() {
        std::fs::remove_dir_all(&opts.state_dir)?;
    }
    match cli.command {
        Some(Command::Token { tenant, role, ttl }) => token(&opts, &tenant, &role, ttl),
        Some(Command::Publish {
            outputs,
            auth_domain,
            client_id,
        }) => {
            let mut stack = pulse_local::publish::StackOutputs::from_sam_json(
                &std::fs::read_to_string(outputs)?,
            )?;
            stack.auth_domain = auth_domain.or(stack.auth_domain);
            stack.client_id = client_id.or(stack.client_id);
            let config = stack.dashboard_config()?;
            let bucket = stack.bucket;
            let aws = pulse_store::aws::load().await;
            let s3 = aws_sdk_s3::Client::new(&aws);
            let keys =
                pulse_local::publish::publish(&s3, &bucket, &opts.root, Some(&config)).await?;
            #[allow(clippy::print_stdout)]
            {
                println!("published to s3://{bucket}: {}", keys.join(", "));
            }
            Ok(())
        }
        None => serve(opts).await,
    }
}

fn token(
    opts: &Options,
    tenant: &str,
    role: &str,
    ttl: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    pulse_core::identity::TenantId::parse(tenant)?;
    if pulse_core::identity::Role::parse(role).is_none() {
        return Err(format!("unknown role {role}: use admin, analyst or viewer").into());
    }
    let model = template::load(&opts.template, &opts.parameters)?;
    let authorizer = model
        .authorizers
        .values()
        .next()
        .ok_or("template.yaml declares no JWT authorizer")?;
    let issuer = pulse_local::jwt::LocalIssuer::load_or_create(&opts.state_dir)?;
    let jwt = issuer.mint(authorizer, tenant, role, Duration::from_secs(ttl))?;
    #[allow(clippy::print_stdout)]
    {
        println!("{jwt}");
    }
    Ok(())
}

async fn serve(opts: Options) -> Result<(), Box<dyn std::error::Error>> {
    // Colour only on a terminal: logs piped to a file or a CI console stay plain text.
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let state = opts.state_dir.display().to_string();
    let mut cloud = LocalCloud::start(opts).await?;
    let demo = pulse_local::demo::enabled();
    if demo {
        cloud.start_demo()?;
    }
    let routes: Vec<String> = cloud.model().routes.iter().map(|r| r.key()).collect();
    #[allow(clippy::print_stdout)]
    {
        println!("Pulse local cloud is up");
        println!(
            "  dashboard     {}/  (sign in with any tenant and role; demo has the demo traffic)",
            cloud.http_url()
        );
        println!(
            "  HTTP API      {}/api/v1  ({})",
            cloud.http_url(),
            routes.join(", ")
        );
        if let Some(ws) = cloud.ws_url() {
            let ws_routes: Vec<&str> = cloud
                .model()
                .ws_routes
                .iter()
                .map(|r| r.route_key.as_str())
                .collect();
            println!(
                "  WebSocket API {ws}  ({})",
                if ws_routes.is_empty() {
                    "no routes yet".to_owned()
                } else {
                    ws_routes.join(", ")
                }
            );
        }
        println!("  AWS emulator  {}", cloud.aws_endpoint());
        let schedules: Vec<String> = cloud
            .model()
            .schedules
            .iter()
            .map(|s| format!("{}.{} {}", s.function, s.name, s.expression))
            .collect();
        if !schedules.is_empty() {
            println!("  schedules     {}", schedules.join(", "));
        }
        for m in &cloud.model().streams {
            println!(
                "  stream        {} -> {} (batch {})",
                m.table, m.function, m.batch_size
            );
        }
        println!("  state         {state}");
        println!("  token         cargo run -q -p pulse-local -- token --tenant demo --role admin");
        if demo {
            println!(
                "  demo traffic  tenant demo, about {} events/s (PULSE_DEMO=off disables, PULSE_DEMO_RATE sets)",
                pulse_local::demo::rate()
            );
        }
        println!("Ctrl-C stops it.");
    }
    tokio::signal::ctrl_c().await?;
    tracing::info!("stopping");
    cloud.stop().await;
    Ok(())
}
