#!/usr/bin/env bash
# Installs the Debian packages the suite needs when they are missing: Node.js and npm (the CDK synthesizes
# through jsii; the CDK CLI and its diff engine are npm packages) and Chromium (the report is opened in a real browser). Tests that need a tool which
# could not be installed skip with a message naming it.
set -uo pipefail

need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: missing ${need[*]} and cannot apt-get install here; the tests that need them will skip" >&2
  exit 0
fi
echo "installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
  || echo "note: could not install ${need[*]}; the tests that need them will skip" >&2
exit 0
