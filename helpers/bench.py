"""Benchmark the explanation methods on a ViT-B/16-shaped model: ``make bench``.

    python -m helpers.bench [--threads 2] [--repeats 3] [--batches 1 8]

Builds a random-weight ``ViTForImageClassification`` with ViT-B/16's configuration (``ViTConfig()``
defaults: 224 px, patch 16, 12 layers, 12 heads, width 768; eager attention, eval mode) and times
:func:`helpers.explain` for each method against the cost of the model itself on the same batch:

- ``attention`` and ``rollout`` against one forward pass (no grad);
- ``chefer``, ``gmar``, ``legrad`` and ``attnlrp`` against one forward + backward to the input.

Each ratio is the median over ``--repeats`` of (method time / baseline time), the two timed back to
back after a warm-up, so a machine whose load drifts still gives fair ratios. The last column is a
method's time per image at the largest batch relative to batch 1 (below 1 = batching pays off).
Targets: attention and rollout <= 1.15 x forward; chefer, gmar, legrad <= 1.3 x forward+backward;
batch per-image cost <= 0.8 x batch 1. AttnLRP rows (no target) are shown when
``helpers/methods/attnlrp.py`` is present. Random weights: timings only, no explanation quality.
"""
from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from helpers.methods import METHODS, explain

FORWARD, FORWARD_BACKWARD = "forward", "forward+backward"
ROWS = [  # (method, options, baseline, target ratio or None)
    ("attention", {}, FORWARD, 1.15),
    ("rollout", {}, FORWARD, 1.15),
    ("rollout", {"discard_ratio": 0.9, "head_fusion": "max"}, FORWARD, 1.15),
    ("chefer", {}, FORWARD_BACKWARD, 1.3),
    ("gmar", {}, FORWARD_BACKWARD, 1.3),
    ("legrad", {}, FORWARD_BACKWARD, 1.3),
    ("attnlrp", {"preset": "none"}, FORWARD_BACKWARD, None),
    ("attnlrp", {"preset": "balanced"}, FORWARD_BACKWARD, None),
]
BATCH_TARGET = 0.8


def vit_b16(seed: int = 0):
    """A random-weight ViT-B/16-shaped classifier (eager attention, eval mode)."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    return ViTForImageClassification(ViTConfig(attn_implementation="eager")).eval()


def baseline(model, pixel_values, targets, kind: str):
    """A function running one forward pass, or one forward + backward to the input."""
    def forward():
        with torch.no_grad():
            model(pixel_values=pixel_values)

    def forward_backward():
        inputs = pixel_values.detach().clone().requires_grad_(True)
        logits = model(pixel_values=inputs).logits
        torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), inputs)

    return forward if kind == FORWARD else forward_backward


def seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def timed_pair(method_run, baseline_run, repeats: int) -> tuple[float, float]:
    """Median method time and median of (method / baseline), after one warm-up of each."""
    method_run(), baseline_run()
    pairs = [(seconds(method_run), seconds(baseline_run)) for _ in range(repeats)]
    return (statistics.median(m for m, _ in pairs),
            statistics.median(m / b for m, b in pairs))


def measure(model, method, options, kind, batch, repeats):
    generator = torch.Generator().manual_seed(batch)
    pixel_values = torch.randn(batch, 3, 224, 224, generator=generator)
    targets = torch.arange(batch) % model.config.num_labels
    run = partial(explain, model, pixel_values, method, target=targets, **options)
    return timed_pair(run, baseline(model, pixel_values, targets, kind), repeats)


def verdict(value: float, limit: float | None) -> str:
    if limit is None:
        return f"{value:5.2f}     "
    return f"{value:5.2f} {'ok ' if value <= limit else 'OVER'}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats after a warm-up")
    parser.add_argument("--batches", type=int, nargs=2, default=[1, 8], metavar=("SMALL", "LARGE"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    small, large = args.batches
    model = vit_b16()
    rows = [row for row in ROWS if row[0] in METHODS]
    print(f"ViT-B/16 config, random weights, CPU, {args.threads} threads, median of "
          f"{args.repeats} after a warm-up. Ratio = method time / baseline time, same batch.")
    print(f"{'method':<42} {'baseline':<17} {'s/img B=' + str(small):>11} "
          f"{'x base B=' + str(small):>13} {'x base B=' + str(large):>13} "
          f"{'B=' + str(large) + '/B=' + str(small) + ' per img':>16}")
    for method, options, kind, limit in rows:
        name = method + "".join(f" {k}={v}" for k, v in options.items())
        time_small, ratio_small = measure(model, method, options, kind, small, args.repeats)
        time_large, ratio_large = measure(model, method, options, kind, large, args.repeats)
        per_image = (time_large / large) / (time_small / small)
        print(f"{name:<42} {kind:<17} {time_small / small:11.3f} "
              f"{verdict(ratio_small, limit):>13} {verdict(ratio_large, limit):>13} "
              f"{verdict(per_image, BATCH_TARGET):>16}", flush=True)
    print(f"Targets: attention/rollout <= 1.15 x forward; chefer/gmar/legrad <= 1.3 x "
          f"forward+backward; per-image cost at B={large} <= {BATCH_TARGET} x B={small}.")


if __name__ == "__main__":
    main()
