#!/usr/bin/env python3
"""Shared-memory bank conflicts of the tiled conv forward's window loads, counted without a GPU.

A thread of tiled_forward_compute (cuda/conv_phases.hpp) makes pooled outputs 4g..4g+3 of its
group g; for each output j, conv_window loads the channel's (P+K-1)^2 input patch from the staged
image, whose rows are `ld` floats apart. All 32 lanes of a warp (consecutive g) issue each of
those loads together. A load takes as many wavefronts as the most distinct addresses any of the
32 four-byte banks is asked for (lanes reading the same address share one). This prints the mean
over every patch load of every warp of one image: 1.0 is conflict-free.

usage: tools/smem_banks.py [--ld-extra N ...]   (default: 0 and 1, the row paddings compared)
"""
import argparse

SHAPES = {  # name: (C, H, W, F, K, P), the recipes' conv blocks at the ORL input
    "conv1 (6 filters)": (1, 56, 46, 6, 3, 2),
    "conv2 (6 -> 12)": (6, 27, 22, 12, 3, 2),
    "strong conv1 (16)": (1, 56, 46, 16, 3, 2),
    "strong conv2 (16 -> 32)": (16, 27, 22, 32, 3, 2),
}


def wavefronts(C, H, W, F, K, P, ld):
    Hp, Wp = (H - K + 1) // P, (W - K + 1) // P
    per, T = Hp * Wp, P + K - 1
    elems = F * per
    groups = (elems + 3) // 4
    total = loads = 0
    for warp in range((groups + 31) // 32):
        for j in range(4):
            for r in range(T):
                for q in range(T):
                    banks = {}
                    for lane in range(32):
                        e = 4 * (32 * warp + lane) + j
                        if 32 * warp + lane >= groups or e >= elems:
                            continue
                        pos = e % per
                        addr = (pos // Wp * P + r) * ld + pos % Wp * P + q  # channel 0: the others shift alike
                        banks.setdefault(addr % 32, set()).add(addr)
                    if banks:
                        total += max(len(a) for a in banks.values())
                        loads += 1
    return total / loads


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ld-extra", type=int, nargs="+", default=[0, 1], help="row paddings to compare (floats)")
    a = ap.parse_args()
    print(f"{'shape':26s}" + "".join(f"  ld = W+{x:<3d}" for x in a.ld_extra) + "   (wavefronts a patch load; 1 = none)")
    for name, (C, H, W, F, K, P) in SHAPES.items():
        print(f"{name:26s}" + "".join(f"  {wavefronts(C, H, W, F, K, P, W + x):10.2f}" for x in a.ld_extra))


if __name__ == "__main__":
    main()
