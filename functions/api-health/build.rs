//! Stamps the binary with a build id: `PULSE_BUILD` if set (CI, `sam build`), else the git
//! commit, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PULSE_BUILD");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs/heads");
    let build = std::env::var("PULSE_BUILD").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
    });
    println!(
        "cargo:rustc-env=PULSE_BUILD={}",
        build.unwrap_or_else(|| "unknown".to_owned())
    );
}
