#!/usr/bin/env bash
# Installs Debian's chromium for the UI browser tests (cmd/mlgate/ui_browser_test.go drives it with
# chromedp). A no-op when a chromium binary is already present. apt's frontend lock may be held by another
# installer for a while, so wait for it rather than fail.
set -euo pipefail
for bin in /usr/bin/chromium /usr/bin/chromium-browser; do
	if [ -x "$bin" ]; then
		echo "chromium present: $bin"
		exit 0
	fi
done
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core
