#!/usr/bin/env bash
# Installs Debian's Chromium for the dashboard's browser tests, once (playwright-core drives it;
# no browser is downloaded at run time). Uses sudo when not root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "bootstrap: installing chromium from Debian's packages (once)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
