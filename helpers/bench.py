"""Benchmark every explanation method against its floor, with the peers side by side: ``make bench``.

    python -m helpers.bench [--threads 1 2] [--batches 1 8] [--repeats 5] [--csv PATH] [--quick]

Model: a random-weight ``ViTForImageClassification`` with ViT-B/16's configuration (``ViTConfig()``
defaults: 224 px, patch 16, 12 layers, 12 heads, width 768; eager attention, eval mode) with its
parameters **frozen** (``requires_grad=False``, as in inference); every row runs on that model.
A method's cost is a ratio to the model's own cost on the same batch (its floor):

- ``attention`` and ``rollout`` against one forward pass (no grad);
- ``chefer``, ``gmar``, ``legrad``, ``attnlrp`` (presets) and the peers against one forward +
  backward to the input (``torch.autograd.grad`` of the summed target logits; "fb").

Peers, where pip installs them, on the same weights copied into torchvision's ``vit_b_16``
architecture (:func:`torchvision_copy`), which is the model their documented recipes support:

- ``lxt 2.1 + zennit 0.5.1``: lxt's torchvision-ViT recipe (``monkey_patch`` of
  ``torchvision.models.vision_transformer`` + ``monkey_patch_zennit`` + zennit's Gamma composite
  on Conv2d/Linear) -- the same maps as ``attnlrp`` with the same preset (the relative difference
  is measured on the first batch and written to the CSV);
- ``torchcam 0.5.0`` ``LeGrad`` over all blocks, scoring the CLS token through the final LayerNorm
  and the head (``score_projection``) -- the same maps as ``legrad``. torchcam's LeGrad hooks
  ``nn.MultiheadAttention``, so it cannot run on a Hugging Face ViT.

Timing: for each batch size (the small one first) and thread count, every row runs once to warm
up; then ``--repeats`` rounds, in each of which every method runs sandwiched between two runs of
its floor (floor, method, floor, method, ...), so each ratio compares runs seconds apart and a
machine whose load drifts still gives fair ratios. A row's ratio is the median over rounds of method time / mean of
the two adjacent floor times; s/img is the median method time over the batch size. The table is
printed and written to ``figures/bench/costs.csv`` (``load_costs()`` reads it back as a pandas
DataFrame), rewritten after each setting, so a run cut short leaves the settings it finished;
header lines starting with ``#`` record the machine, the load and the settings.
Random weights: timings only, no explanation quality. Nothing here is a test: no wall time is
asserted anywhere in ``make test``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from helpers.methods import explain

FORWARD, FORWARD_BACKWARD = "forward", "forward+backward"
OURS = "helpers"
LXT = "lxt 2.1 + zennit 0.5.1 (torchvision ViT)"
TORCHCAM = "torchcam 0.5.0 (torchvision ViT)"
CSV_PATH = Path(__file__).resolve().parent.parent / "figures" / "bench" / "costs.csv"
COLUMNS = ["method", "variant", "implementation", "floor", "batch", "threads", "ratio",
           "ratio_min", "ratio_max", "seconds_per_image", "repeats", "max_rel_diff"]
TARGETS = {  # (method, floor) -> the cost ratio the course aims at (printed, never asserted)
    ("attention", FORWARD): 1.15, ("rollout", FORWARD): 1.15, ("chefer", FORWARD_BACKWARD): 1.3,
    ("gmar", FORWARD_BACKWARD): 1.3, ("legrad", FORWARD_BACKWARD): 1.3,
}
ATTNLRP_TARGETS = {"none": 1.2}  # every Gamma preset: 1.8
ATTNLRP_GAMMA_TARGET = 1.8


@dataclass(frozen=True)
class Row:
    """One benchmarked method: ours (``explain`` options) or a peer (a runner factory)."""

    method: str
    options: dict = field(default_factory=dict)
    floor: str = FORWARD_BACKWARD
    implementation: str = OURS

    @property
    def variant(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.options.items())

    @property
    def name(self) -> str:
        owner = "" if self.implementation == OURS else f" [{self.implementation.split(' (')[0]}]"
        return f"{self.method} {self.variant}".strip() + owner

    @property
    def target(self):
        if self.implementation != OURS:
            return None
        if self.method == "attnlrp":
            preset = self.options.get("preset", "none")
            return ATTNLRP_TARGETS.get(preset, ATTNLRP_GAMMA_TARGET)
        return TARGETS.get((self.method, self.floor))


ROWS = [
    Row("attention", floor=FORWARD),
    Row("rollout", floor=FORWARD),
    Row("rollout", {"discard_ratio": 0.9, "head_fusion": "max"}, floor=FORWARD),
    Row("chefer"),
    Row("gmar"),
    Row("legrad"),
    Row("attnlrp", {"preset": "none"}),
    Row("attnlrp", {"preset": "balanced"}),
    Row("attnlrp", {"preset": "very_aggressive"}),
]
PEERS = [
    Row("attnlrp", {"preset": "balanced"}, implementation=LXT),
    Row("legrad", implementation=TORCHCAM),
]


# ------------------------------------------------------------------------------- models
def vit_b16(seed: int = 0):
    """A random-weight ViT-B/16-shaped classifier (eager attention, eval mode, frozen)."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    model = ViTForImageClassification(ViTConfig(attn_implementation="eager")).eval()
    return model.requires_grad_(False)


def tiny_vit(seed: int = 0):
    """A small random ViT (32 px, patch 8, width 32, 2 layers) for ``--quick`` smoke runs."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=64, num_labels=5,
                       attn_implementation="eager")
    return ViTForImageClassification(config).eval().requires_grad_(False)


def torchvision_copy(model):
    """torchvision's ``VisionTransformer`` holding a HF ``ViTForImageClassification``'s weights.

    The two architectures are the same (pre-norm blocks, CLS token, learned position embeddings,
    head on the final LayerNorm of the CLS token), so the logits agree to float precision.
    """
    from torchvision.models import vision_transformer

    config = model.config
    copy = vision_transformer.VisionTransformer(
        image_size=config.image_size, patch_size=config.patch_size,
        num_layers=config.num_hidden_layers, num_heads=config.num_attention_heads,
        hidden_dim=config.hidden_size, mlp_dim=config.intermediate_size,
        num_classes=config.num_labels, norm_layer=partial(nn.LayerNorm, eps=config.layer_norm_eps),
    ).eval()
    vit = model.vit
    with torch.no_grad():
        copy.conv_proj.load_state_dict(vit.embeddings.patch_embeddings.projection.state_dict())
        copy.class_token.copy_(vit.embeddings.cls_token)
        copy.encoder.pos_embedding.copy_(vit.embeddings.position_embeddings)
        for block, layer in zip(copy.encoder.layers, vit.layers):
            attention = layer.attention
            projections = (attention.q_proj, attention.k_proj, attention.v_proj)
            block.self_attention.in_proj_weight.copy_(torch.cat([p.weight for p in projections]))
            block.self_attention.in_proj_bias.copy_(torch.cat([p.bias for p in projections]))
            block.self_attention.out_proj.load_state_dict(attention.o_proj.state_dict())
            block.ln_1.load_state_dict(layer.layernorm_before.state_dict())
            block.ln_2.load_state_dict(layer.layernorm_after.state_dict())
            block.mlp[0].load_state_dict(layer.mlp.fc1.state_dict())
            block.mlp[3].load_state_dict(layer.mlp.fc2.state_dict())
        copy.encoder.ln.load_state_dict(vit.layernorm.state_dict())
        copy.heads.head.load_state_dict(model.classifier.state_dict())
    return copy.requires_grad_(any(p.requires_grad for p in model.parameters()))


# -------------------------------------------------------------------------------- peers
def _patched_by_lxt():
    from zennit.core import BasicHook

    return (nn.LayerNorm, nn.GELU, nn.MultiheadAttention, BasicHook)


@contextmanager
def restored_classes(classes=None):
    """Undo lxt's process-wide class patches (and zennit's ``BasicHook`` patch) on exit."""
    classes = _patched_by_lxt() if classes is None else classes
    saved = {cls: dict(vars(cls)) for cls in classes}
    try:
        yield
    finally:
        for cls, attributes in saved.items():
            for name in set(vars(cls)) - set(attributes):
                delattr(cls, name)
            for name, value in attributes.items():
                if vars(cls).get(name, None) is not value:
                    setattr(cls, name, value)
        changed = [cls.__name__ for cls, attributes in saved.items() if dict(vars(cls)) != attributes]
        if changed:
            raise RuntimeError(f"could not restore the classes {changed} after lxt's patches")


def lxt_relevance(copy, pixel_values, targets, conv_gamma, lin_gamma):
    """lxt's documented torchvision-ViT recipe with zennit's Gamma: pixel relevance [B, H, W].

    lxt patches classes for the whole process; they are restored on return.
    """
    from torchvision.models import vision_transformer
    from zennit.composites import LayerMapComposite
    from zennit.rules import Gamma

    from helpers.methods.attnlrp import _lxt

    lxt = _lxt()
    inputs = pixel_values.detach().clone().requires_grad_(True)
    with restored_classes():
        lxt.monkey_patch(vision_transformer)
        lxt.monkey_patch_zennit()
        rules = [(nn.Conv2d, Gamma(conv_gamma)) if conv_gamma is not None else None,
                 (nn.Linear, Gamma(lin_gamma)) if lin_gamma is not None else None]
        composite = LayerMapComposite([rule for rule in rules if rule is not None])
        with composite.context(copy):
            logits = copy(inputs)
            (gradient,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), inputs)
    return (inputs * gradient).sum(1).detach()


def torchcam_legrad(copy, pixel_values, targets):
    """torchcam's ``LeGrad`` on every block, scoring the CLS token as the head reads it: [B, h, w]."""
    from torchcam.methods import LeGrad

    def cls_score(tokens):
        return copy.heads(copy.encoder.ln(tokens[:, 0]))

    with LeGrad(copy, list(copy.encoder.layers), score_projection=cls_score) as extractor, \
            torch.enable_grad():
        scores = copy(pixel_values)
        (maps,) = extractor(targets.tolist(), scores, normalized=False)
    return maps.detach()


def _peer_runner(row, copy, pixel_values, targets):
    if row.implementation == LXT:
        from helpers.methods.attnlrp import resolve_gammas

        gammas = resolve_gammas(row.options.get("preset"))
        return partial(lxt_relevance, copy, pixel_values, targets, *gammas)
    if row.implementation == TORCHCAM:
        return partial(torchcam_legrad, copy, pixel_values, targets)
    raise ValueError(f"unknown implementation {row.implementation!r}")


def _ours_runner(row, model, pixel_values, targets, resolution="patch"):
    return partial(explain, model, pixel_values, row.method, target=targets,
                   resolution=resolution, **row.options)


def max_relative_difference(row, model, copy, pixel_values, targets) -> float:
    """How far a peer's maps are from ours with the same options (max over images, relative L2)."""
    if row.implementation == LXT:
        ours = _ours_runner(row, model, pixel_values, targets, resolution="pixel")()
    else:
        ours = _ours_runner(row, model, pixel_values, targets)()
    theirs = _peer_runner(row, copy, pixel_values, targets)()
    per_image = (theirs - ours).flatten(1).norm(dim=1) / ours.flatten(1).norm(dim=1)
    return float(per_image.max())


# ------------------------------------------------------------------------------- timing
def floor_runner(model, pixel_values, targets, kind: str):
    """One forward pass (no grad), or one forward + backward to the input."""
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


def measure(rows, model, copy, batch: int, repeats: int, check_peers: bool = True):
    """One dict per row: median ratio to its floor (sandwiched runs), range, s/img, peer check."""
    generator = torch.Generator().manual_seed(batch)
    size = model.config.image_size
    pixel_values = torch.randn(batch, 3, size, size, generator=generator)
    targets = torch.arange(batch) % model.config.num_labels
    floors = {kind: floor_runner(model, pixel_values, targets, kind)
              for kind in (FORWARD, FORWARD_BACKWARD)}
    runners = [(_ours_runner(row, model, pixel_values, targets) if row.implementation == OURS
                else _peer_runner(row, copy, pixel_values, targets)) for row in rows]
    for run in list(floors.values()) + runners:  # warm-up
        run()
    times = {index: [] for index in range(len(rows))}
    ratios = {index: [] for index in range(len(rows))}
    for _ in range(repeats):
        last = {kind: seconds(floor) for kind, floor in floors.items()}
        for index, (row, run) in enumerate(zip(rows, runners)):
            method_time = seconds(run)
            after = seconds(floors[row.floor])
            times[index].append(method_time)
            ratios[index].append(method_time / ((last[row.floor] + after) / 2))
            last[row.floor] = after
    results = []
    for index, row in enumerate(rows):
        difference = (max_relative_difference(row, model, copy, pixel_values, targets)
                      if check_peers and row.implementation != OURS else float("nan"))
        results.append({
            "method": row.method, "variant": row.variant, "implementation": row.implementation,
            "floor": row.floor, "batch": batch, "ratio": statistics.median(ratios[index]),
            "ratio_min": min(ratios[index]), "ratio_max": max(ratios[index]),
            "seconds_per_image": statistics.median(times[index]) / batch, "repeats": repeats,
            "max_rel_diff": difference,
        })
    return results


# ------------------------------------------------------------------------------ output
def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"


def load_average() -> str:
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def verdict(value: float, target) -> str:
    return f"{value:5.2f}" + ("" if target is None else (" ok" if value <= target else " OVER"))


def write_csv(path: Path, records: list[dict], header: list[str]) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    with open(path, "w") as handle:
        handle.writelines(f"# {line}\n" for line in header)
        frame.to_csv(handle, index=False, float_format="%.4g")


def load_costs(path=CSV_PATH):
    """The table ``make bench`` wrote, as a pandas DataFrame (one row per method/variant/batch/threads).

    Columns: method, variant, implementation (``"helpers"`` or a peer), floor, batch, threads,
    ratio (median cost / floor cost), ratio_min, ratio_max, seconds_per_image, repeats,
    max_rel_diff (peers: relative difference of their maps to ours). ``frame.attrs["header"]``
    holds the run's description (machine, threads, load, date).
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `make bench` to measure the costs.")
    with open(path) as handle:
        header = [line[2:].rstrip("\n") for line in handle if line.startswith("# ")]
    frame = pd.read_csv(path, comment="#", keep_default_na=False, na_values=["nan", ""])
    frame["variant"] = frame["variant"].fillna("")
    frame.attrs["header"] = header
    return frame


def print_table(records: list[dict], rows: list[Row]) -> None:
    batches = sorted({record["batch"] for record in records})
    threads = sorted({record["threads"] for record in records})
    columns = [(t, b) for t in threads for b in batches]
    titles = "".join(f"{f'{t} thr B={b}':>13}" for t, b in columns)
    print(f"\n{'method':<44} {'floor':<17}{titles} {'s/img B=' + str(batches[0]):>10}  same maps")
    for row in rows:
        mine = [r for r in records if (r["method"], r["variant"], r["implementation"])
                == (row.method, row.variant, row.implementation)]
        cells = ""
        for t, b in columns:
            match = [r for r in mine if (r["threads"], r["batch"]) == (t, b)]
            cells += f"{verdict(match[0]['ratio'], row.target) if match else '-':>13}"
        first = [r for r in mine if r["batch"] == batches[0]]
        per_image = f"{first[0]['seconds_per_image']:10.3f}" if first else f"{'-':>10}"
        same = "" if row.implementation == OURS else (
            f"  rel. diff {max(r['max_rel_diff'] for r in mine):.1e}" if mine else "")
        print(f"{row.name:<44} {row.floor:<17}{cells} {per_image}{same}")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch.set_num_threads values (default 1 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="default 1 8")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after a warm-up (median)")
    parser.add_argument("--csv", type=Path, default=CSV_PATH, help="where to write the table")
    parser.add_argument("--no-peers", action="store_true", help="only this course's methods")
    parser.add_argument("--only", nargs="+", metavar="METHOD",
                        help="only these methods (and their peers), e.g. --only attnlrp")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a tiny random ViT, one round (timings meaningless)")
    args = parser.parse_args(argv)
    model = tiny_vit() if args.quick else vit_b16()
    repeats = 1 if args.quick else args.repeats
    rows = [row for row in ROWS + ([] if args.no_peers else PEERS)
            if args.only is None or row.method in args.only]
    if not rows:
        raise SystemExit(f"--only {args.only}: no such method; choose from "
                         f"{sorted({row.method for row in ROWS})}")
    copy = torchvision_copy(model) if any(row.implementation != OURS for row in rows) else None
    config = model.config
    header = [
        f"helpers.bench: {'--quick tiny ViT' if args.quick else 'ViT-B/16 config'} "
        f"({config.image_size} px, patch {config.patch_size}, {config.num_hidden_layers} layers, "
        f"width {config.hidden_size}), random weights, parameters frozen, eager attention, CPU, "
        "float32",
        f"machine: {machine_description()}; torch {torch.__version__}",
        f"ratio = median over {repeats} rounds of method time / mean of the two adjacent runs of "
        "its floor (forward, or forward+backward to the input), same batch and threads",
        f"started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{load_average()} (1, 5, 15 min)",
    ]
    print("\n".join(header), flush=True)
    records, start = [], time.perf_counter()
    previous_threads = torch.get_num_threads()
    try:
        for batch in args.batches:  # the small batch first: a cut-short run still covers every row
            checked = {}
            for threads in args.threads:
                torch.set_num_threads(threads)
                for record in measure(rows, model, copy, batch, repeats, check_peers=not checked):
                    key = (record["method"], record["variant"], record["implementation"])
                    checked.setdefault(key, record["max_rel_diff"])  # peers: checked once a batch
                    records.append({**record, "threads": threads, "max_rel_diff": checked[key]})
                progress = (f"{len(records) // len(rows)} of {len(args.batches) * len(args.threads)}"
                            f" settings done after {time.perf_counter() - start:.0f} s, load "
                            f"average {load_average()}")
                print(f"  batch {batch}, {threads} thread(s): {progress}", flush=True)
                write_csv(args.csv, records, header + [progress])
    finally:
        torch.set_num_threads(previous_threads)
    print_table(records, rows)
    print(f"\nTargets (ok/OVER): attention/rollout <= 1.15 x forward; chefer/gmar/legrad <= 1.3 x "
          f"fb; attnlrp without Gamma <= {ATTNLRP_TARGETS['none']} x fb, with a Gamma preset "
          f"<= {ATTNLRP_GAMMA_TARGET} x fb. Peers: same maps as ours (relative difference shown), "
          f"on a torchvision copy of the same weights.\nWrote {args.csv} "
          f"({time.perf_counter() - start:.0f} s).")
    return records


if __name__ == "__main__":
    main()
