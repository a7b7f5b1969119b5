#!/usr/bin/env bash
# Render a validation report's report.html in headless Chromium to a PNG screenshot.
#
#   scripts/screenshot_report.sh REPORT_DIR OUT.png [WIDTH,HEIGHT]
#
# Needs Chromium (Debian/Ubuntu: apt-get install -y chromium; set CHROMIUM=/path/to/binary to
# use another build). With INSTALL_CHROMIUM=1 and root, the script installs Debian's package.
# The report is self-contained (inline CSS, base64 plot), and Chromium runs with networking
# features off, so the screenshot shows exactly what a user opening the file offline sees.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 REPORT_DIR OUT.png [WIDTH,HEIGHT]" >&2
  exit 2
fi
report_dir=$1
out=$2
size=${3:-1400,2000}
html="$report_dir/report.html"
if [[ ! -f "$html" ]]; then
  echo "error: $html does not exist; run 'edge-se validate BUNDLE --out $report_dir' or 'edge-se report $report_dir' first" >&2
  exit 2
fi

find_chromium() {
  if [[ -n "${CHROMIUM:-}" ]]; then echo "$CHROMIUM"; return; fi
  for c in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return; fi
  done
}

browser=$(find_chromium || true)
if [[ -z "$browser" && "${INSTALL_CHROMIUM:-0}" == "1" && $(id -u) == 0 ]]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  browser=$(find_chromium || true)
fi
if [[ -z "$browser" ]]; then
  echo "error: Chromium not found; install it (apt-get install -y chromium, or INSTALL_CHROMIUM=1 as root) or set CHROMIUM=" >&2
  exit 3
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
abs_html=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
mkdir -p "$(dirname "$out")"
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

"$browser" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --disable-extensions --hide-scrollbars \
  --user-data-dir="$profile" --window-size="$size" --screenshot="$abs_out" "file://$abs_html" \
  >/dev/null 2>"$profile/chromium.log" || {
    echo "error: Chromium failed to render $html:" >&2
    tail -5 "$profile/chromium.log" >&2
    exit 1
  }
if [[ ! -s "$abs_out" ]]; then
  echo "error: Chromium wrote no screenshot to $abs_out" >&2
  tail -5 "$profile/chromium.log" >&2
  exit 1
fi
echo "$abs_out"
