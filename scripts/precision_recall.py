#!/usr/bin/env python3
"""Precision and recall of a config's rules on a labelled corpus.

Runs `newswatch test --json` over the corpus folder (fresh state, folder
order, exactly as the daemon would see the files arrive) and compares the
(article, rule) pairs that fired with the hand labels. Prints a Markdown
table per rule and overall.

    scripts/precision_recall.py [--bin target/release/newswatch]
        [--config config.toml] [--corpus seeds]
        [--expected tests/data/seeds_expected.json]
"""

import argparse
import json
import os
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/newswatch")
    parser.add_argument("--config", default="config.toml")
    parser.add_argument("--corpus", default="seeds")
    parser.add_argument("--expected", default="tests/data/seeds_expected.json")
    args = parser.parse_args()

    if not os.path.exists(args.bin):
        subprocess.run(["cargo", "build", "--release", "--quiet"], check=True)
    run = subprocess.run(
        [args.bin, "test", "--json", "-c", args.config, args.corpus],
        check=True, capture_output=True, text=True,
    )
    fired = set()
    for line in run.stdout.splitlines():
        alert = json.loads(line)
        fired.add((os.path.basename(alert["article"]["path"]), alert["rule"]))
    with open(args.expected, encoding="utf-8") as handle:
        labels = json.load(handle)["expected"]
    expected = {(article, rule) for article, rules in labels.items() for rule in rules}

    rules = sorted({rule for _, rule in fired | expected})
    print("| rule | true pos. | false pos. | false neg. | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|")
    totals = [0, 0, 0]
    for rule in rules:
        tp = len({p for p in fired & expected if p[1] == rule})
        fp = len({p for p in fired - expected if p[1] == rule})
        fn = len({p for p in expected - fired if p[1] == rule})
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        print(f"| {rule} | {tp} | {fp} | {fn} | {ratio(tp, tp + fp)} | {ratio(tp, tp + fn)} |")
    tp, fp, fn = totals
    print(f"| **all** | {tp} | {fp} | {fn} | {ratio(tp, tp + fp)} | {ratio(tp, tp + fn)} |")
    for article, rule in sorted(fired - expected):
        print(f"false positive: {rule} on {article}", file=sys.stderr)
    for article, rule in sorted(expected - fired):
        print(f"false negative: {rule} on {article}", file=sys.stderr)
    return 0


def ratio(part: int, whole: int) -> str:
    return "n/a" if whole == 0 else f"{part / whole:.2f}"


if __name__ == "__main__":
    sys.exit(main())
