#!/usr/bin/env python3
"""Reads the logs of tools/gpu_check.sh and prints its table rows; writes results.json.

usage: gpu_check_report.py LOGS_DIR RESULTS_JSON TABLE_TXT EPOCHS
The GPU's figures must agree with the CPU's (same seed, same pairs): test AUC within 0.005 and
the first epoch's training loss within 1e-3 relative (issue 8's criteria).
"""
import json
import os
import re
import statistics
import sys

logs, results_path, _table, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rows, res = [], {"epochs": epochs}


def row(k, v):
    rows.append(f"{k:<30} {v}")


def read(name):
    p = os.path.join(logs, name)
    return open(p, errors="replace").read() if os.path.exists(p) else ""


stages = {}
for line in read("stages.tsv").splitlines():
    name, rc, sec = line.split("\t")
    stages[name] = {"status": rc, "seconds": int(sec)}
res["stages"] = stages


def why_not(name):
    st = stages.get(name)
    if st is None:
        m = re.search(r"SKIPPED: (.*)", read(name + ".log"))
        quick = os.path.exists(os.path.join(logs, "quick"))  # QUICK=1 runs only a few stages
        return "SKIPPED (" + (m.group(1) if m else "not run: QUICK=1" if quick else "not reached: an earlier stage failed") + ")"
    rc = st["status"]
    if rc == "skipped":
        return "SKIPPED (time budget spent)"
    if rc in ("124", "137"):
        return f"TIMED OUT after {st['seconds']} s"
    return None if rc == "0" else f"FAILED (rc {rc}, see {name}.log)"


# ---- tests: every ctest result, the [cuda] ones counted apart
cuda_names = set(read("cuda_test_names.txt").split("\n")) - {""}
tests = {}
for m in re.finditer(r"Test\s+#\d+: (.*?) \.{2,}\s*(\*\*\*)?(Passed|Skipped|Failed|Timeout|Exception|Not Run)?", read("ctest.log")):
    tests[m.group(1).strip()] = m.group(3) or "Failed"
cuda = {k: v for k, v in tests.items() if k in cuda_names}
count = lambda d, s: sum(1 for v in d.values() if v == s)
res["tests"] = tests
if tests:
    failed = sorted(k for k, v in tests.items() if v not in ("Passed", "Skipped"))
    row("[cuda] tests", f"{count(cuda, 'Passed')} passed, {len(cuda) - count(cuda, 'Passed') - count(cuda, 'Skipped')} failed, "
        f"{count(cuda, 'Skipped')} skipped (of {len(cuda_names)})")
    if failed:
        row("failed tests", "; ".join(failed)[:600])
    skipped_cuda = sorted(k for k, v in cuda.items() if v == "Skipped")
    if skipped_cuda:
        row("skipped [cuda] tests", "; ".join(skipped_cuda)[:400])
elif why_not("ctest"):
    row("[cuda] tests", why_not("ctest"))


# ---- trainings
def summary(name):
    p = os.path.join(logs, f"run_{name}", "summary.json")
    return json.load(open(p)) if os.path.exists(p) else None


def steady(e):
    return statistics.median(e[1:]) if len(e) > 1 else e[0]


# The reference recipe's GPU engines (FP32, batch 128): the runs set against the CPU, PyTorch and the 5 ms goal.
REFERENCE_GPU = ("cuda", "cuda_cudnn", "cuda_tiled", "cuda_fused", "cuda_tiled_fused", "cuda_tiled_fused_two",
                 "cuda_tiled_fused_gemm")
runs = {}
for name in ("cuda", "cuda_cudnn", "cuda_tiled", "cuda_fused", "cuda_tiled_fused", "cuda_tf32", "cuda_tiled_fused_two",
             "cuda_tiled_fused_half", "cpu", "strong_cuda", "strong_cpu", "cuda_b8192", "cuda_b8192_fused", "big_fp32",
             "big_half", "cuda_tiled_fused_gemm", "cpu_tf32"):
    s = summary(name)
    if s is None:
        row(f"train {name}", why_not(f"train_{name}") or "no summary.json")
        continue
    t = s["test"]
    runs[name] = {"seconds_per_epoch": steady(s["epoch_seconds"]), "epoch_seconds": s["epoch_seconds"],
                  "epoch_losses": [h["loss"] for h in s["history"]], "test": t, "device": s["device"]}
    row(f"train {name}", f"{steady(s['epoch_seconds']):8.4f} s/epoch  loss1 {s['history'][0]['loss']:.6f}  "
        f"auc {t['auc']:.4f}  acc@thr {t['accuracy_at_threshold']:.4f}  eer {t['eer']:.4f}  "
        f"graph epochs {s.get('epochs_as_graph', '?')}/{len(s['epoch_seconds'])}")
res["runs"] = runs
if "cuda_cudnn" in runs:
    row("cuDNN algorithms", runs["cuda_cudnn"]["device"][:300])
# Agreement with the CPU: the same recipe, seed and pairs; fp32 rounding differs, so the test AUC
# within 0.005 (0.02 for the strong recipe: 90 Adam steps on augmented views amplify rounding
# differences more than 13 RMSprop epochs do) and the first epoch's mean loss within 3e-2 for the
# reference recipe: its 117 RMSprop steps amplify rounding, and weights nudged by 1e-7 relative
# moved the CPU's own epoch-1 loss by 0.7% to 1.4% (four nudges, ORL, seed 1, 2026-11-29). The
# strong recipe's first epoch is two Adam steps: 1e-3.
# (QUICK=1 runs no CPU training: the fused runs are then compared with the default GPU run.)
fused_ref = "cpu" if "cpu" in runs else "cuda"
for name, ref, auc_tol, loss_tol in (("cuda", "cpu", 0.005, 3e-2), ("cuda_cudnn", "cpu", 0.005, 3e-2), ("cuda_tiled", "cpu", 0.005, 3e-2),
                                     ("cuda_fused", fused_ref, 0.005, 3e-2), ("cuda_tiled_fused", fused_ref, 0.005, 3e-2),
                                     ("cuda_tiled_fused_two", fused_ref, 0.005, 3e-2),
                                     ("cuda_tiled_fused_gemm", fused_ref, 0.005, 3e-2),
                                     ("strong_cuda", "strong_cpu", 0.02, 1e-3)):
    if name not in runs or ref not in runs:
        continue
    a, c = runs[name], runs[ref]
    dauc = abs(a["test"]["auc"] - c["test"]["auc"])
    dloss = abs(a["epoch_losses"][0] - c["epoch_losses"][0]) / abs(c["epoch_losses"][0])
    ok = dauc <= auc_tol and dloss <= loss_tol
    res[f"agreement_{name}"] = {"auc_diff": dauc, "epoch1_loss_rel_diff": dloss, "ok": ok}
    row(f"{name} vs {ref}", f"{'AGREE' if ok else 'DISAGREE'}: |dAUC| {dauc:.5f} (<= {auc_tol}), epoch-1 loss rel {dloss:.2e} (<= {loss_tol:g})")

# TF32 (an optional precision path): its test AUC against the FP32 GPU run of the same recipe.
if "cuda_tf32" in runs and "cuda" in runs:
    dauc = runs["cuda_tf32"]["test"]["auc"] - runs["cuda"]["test"]["auc"]
    res["tf32_auc_minus_fp32"] = dauc
    row("tf32 vs fp32 (cuda)", f"test AUC {runs['cuda_tf32']['test']['auc']:.4f} vs {runs['cuda']['test']['auc']:.4f} "
        f"(difference {dauc:+.4f}), s/epoch {runs['cuda_tf32']['seconds_per_epoch']:.4f} vs {runs['cuda']['seconds_per_epoch']:.4f}")

# cuBLAS's TF32 beside the CPU's emulation of it (operands cut toward zero; cuBLAS may round to
# nearest instead, so a record, not a check): how well the CPU measures TF32's accuracy.
if "cuda_tf32" in runs and "cpu_tf32" in runs:
    g, c = runs["cuda_tf32"], runs["cpu_tf32"]
    res["tf32_cuda_vs_cpu_emulation"] = {"auc": [g["test"]["auc"], c["test"]["auc"]],
                                         "epoch1_loss": [g["epoch_losses"][0], c["epoch_losses"][0]]}
    row("tf32: cuda vs cpu emulation", f"test AUC {g['test']['auc']:.4f} vs {c['test']['auc']:.4f}, epoch-1 loss "
        f"{g['epoch_losses'][0]:.6f} vs {c['epoch_losses'][0]:.6f}")

# The weight gradients on a second stream (--side-stream) against one stream: the same kernels and
# sums, so the very same test figures (anything else is a race between the streams), and the time.
if "cuda_tiled_fused" in runs and "cuda_tiled_fused_two" in runs:
    two, one = runs["cuda_tiled_fused_two"], runs["cuda_tiled_fused"]
    same = two["test"] == one["test"] and two["epoch_losses"] == one["epoch_losses"]
    res["two_streams_same_bits"] = same
    row("two streams vs one", f"s/epoch {two['seconds_per_epoch']:.4f} vs {one['seconds_per_epoch']:.4f} (tiled fused); "
        + ("test figures and losses identical" if same else "DIFFERENT test figures or losses: a race between the streams?"))

# The dense products on the engine's own kernel (--gemm custom) against cuBLAS, the tiled fused step
# both: other sums (fp32 rounding), so the agreement row above says whether it trains the same;
# this one, what it saves an epoch.
if "cuda_tiled_fused_gemm" in runs and "cuda_tiled_fused" in runs:
    g, c = runs["cuda_tiled_fused_gemm"], runs["cuda_tiled_fused"]
    res["custom_gemm_speedup"] = c["seconds_per_epoch"] / g["seconds_per_epoch"]
    row("custom gemm vs cublas", f"s/epoch {g['seconds_per_epoch']:.4f} vs {c['seconds_per_epoch']:.4f}: "
        f"{c['seconds_per_epoch'] / g['seconds_per_epoch']:.2f}x (tiled fused); test AUC {g['test']['auc']:.4f} vs "
        f"{c['test']['auc']:.4f}")

# The FP16 bank (--half-bank, an optional precision path): on ORL its test AUC against the FP32
# run (the CPU measured the effect of the rounding: docs/gpu-speed.md), and its time; on the
# generated bank 1.4x the L2 in FP32, the time against FP32 (the bank past the L2 is where it can pay).
if "cuda_tiled_fused_half" in runs and "cuda_tiled_fused" in runs:
    h, f = runs["cuda_tiled_fused_half"], runs["cuda_tiled_fused"]
    dauc = h["test"]["auc"] - f["test"]["auc"]
    res["half_bank_auc_minus_fp32"] = dauc
    row("half bank vs fp32 (ORL)", f"test AUC {h['test']['auc']:.4f} vs {f['test']['auc']:.4f} (difference {dauc:+.4f}), "
        f"s/epoch {h['seconds_per_epoch']:.4f} vs {f['seconds_per_epoch']:.4f} (tiled fused)")
big_bank = read("big_bank.txt").strip()  # "N people x 10 photos: FP32 bank M MiB, L2 L MiB"
if "big_half" in runs and "big_fp32" in runs:
    h, f = runs["big_half"]["seconds_per_epoch"], runs["big_fp32"]["seconds_per_epoch"]
    res["half_bank_big_speedup"] = f / h
    res["half_bank_big_bank"] = big_bank
    row("half bank vs fp32 (big bank)", f"s/epoch {h:.4f} vs {f:.4f}: {f / h:.2f}x (tiled fused; {big_bank})")

# Issue 10's question in one row: the fastest reference-recipe engine that agrees with the CPU
# (and, for the two-stream run, gave the one-stream bits), its epoch against the 5 ms goal: the
# candidate default.
agreeing = [k for k in REFERENCE_GPU
            if res.get(f"agreement_{k}", {}).get("ok") and (k != "cuda_tiled_fused_two" or res.get("two_streams_same_bits"))]
if agreeing:
    best = min(agreeing, key=lambda k: runs[k]["seconds_per_epoch"])
    ms = 1e3 * runs[best]["seconds_per_epoch"]
    res["fastest_agreeing"] = {"run": best, "ms_per_epoch": ms}
    gpu = read("gpu_kind.txt").strip() or "h200"
    row("fastest agreeing engine", f"{best}: {ms:.2f} ms/epoch against the 5 ms goal ({'MET' if ms <= 5 else 'not met'}"
        f"{'' if gpu == 'h200' else ' on an ' + gpu.upper() + '; the goal is set for an H200'}; "
        f"median of epochs 2..; {', '.join(agreeing)} agree)")

# ---- PyTorch
torch_runs = {}
for mode in ("eager", "compile"):
    text = read(f"pytorch_{mode}.log")
    lines = [l for l in text.splitlines() if l.startswith("RESULT ")]
    if not lines:
        row(f"pytorch {mode}", why_not(f"pytorch_{mode}") or "no RESULT line")
        continue
    r = json.loads(lines[-1][7:])
    torch_runs[mode] = r
    row(f"pytorch {r['device']} {mode}", f"{steady(r['epoch_seconds']):8.4f} s/epoch  auc {r['auc']:.4f}  "
        f"acc@thr {r['accuracy_at_threshold']:.4f}  (torch {r['torch']})")
res["pytorch"] = torch_runs
if runs and torch_runs:
    # PyTorch trains the reference recipe on the same pairs: the ratio is against our fastest
    # engine on that recipe (the strong runs are shown, not compared).
    same = [k for k in REFERENCE_GPU + ("cpu",) if k in runs]
    ours = {k: v["seconds_per_epoch"] for k, v in runs.items() if k not in ("cpu", "cpu_tf32")} or \
        {"cpu": runs["cpu"]["seconds_per_epoch"]}
    parts = [f"ours {k} {v:.4f}" for k, v in ours.items()]
    best_name = min(same, key=lambda k: runs[k]["seconds_per_epoch"]) if same else min(ours, key=ours.get)
    best = runs[best_name]["seconds_per_epoch"] if same else ours[best_name]
    for mode, r in torch_runs.items():
        t = steady(r["epoch_seconds"])
        parts.append(f"torch {mode} {t:.4f} ({t / best:.1f}x ours {best_name})")
    row("s/epoch, median of 2..", " | ".join(parts))

# Batch 8192 (2 steps an epoch): ours against PyTorch eager on the same pairs and batches.
text = read("pytorch_eager_b8192.log")
lines = [l for l in text.splitlines() if l.startswith("RESULT ")]
big = {k: runs[k]["seconds_per_epoch"] for k in ("cuda_b8192", "cuda_b8192_fused") if k in runs}
if lines:
    big["torch eager"] = steady(json.loads(lines[-1][7:])["epoch_seconds"])
if big:
    best = min(v for k, v in big.items() if k != "torch eager") if len(big) > ("torch eager" in big) else None
    row("batch 8192, s/epoch", " | ".join(f"{k} {v:.4f}" + (f" ({v / best:.1f}x ours)" if k == "torch eager" and best else "")
                                          for k, v in big.items()))
    res["batch_8192"] = big

# ---- compute-sanitizer
for name in ("memcheck_train", "memcheck_train_fused", "memcheck_tests", "racecheck"):
    text = read(name + ".log")
    refused = re.search(r"(?im)^.*(not supported|unsupported|unable to|could not|failed to initialize).*$", text)
    # memcheck ends with "ERROR SUMMARY: N errors", racecheck with "RACECHECK SUMMARY: N hazards
    # displayed (E errors, W warnings)".
    summ = re.findall(r"ERROR SUMMARY: (\d+) error", text) + re.findall(r"RACECHECK SUMMARY: \d+ hazards displayed \((\d+) error", text)
    st = stages.get(name, {}).get("status")
    if st is None or st == "skipped":
        v = why_not(name)
    elif summ and all(x == "0" for x in summ) and st == "0":
        v = "clean (0 errors)"
    elif summ and any(x != "0" for x in summ):
        first = re.search(r"(?m)^=+ (Invalid|Race|.*Error).*$", text)
        v = f"{sum(int(x) for x in summ)} ERRORS: " + (first.group(0)[:150] if first else "see log")
    elif refused and st != "0":
        v = "SKIPPED (the tool refused: " + refused.group(0).strip()[:120] + ")"
    else:
        v = why_not(name) or "no ERROR SUMMARY line"
    res[name] = v
    row(f"compute-sanitizer {name}", v)

# ---- profile
text = read("profile.log")
prof = [l for l in text.splitlines() if re.match(r"^\S.*\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+%$", l)]
res["profile"] = prof
row("profile (3 epochs, graphs)", "; ".join(re.sub(r"\s{2,}", " ", l) for l in prof[:4]) if prof else (why_not("profile") or "no table"))

# ---- ncu: its CSV's rows (one a metric of a launch), past the lines ncu prints before the header
def ncu_csv(text):
    import csv
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    return [] if start is None else list(csv.DictReader(lines[start:]))


# One row per kernel launch (duration in µs, SM and memory throughput in %)
def ncu_kernels(text):
    scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6, "second": 1e6}
    kernels = {}
    for r in ncu_csv(text):
        k = kernels.setdefault(r["ID"], {"kernel": r["Kernel Name"], "grid": r.get("Grid Size", ""),
                                         "block": r.get("Block Size", "")})
        name, unit = r.get("Metric Name", ""), r.get("Metric Unit", "")
        try:
            value = float(r.get("Metric Value", "").replace(",", ""))
        except ValueError:
            continue
        if name == "Duration" and unit in scale:
            k["us"] = value * scale[unit]
        elif name in ("Compute (SM) Throughput", "SM [%]", "Compute (SM) [%]"):
            k["sm"] = value
        elif name in ("Memory Throughput", "Memory [%]"):
            k["mem"] = value
    return [k for _, k in sorted(kernels.items(), key=lambda kv: int(kv[0])) if "us" in k]


def kernel_base(n):  # "void siamese::cuda::<unnamed>::tiled_wgrad_kernel<...>(...)" -> "tiled_wgrad_kernel"
    n = re.sub(r"(<unnamed>|\(anonymous namespace\))::", "", re.sub(r"^void ", "", n))
    return re.sub(r"^siamese::cuda::", "", re.sub(r"[<(].*", "", n))


plan = re.findall(r"(?m)^(\d+) launches per step", read("plan.txt"))
if plan:
    row("plan (launches/step)", ", ".join(f"{w} {n}" for w, n in zip(("unfused", "fused", "tiled fused", "tiled fused gemm"), plan)))
epoch_floor = re.findall(r"(?m)^\s+epoch\s+(\d+) launches\s+floor\s+([\d.]+) ms", read("plan.txt"))
if epoch_floor:
    res["plan_epoch_floor_ms"] = [float(f) for _, f in epoch_floor]
    row("plan (epoch floor)", ", ".join(f"{w} {f} ms ({n} launches)" for w, (n, f) in zip(("unfused", "fused", "tiled fused", "tiled fused gemm"), epoch_floor))
        + " against the 5 ms goal")
host = re.findall(r"(?m)^(no checkpoints|with checkpoints): .*?([\d.]+) us an epoch in all", read("host_overhead.log"))
if host:
    res["host_us_per_epoch"] = {k: float(v) for k, v in host}
    row("host cost per epoch", ", ".join(f"{k} {v} us" for k, v in host) + " (host_overhead: an engine that takes no time)")
else:
    row("host cost per epoch", why_not("host_overhead") or "no output")
for name in ("reference", "tiled", "fused", "tiled_fused", "tiled_fused_gemm", "strong"):
    ks = ncu_kernels(read(f"ncu_{name}.csv"))
    res[f"ncu_{name}"] = ks
    if not ks:
        row(f"ncu {name}", why_not(f"ncu_{name}") or "no kernel rows")
        continue
    total = sum(k["us"] for k in ks)
    top = sorted(ks, key=lambda k: -k["us"])[:5]
    row(f"ncu {name}", f"{len(ks)} launches, {total:.0f} us; largest: " +
        "; ".join(f"{kernel_base(k['kernel'])[:40]} {k['us']:.1f} us (SM {k.get('sm', 0):.0f}%, mem {k.get('mem', 0):.0f}%)" for k in top))

# Kernel by kernel: the fused step's ncu rows matched, in launch order, with `siamese plan
# --fused` (each launch's FLOPs, bytes and floor), from the first conv1 forward of the window: a
# cuBLAS call takes its GEMM and any split-K reduction after it. Achieved FLOP/s and bytes/s
# against the GPU's peaks (plan --gpu), i.e. how far each kernel is from its floor.
def plan_rows(text, which):
    blocks = re.split(r"(?m)^CUDA training step:", text)[1:]
    if len(blocks) <= which:
        return []
    rows_ = []
    unit = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    for m in re.finditer(r"(?m)^\s*\d+\s+(\S+)( \*)?\s+.*?\s([\d.]+) ([kMGT]?)\s+([\d.]+) ([kMGT]?)B\s+([\d.]+) us$",
                         blocks[which]):
        rows_.append({"kernel": m.group(1), "library": bool(m.group(2)),
                      "flops": float(m.group(3)) * unit[m.group(4)], "bytes": float(m.group(5)) * unit[m.group(6)],
                      "floor_us": float(m.group(7))})
    return rows_


def match_step(ks, plan):
    # ncu names a kernel bare or with its namespaces and template arguments: searched, not matched.
    start = next((i for i, k in enumerate(ks) if re.search(r"\b(conv_pool_forward|tiled_forward|tiled_pair_forward)_kernel", k["kernel"])), None)
    if start is None or not plan:
        return []
    out, i = [], start
    for p in plan:
        if i >= len(ks):
            return []  # the window ended inside the step
        us = ks[i]["us"]
        i += 1
        if p["library"] and i < len(ks) and "splitKreduce" in ks[i]["kernel"]:
            us += ks[i]["us"]
            i += 1
        out.append(dict(p, us=us))
    return out


# The fused step measured (ncu, eager, clocks as found) kernel by kernel and in all against the plan's
# floor for the same step (plan.txt's second to fourth tables: --fused, --fused --conv tiled, and
# that with --gemm custom).
floors = re.findall(r"(?m)^\s+total\s.*?([\d.]+) us$", read("plan.txt"))
for name, which in (("fused", 1), ("tiled_fused", 2), ("tiled_fused_gemm", 3)):
    ks = res.get(f"ncu_{name}", [])
    steps = match_step(ks, plan_rows(read("plan.txt"), which))
    if steps:
        res[f"{name}_by_kernel"] = steps
        peaks = re.search(r"(?m)^floor: max\(FLOP / (.*?), bytes / (.*?)\)", read("plan.txt"))
        row(f"{name} step, kernel by kernel", "(ncu, clocks as found; floor: FLOP at " +
            (f"{peaks.group(1)} or bytes at {peaks.group(2)})" if peaks else "the plan's peaks)"))
        for k in steps:
            row(f"  {k['kernel'][:28]}", f"{k['us']:8.1f} us  floor {k['floor_us']:6.2f} us ({k['us'] / max(k['floor_us'], 1e-3):5.0f}x)  "
                f"{k['flops'] / k['us'] / 1e6:7.2f} TFLOP/s  {k['bytes'] / k['us'] / 1e6:6.3f} TB/s")
    if len(floors) > which and ks:
        # One matched step when the window held one; else every kernel of the window.
        measured = sum(k["us"] for k in (steps or ks))
        what = f"one step's {len(steps)} launches" if steps else f"{len(ks)} kernels (unmatched)"
        floor = float(floors[which])
        res[f"{name}_floor_us"] = floor
        row(f"{name} step vs its floor", f"{measured:.0f} us in {what} (ncu) vs floor "
            f"{floor:.2f} us: {measured / floor:.0f}x the floor")

# The tiled fused step's shared memory and occupancy (ncu_smem.csv: raw metrics by name), one row
# per kernel of one step from the pair forward on: load and store wavefronts and how many of them
# bank conflicts added, achieved occupancy, registers a thread.
def ncu_metrics(text):
    kernels = {}
    for r in ncu_csv(text):
        k = kernels.setdefault(r["ID"], {"kernel": r["Kernel Name"]})
        try:
            k[r.get("Metric Name", "")] = float(r.get("Metric Value", "").replace(",", ""))
        except ValueError:
            pass
    return [k for _, k in sorted(kernels.items(), key=lambda kv: int(kv[0]))]


sm_rows = ncu_metrics(read("ncu_smem.csv"))
first = next((i for i, k in enumerate(sm_rows) if "tiled_pair_forward" in k["kernel"] or "tiled_forward" in k["kernel"]), None)
if first is None:
    row("ncu smem (tiled fused)", why_not("ncu_smem") or "no kernel rows")
else:
    res["ncu_smem"] = sm_rows
    row("ncu smem (tiled fused)", "one step: shared-memory wavefronts (of them, from bank conflicts), occupancy, registers")
    for k in sm_rows[first:first + 12]:
        g = lambda m: k.get(m, float("nan"))
        ld, ldc = g("l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum"), g("l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum")
        st, stc = g("l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum"), g("l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum")
        row(f"  {kernel_base(k['kernel'])[:28]}",
            f"ld {ld:10.0f} ({ldc / ld if ld else 0:4.0%} conflicts)  st {st:9.0f} ({stc / st if st else 0:4.0%})  "
            f"occupancy {g('sm__warps_active.avg.pct_of_peak_sustained_active'):3.0f}%  {g('launch__registers_per_thread'):.0f} regs")

json.dump(res, open(results_path, "w"), indent=1)
print("\n".join(rows))
