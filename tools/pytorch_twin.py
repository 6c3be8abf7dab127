#!/usr/bin/env python3
"""The reference recipe in PyTorch, for side-by-side comparison with the siamese engine.

Same model (conv 6@3x3, pool, dropout .25, conv 12@3x3, pool, dropout .25, dense 128 + dropout .1,
dense 50, ReLU throughout), Glorot-uniform init, contrastive loss with margin 1 on the safe
Euclidean distance, RMSprop(lr 1e-3, rho 0.9, eps 1e-7), batch 128. Both twins run as one
batch of 2B images, as the engine does. With --pairs (from `siamese pairs`) it trains and tests
on exactly the engine's pairs; otherwise it samples the tutorial recipe itself.

Prints one line per epoch and a final line `RESULT {json}` with the epoch times and test figures.
Usage: pytorch_twin.py --data DIR [--pairs pairs.json] [--epochs 13] [--device cpu|cuda] [--threads N]
                       [--mode eager|compile]
--mode compile: the step's forward + loss through torch.compile (on CUDA mode="reduce-overhead",
i.e. CUDA graphs) and the optimizer step compiled too: PyTorch at its best. Compilation happens
in the first epoch (and once more for the short last batch); report the median of epochs 2..
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_pgm(path):
    with open(path, "rb") as f:
        data = f.read()
    tokens, pos = [], 0
    while len(tokens) < 4:  # magic, width, height, maxval; skips comments
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            while data[pos:pos + 1] not in (b"\n", b""):
                pos += 1
            continue
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        tokens.append(data[start:pos])
    if tokens[0] != b"P5":
        raise SystemExit(f"{path}: only binary PGM (P5) is supported here")
    w, h, maxval = int(tokens[1]), int(tokens[2]), int(tokens[3])
    dtype = np.uint8 if maxval < 256 else np.dtype(">u2")
    img = np.frombuffer(data, dtype=dtype, count=w * h, offset=pos + 1).reshape(h, w)
    return img.astype(np.float32) / maxval


def natural_key(s):
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def load_images(data_dir, files=None):
    if files is None:
        files = []
        for person in sorted(os.listdir(data_dir), key=natural_key):
            pdir = os.path.join(data_dir, person)
            if os.path.isdir(pdir):
                files += [os.path.join(pdir, f) for f in sorted(os.listdir(pdir), key=natural_key) if f.endswith(".pgm")]
    return np.stack([read_pgm(f)[::2, ::2] for f in files])[:, None], files


def tutorial_pairs(n_people, per_person, rng):
    """The Keras tutorial's sampling (40 people x 10 images), as index pairs into the bank."""
    pairs = []
    for i in range(n_people):
        for _ in range(250):
            a = b = 0
            while a == b:
                a, b = rng.randint(per_person), rng.randint(per_person)
            pairs.append((i * per_person + a, i * per_person + b, 1.0))
    for _ in range(1000):
        for j in range(10):
            while True:
                p, q = rng.randint(n_people), rng.randint(n_people)
                if p != q:
                    break
            pairs.append((p * per_person + j, q * per_person + j, 0.0))
    pairs = np.array(pairs)
    rng.shuffle(pairs)
    n_test = len(pairs) // 4
    trainval, test = pairs[:-n_test], pairs[-n_test:]
    n_val = len(trainval) // 4
    return trainval[:-n_val], trainval[-n_val:], test


class Twin(nn.Module):
    def __init__(self, in_h, in_w):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.conv2 = nn.Conv2d(6, 12, 3)
        h, w = ((in_h - 2) // 2 - 2) // 2, ((in_w - 2) // 2 - 2) // 2
        self.fc1 = nn.Linear(12 * h * w, 128)
        self.fc2 = nn.Linear(128, 50)
        for m in (self.conv1, self.conv2, self.fc1, self.fc2):
            nn.init.xavier_uniform_(m.weight)  # Glorot uniform, as Keras
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.dropout(F.max_pool2d(F.relu(self.conv1(x)), 2), 0.25, self.training)
        x = F.dropout(F.max_pool2d(F.relu(self.conv2(x)), 2), 0.25, self.training)
        x = F.dropout(F.relu(self.fc1(x.flatten(1))), 0.1, self.training)
        return F.relu(self.fc2(x))


def distance(a, b):
    return torch.sqrt(torch.clamp(((a - b) ** 2).sum(1), min=1e-7))


def contrastive(d, y, margin=1.0):
    return (y * d ** 2 + (1 - y) * torch.clamp(margin - d, min=0) ** 2).mean()


def metrics(d, y, threshold):
    d, y = np.asarray(d, np.float64), np.asarray(y, np.float64)
    order = np.argsort(d, kind="stable")
    ds, ys = d[order], y[order]
    ranks = np.empty(len(d))
    i = 0
    while i < len(d):  # average ranks over ties
        j = i
        while j < len(d) and ds[j] == ds[i]:
            j += 1
        ranks[i:j] = 0.5 * (i + 1 + j)
        i = j
    n_gen, n_imp = ys.sum(), (1 - ys).sum()
    auc = (ranks[ys < 0.5].sum() - n_imp * (n_imp + 1) / 2) / (n_gen * n_imp)
    far = np.cumsum(1 - ys) / n_imp
    frr = 1 - np.cumsum(ys) / n_gen
    k = np.argmin(np.abs(far - frr))
    called = d < 0.5
    return {"accuracy": float(((d < 0.5) == (y > 0.5)).mean()),
            "accuracy_at_threshold": float(((d < threshold) == (y > 0.5)).mean()),
            "auc": float(auc), "eer": float((far[k] + frr[k]) / 2),
            "tutorial_metric": float(y[called].mean()) if called.any() else 0.0}


def best_threshold(d, y):
    d, y = np.asarray(d), np.asarray(y)
    order = np.argsort(d, kind="stable")
    ds, ys = d[order], y[order]
    right = (1 - ys).sum() + np.cumsum(np.where(ys > 0.5, 1, -1))
    k = int(np.argmax(right))
    return float((ds[k] + ds[k + 1]) / 2) if k + 1 < len(ds) else float(ds[k] + 1e-6)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--pairs", help="pairs JSON from `siamese pairs` (default: sample the tutorial recipe)")
    ap.add_argument("--epochs", type=int, default=13)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--mode", default="eager", choices=["eager", "compile"])
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    if args.pairs:
        with open(args.pairs) as f:
            spec = json.load(f)
        bank, _ = load_images(args.data, [os.path.join(args.data, f) for f in spec["files"]])
        split = [np.stack([spec[k]["a"], spec[k]["b"], spec[k]["y"]], 1) for k in ("train", "val", "test")]
    else:
        bank, _ = load_images(args.data)
        split = tutorial_pairs(40, 10, np.random.RandomState(args.seed))
    train, val, test = split
    images = torch.tensor(bank, device=dev)  # the whole bank on the device once
    model = Twin(bank.shape[2], bank.shape[3]).to(dev)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    tr_a, tr_b = torch.tensor(train[:, 0], dtype=torch.long, device=dev), torch.tensor(train[:, 1], dtype=torch.long, device=dev)
    tr_y = torch.tensor(train[:, 2], dtype=torch.float32, device=dev)

    def embed_all():
        model.eval()
        with torch.no_grad():
            e = model(images)
        model.train()
        return e

    def dists(e, pairs):
        a = torch.tensor(pairs[:, 0], dtype=torch.long, device=dev)
        b = torch.tensor(pairs[:, 1], dtype=torch.long, device=dev)
        return distance(e[a], e[b]).cpu().numpy()

    def loss_of(a_idx, b_idx, y):
        n = a_idx.shape[0]
        emb = model(images[torch.cat([a_idx, b_idx])])
        return contrastive(distance(emb[:n], emb[n:]), y)

    def opt_step():
        opt.step()

    compiled = args.mode == "compile"
    if compiled and not hasattr(torch, "compile"):
        raise SystemExit(f"--mode compile needs PyTorch 2 (torch.compile); this is torch {torch.__version__}")
    if compiled:
        loss_of = torch.compile(loss_of, mode="reduce-overhead" if dev.type == "cuda" else "default", dynamic=False)
        opt_step = torch.compile(opt_step, dynamic=False)

    epoch_seconds = []
    for epoch in range(1, args.epochs + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(len(train), device=dev)
        total = 0.0
        for s in range(0, len(train), args.batch):
            idx = perm[s:s + args.batch]
            n = len(idx)
            if compiled and dev.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()
            loss = loss_of(tr_a[idx], tr_b[idx], tr_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt_step()
            total += loss.detach().clone() * n  # a graph's output is overwritten by its next replay
        dv = dists(embed_all(), val)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        sec = time.perf_counter() - t0
        epoch_seconds.append(sec)
        vl = float(contrastive(torch.tensor(dv), torch.tensor(val[:, 2])).item())
        print(f"epoch {epoch:3d}/{args.epochs}  loss {float(total) / len(train):.4f}  val_loss {vl:.4f}  "
              f"val_acc {((dv < 0.5) == (val[:, 2] > 0.5)).mean():.4f}  {sec:.2f}s", flush=True)
    thr = best_threshold(dv, val[:, 2])
    res = metrics(dists(embed_all(), test), test[:, 2], thr)
    res.update({"epoch_seconds": epoch_seconds, "threshold": thr, "device": args.device, "mode": args.mode,
                "threads": torch.get_num_threads(), "torch": torch.__version__})
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
