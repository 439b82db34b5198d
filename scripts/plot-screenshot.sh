#!/usr/bin/env bash
# Renders the sample pictures of `twamp::plot` and screenshots them with headless Chromium, so a
# person can look at what a browser shows (issue 14). Used to make docs/plot.png.
#
#   scripts/plot-screenshot.sh [OUT_DIR]      # default: target/plot-sample
#
# Writes OUT_DIR/session.svg and OUT_DIR/runs.svg (examples/plot_sample.rs: a synthetic test
# session, and a night of saved runs read back from JSON Lines) and a PNG of each, at the SVG's
# own size. Installs Debian's `chromium` package when it is missing (needs root, as on the
# project's machines and in CI). Nothing here touches the network beyond that install.
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-target/plot-sample}

if ! command -v chromium >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

cargo run --quiet --example plot_sample -- "$out"
out=$(realpath "$out")

for name in session runs; do
    svg="$out/$name.svg"
    # The window is the picture's size, so the screenshot holds all of it and nothing else.
    width=$(grep -o -m1 '<svg[^>]*' "$svg" | sed -n 's/.* width="\([0-9]*\)".*/\1/p')
    height=$(grep -o -m1 '<svg[^>]*' "$svg" | sed -n 's/.* height="\([0-9]*\)".*/\1/p')
    # --no-sandbox: Chromium refuses to run as root with its sandbox on.
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size="${width},${height}" \
        --screenshot="$out/$name.png" "file://$svg" 2>/dev/null
    echo "$out/$name.png (${width}x${height})"
done
