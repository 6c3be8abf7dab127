#!/usr/bin/env python3
"""Mean +- sd of test figures over several runs' summary.json files (for README's results table).
usage: results_table.py RUN_DIR [RUN_DIR ...]"""
import json
import statistics
import sys


def main():
    runs = [json.load(open(f"{d}/summary.json")) for d in sys.argv[1:]]
    if not runs:
        sys.exit(__doc__)
    keys = ["accuracy", "accuracy_at_threshold", "auc", "eer", "tutorial_metric", "oneshot_accuracy"]
    cells = []
    for k in keys:
        vals = [r["test"][k] for r in runs if k in r["test"]]
        if vals:
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{k} {statistics.mean(vals):.4f} ± {sd:.4f}")
    secs = [s for r in runs for s in r["epoch_seconds"]]
    cells.append(f"epoch {statistics.median(secs):.2f} s (median of {len(secs)})")
    print(f"{runs[0]['protocol']} ({len(runs)} seeds, device {runs[0]['device']}): " + "; ".join(cells))


if __name__ == "__main__":
    main()
