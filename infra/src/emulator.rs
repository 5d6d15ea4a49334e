//! The AWS emulator: moto's server from the project's venv, on loopback, for as long as the
//! local cloud runs. It is killed when the local cloud stops or this handle is dropped, and
//! `infra/scripts/emulator.py` makes it exit by itself if its parent dies without either.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use thiserror::Error;
use tokio::process::{Child, Command};

#[derive(Debug, Error)]
pub enum EmulatorError {
    #[error(
        "the AWS emulator is not installed at {0}; run `make dev` or infra/scripts/bootstrap.sh first"
    )]
    NotInstalled(String),
    #[error("cannot start the AWS emulator: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the AWS emulator did not become ready within {secs} s; see {log}")]
    NotReady { secs: u64, log: String },
    #[error("the AWS emulator exited at start ({status}); see {log}")]
    Exited { status: String, log: String },
}

/// A running moto server.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    endpoint: String,
}

impl Emulator {
    /// Starts moto on `127.0.0.1:port`, logging to `log`, and waits until it answers.
    pub async fn start(root: &Path, port: u16, log: &Path) -> Result<Self, EmulatorError> {
        let python = root.join(".venv").join("bin").join("python");
        if !root.join(".venv").join("bin").join("moto_server").exists() {
            return Err(EmulatorError::NotInstalled(
                root.join(".venv").display().to_string(),
            ));
        }
        let log_file = std::fs::File::create(log).map_err(EmulatorError::Spawn)?;
        let err_file = log_file.try_clone().map_err(EmulatorError::Spawn)?;
        let child = Command::new(&python)
            .arg(root.join("infra").join("scripts").join("emulator.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .kill_on_drop(true)
            .spawn()
            .map_err(EmulatorError::Spawn)?;
        let mut emulator = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        emulator.wait_ready(log.to_path_buf()).await?;
        Ok(emulator)
    }

    /// The endpoint every AWS client of the local cloud uses.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn wait_ready(&mut self, log: PathBuf) -> Result<(), EmulatorError> {
        const SECS: u64 = 60;
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(SECS);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(EmulatorError::Exited {
                    status: status.to_string(),
                    log: log.display().to_string(),
                });
            }
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EmulatorError::NotReady {
            secs: SECS,
            log: log.display().to_string(),
        })
    }

    /// Stops the emulator and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
