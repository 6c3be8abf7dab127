#!/usr/bin/env python3
"""Markdown table of `siamese cv --json` results: one row per lever, each the 4-fold mean of
every figure, averaged over the seeds given (the seeds' own means in brackets when several).

usage: tools/cv_table.py LABEL=run1.json[,run2.json...] ...   (a baseline row is added from the
       first file's pixel and eigenface figures; runs made with --val-people add the validation
       people's EER and one-shot, the columns to choose a lever by)"""
import json
import sys

FIGS = [("auc", "AUC", False), ("eer", "EER", True), ("tar_far1", "TAR@FAR1%", False), ("oneshot", "one-shot 10-way", False)]


def cell(values, fmt="{:.4f}"):
    m = sum(values) / len(values)
    if len(values) == 1:
        return fmt.format(m)
    return fmt.format(m) + " (" + " / ".join(fmt.format(v) for v in values) + ")"


def main(args):
    if not args:
        print(__doc__)
        return 2
    rows, first = [], None
    parsed = [(a.split("=", 1)[0], [json.load(open(f)) for f in a.split("=", 1)[1].split(",")]) for a in args]
    val = all("validation" in r["mean"] for _, runs in parsed for r in runs)
    for label, runs in parsed:
        first = first or runs[0]
        row = [label]
        if val:
            row += [cell([r["mean"]["validation"][k] for r in runs]) for k in ("eer", "oneshot")]
        row += [cell([r["mean"]["learned"][k] for r in runs]) for k, _, _ in FIGS]
        row.append(cell([r["mean"]["seconds_per_epoch"] for r in runs], "{:.2f}"))
        epochs = runs[0]["recipe"]["epochs"]
        row.append(str(epochs))
        rows.append(row)
    for base in ("pixels", "eigenfaces"):
        if base in first["mean"]:
            rows.append([f"*{base} (no learning)*"] + (["—", "—"] if val else []) +
                        [f"{first['mean'][base][k]:.4f}" for k, _, _ in FIGS] + ["—", "—"])
    head = ["lever"] + (["val. EER", "val. one-shot"] if val else []) + [h for _, h, _ in FIGS] + ["s/epoch", "epochs"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
