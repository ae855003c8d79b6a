#!/usr/bin/env bash
# The browser tests: headless Chromium (the distribution's) driving the web console of a
# real appliance. Installs what is missing (Chromium, the npm packages from the lock),
# builds the appliance, runs `node --test`, and leaves screenshots of the main pages in
# target/browser-screenshots/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Chromium (Debian package chromium)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

if [ ! -d tests/browser/node_modules ]; then
  # From the lock only; --prefer-offline takes packages from npm's cache when it has them.
  (cd tests/browser && npm ci --prefer-offline --no-audit --no-fund)
fi

echo "building the appliance"
cargo build --bin gatehouse
export GATEHOUSE_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/gatehouse"
# Under the repository's target/ (ignored by git) whatever CARGO_TARGET_DIR says, so
# that the screenshots are found beside the checkout.
export GATEHOUSE_SCREENSHOTS="$repo/target/browser-screenshots"
rm -rf "$GATEHOUSE_SCREENSHOTS"
mkdir -p "$GATEHOUSE_SCREENSHOTS"

status=0
node --test tests/browser/ || status=$?
echo "screenshots: $GATEHOUSE_SCREENSHOTS"
exit "$status"
