#!/usr/bin/env bash
# Remakes docs/demo.png: the demo page (go run ./examples/server) as headless
# Chromium shows it after about 14 seconds of live events.
#
# It runs TestScreenshot in examples/server, which serves the demo's handler,
# with its ordinary timings, on a loopback port and runs
#   /usr/bin/chromium --headless ... --window-size=1280,1060 --screenshot=FILE
# on it. Needs Debian's chromium (apt-get install chromium).
#
# Usage: scripts/screenshot.sh [output.png]    (default: docs/demo.png)
set -euo pipefail

cd "$(dirname "$0")/.."
out="${1:-docs/demo.png}"
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac
mkdir -p "$(dirname "$out")"

if [ ! -x /usr/bin/chromium ]; then
	echo "screenshot.sh: /usr/bin/chromium is missing: apt-get install chromium" >&2
	exit 1
fi

HTTPSSE_SCREENSHOT="$out" HTTPSSE_E2E=1 go test -count=1 -run '^TestScreenshot$' -v ./examples/server
