#!/usr/bin/env bash
# One command for the side-by-side benchmark: builds newswatch (release), generates the
# corpus and rule sets, runs newswatch and every available peer on the same inputs, and
# writes BENCHMARKS.md at the repository root. About 10 minutes on 2 cores with defaults.
#
#   bench/run.sh                 # installs what is missing (apt: ripgrep inotify-tools curl;
#                                #   pip: a venv in /tmp/benchvenv), then runs everything
#   SMOKE=1 bench/run.sh         # seconds: debug build, 30 articles, no peers, no BENCHMARKS.md
#
# Knobs (env): N articles (1000), KS rule counts ("10 1000 10000 100000"), RUNS fresh
# newswatch processes per size (3; each takes the median of 3 passes), REPEATS peer passes (3),
# LAT_K rules for the latency part (1000), BURST files (20000), PEERS=0 (newswatch only),
# PARTS ("match whole lat"), BASE work dir (/tmp/nwbench), OUT report (BENCHMARKS.md).
# All network traffic is to 127.0.0.1 (the harness's webhook receiver).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  N=${N:-30} KS=${KS:-"10 200"} RUNS=${RUNS:-1} REPEATS=${REPEATS:-1} LAT_K=${LAT_K:-200}
  BURST=${BURST:-50} PEERS=0 BASE=${BASE:-/tmp/nwbench-smoke} PROFILE=debug
fi
N=${N:-1000}
KS=${KS:-"10 1000 10000 100000"}
RUNS=${RUNS:-3}
REPEATS=${REPEATS:-3}
LAT_K=${LAT_K:-1000}
BURST=${BURST:-20000}
PEERS=${PEERS:-1}
PARTS=${PARTS:-"match whole lat"}
BASE=${BASE:-/tmp/nwbench}
PROFILE=${PROFILE:-release}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
PY=/tmp/benchvenv/bin/python
RES=$BASE/res
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
T0=$(date +%s)

# -- setup: peers are optional; whatever cannot be installed is reported as missing
if [ "$PEERS" = 1 ]; then
  missing=""
  for tool in rg inotifywait curl; do command -v $tool >/dev/null || missing="$missing $tool"; done
  if [ -n "$missing" ] && command -v apt-get >/dev/null; then
    echo "== installing ripgrep inotify-tools curl"
    (apt-get update -q && apt-get install -y -q ripgrep inotify-tools curl) >/dev/null 2>&1 \
      || echo "!! apt-get failed; peers needing:$missing are skipped"
  fi
  if [ ! -x "$PY" ] || ! "$PY" -c "import ahocorasick, flashtext, spacy, hyperscan, watchdog, requests" 2>/dev/null; then
    echo "== installing Python peers into /tmp/benchvenv"
    python3 -m venv /tmp/benchvenv && \
      /tmp/benchvenv/bin/pip install -q pyahocorasick flashtext spacy hyperscan watchdog requests \
      || echo "!! pip failed; the Python peers that did not install are skipped"
  fi
fi

echo "== building newswatch ($PROFILE)"
cd "$ROOT"
if [ "$PROFILE" = release ]; then
  cargo build --release --locked --bin newswatch --example bench_engine
else
  cargo build --locked --bin newswatch --example bench_engine
fi
NW=$ROOT/target/$PROFILE/newswatch
ENGINE=$ROOT/target/$PROFILE/examples/bench_engine
export NEWSWATCH=$NW

echo "== corpus ($N articles) and rule sets ($KS; latency $LAT_K)"
cd "$HERE"
for part in match whole lat; do has $part && rm -rf "${RES:?}/$part"; done  # PARTS=lat keeps the rest
mkdir -p "$RES/match" "$RES/whole" "$RES/lat" "$BASE"
if [ ! -f "$BASE/corpus/truth.json" ] || [ "$(python3 -c "import json;print(json.load(open('$BASE/corpus/truth.json'))['n'])")" != "$N" ]; then
  rm -rf "$BASE/corpus"
  python3 gen_corpus.py --n "$N" --seed 7 --out "$BASE/corpus" --verify >/dev/null
fi
for K in $KS $LAT_K; do [ -f "$BASE/rules_$K.json" ] || python3 gen_rules.py --k "$K" --out "$BASE/rules_$K.json" >/dev/null; done
MB=$(python3 -c "import os;d='$BASE/corpus/articles';print(sum(os.path.getsize(os.path.join(d,n)) for n in os.listdir(d))/1e6)")

peer_ok() { [ "$PEERS" = 1 ] && [ -x "$PY" ] && "$PY" -c "import $1" 2>/dev/null; }

if has match; then
  echo "== matching throughput (in-process, articles in memory)"
  # newswatch's runs go round the rule counts, so that a spell of load from other work
  # on the machine falls on every K alike, not on one K's runs (the ratio of 100,000
  # rules to 10 is a target).
  for r in $(seq 1 "$RUNS"); do
    for K in $KS; do
      "$ENGINE" --corpus "$BASE/corpus" --rules "$BASE/rules_$K.json" --repeats 3 --out "$RES/match/newswatch_k${K}_r$r.json"
    done
  done
  for K in $KS; do
    for E in pyahocorasick hyperscan spacy flashtext naive_re; do
      mod=$E; case $E in pyahocorasick) mod=ahocorasick ;; naive_re) mod=re ;; esac
      peer_ok "$mod" || continue
      extra=""
      case $E in
        naive_re) [ "$K" -le 1000 ] || continue; extra="--budget 5" ;;
        flashtext) [ "$K" -le 10000 ] || continue ;;  # flat ~8 MB/s whatever K; saves a minute
      esac
      "$PY" matchers.py --engine "$E" --corpus "$BASE/corpus" --rules "$BASE/rules_$K.json" \
        --out "$RES/match/${E}_k$K.json" --repeats "$REPEATS" $extra >/dev/null || echo "!! $E K=$K failed"
      echo "   $E K=$K done"
    done
    if [ "$PEERS" = 1 ] && command -v rg >/dev/null; then
      # -i with >= 10k patterns takes minutes in ripgrep (regex alternation): capped at 30 s
      case $K in 10|1000) V=spec,j1,cs,words ;; 10000) V=spec,cs ;; *) V=cs ;; esac
      python3 rg_match.py --rg rg --corpus "$BASE/corpus" --rules "$BASE/rules_$K.json" \
        --out "$RES/match/rg_k$K.json" --repeats "$REPEATS" --variants $V --timeout 30 >/dev/null || echo "!! rg K=$K failed"
      echo "   rg K=$K done"
    fi
  done
fi

if has whole; then
  echo "== whole process: newswatch test --json over the corpus (start-up, compile, read, match, alerts)"
  for K in $KS; do
    python3 rules_to_config.py "$BASE/rules_$K.json" --out "$BASE/test_$K.toml" --watch "$BASE/corpus/articles" \
      --state "$BASE/state" --file-sink "$BASE/alerts"
    python3 whole_process.py --name newswatch_test --k "$K" --mb "$MB" --articles "$N" --repeats "$RUNS" \
      --warm "$BASE/corpus/articles" --warm "$BASE/test_$K.toml" --out "$RES/whole/newswatch_test_k$K.json" -- "$NW" -c "$BASE/test_$K.toml" test --json "$BASE/corpus/articles"
    # The scripts an analyst would otherwise run: a fresh Python process that imports the
    # library, reads the corpus, builds the matcher and makes one pass.
    for E in pyahocorasick spacy; do
      mod=$E; [ $E = pyahocorasick ] && mod=ahocorasick
      peer_ok "$mod" || continue
      python3 whole_process.py --name "$E" --k "$K" --mb "$MB" --articles "$N" --repeats "$REPEATS" \
        --warm "$BASE/corpus/articles" --warm "$BASE/rules_$K.json" --out "$RES/whole/${E}_k$K.json" -- "$PY" matchers.py --engine "$E" --corpus "$BASE/corpus" \
        --rules "$BASE/rules_$K.json" --repeats 1 --out /dev/null >/dev/null || echo "!! $E whole K=$K failed"
    done
  done
fi

if has lat; then
  LAT_DIR=${LAT_DIR:-}
  if [ -z "$LAT_DIR" ]; then  # tmpfs, so that dropping files is not bound by the disk
    mkdir -p /tmp/nwlatfs
    if mountpoint -q /tmp/nwlatfs || mount -t tmpfs -o size=1g tmpfs /tmp/nwlatfs 2>/dev/null; then
      LAT_DIR=/tmp/nwlatfs/lat; else LAT_DIR=$BASE/lat; fi
  fi
  echo "== latency (rules K=$LAT_K, workdir $LAT_DIR)"
  R="$BASE/rules_$LAT_K.json"
  H() { python3 lat_harness.py --rules "$R" --corpus "$BASE/corpus" --workdir "$LAT_DIR" "$@" >/dev/null; }
  STEADY=600; [ "$SMOKE" = 1 ] && STEADY=30
  H --name newswatch --cmd "$HERE/nw_daemon.sh {watch} {url} {rules}" \
    --phase "steady:$STEADY@100" --phase "burst:$BURST" --repeats "$RUNS" --out "$RES/lat/newswatch.json" \
    || echo "!! newswatch latency failed"
  if peer_ok watchdog && peer_ok ahocorasick; then
    H --name "watchdog+pyahocorasick+requests" --cmd "$PY peers/peer_watchdog.py {watch} {url} {rules}" \
      --phase "steady:$STEADY@100" --phase burst:1000 --repeats "$RUNS" --out "$RES/lat/watchdog.json" || echo "!! watchdog failed"
  fi
  if [ "$PEERS" = 1 ] && command -v inotifywait >/dev/null && command -v curl >/dev/null; then
    H --name "inotifywait+grep+curl (LC_ALL=C)" --cmd "LC_ALL=C peers/peer_inotify.sh {watch} {url} {rules}" \
      --phase steady:300@100 --phase burst:300 --repeats 1 --idle-timeout 5 --out "$RES/lat/inotify_C.json" || echo "!! inotify failed"
  fi
fi

cat /proc/loadavg > "$RES/loadavg"  # the report states the load the runs ended under
python3 report.py --base "$BASE" --res "$RES" --runs "$RUNS" --burst "$BURST" --lat-k "$LAT_K" \
  --notes "$HERE/NOTES.md" --seconds "$(( $(date +%s) - T0 ))" > "$BASE/BENCHMARKS.md"
if [ "$SMOKE" = 1 ]; then
  echo "== smoke ok in $(( $(date +%s) - T0 )) s ($BASE/BENCHMARKS.md)"
else
  cp "$BASE/BENCHMARKS.md" "$OUT"
  echo "== done in $(( $(date +%s) - T0 )) s; wrote $OUT"
fi
