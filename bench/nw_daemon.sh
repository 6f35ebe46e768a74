#!/usr/bin/env bash
# The daemon under test for lat_harness.py: writes a config for the harness's
# rules (one webhook POST per article, see rules_to_config.py --one-alert) and
# runs `newswatch run`. State lives next to the watched folder (the harness's
# workdir, a tmpfs when run.sh could mount one).
#   usage: nw_daemon.sh WATCH_DIR WEBHOOK_URL RULES_JSON   (NEWSWATCH = the binary)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WATCH=$1 URL=$2 RULES=$3
WORK=$(dirname "$WATCH")/newswatch
mkdir -p "$WORK"
python3 "$HERE/rules_to_config.py" "$RULES" --out "$WORK/config.toml" --watch "$WATCH" \
  --state "$WORK/state" --webhook "$URL" --one-alert
export RUST_LOG=${RUST_LOG:-warn}
exec "${NEWSWATCH:-$HERE/../target/release/newswatch}" run -c "$WORK/config.toml"
