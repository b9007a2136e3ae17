# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Exercises: the ImageNet-A protocol and calibration
#
# In notebook 01, `helpers.predict` scored the model with the official ImageNet-A protocol and
# measured how over-confident it is. Here you write those computations yourself: the 200-class
# prediction and its accuracy, the expected calibration error, and temperature scaling.
#
# **How this works.** Fill in every cell marked `# YOUR CODE HERE`, then run the
# `grader.check(...)` cell below it: it runs that question's *public* checks and tells you which
# fail. Your teacher grades with more checks (hidden, on other inputs), so passing the public
# checks is necessary, not sufficient: follow the definitions exactly. Write the code yourself: a
# function that calls into `helpers` loses the question's points. The written question at the end
# is graded by hand.
#
# **Hand in** this notebook (`.ipynb`), saved after *Kernel → Restart & Run All*.

# %% [raw]
# # ASSIGNMENT CONFIG
# config_file: otter-config.yml
# name: 01_classify_imagenet_a

# %%
# Colab bootstrap: clone the course, install what Colab lacks (never torch). Elsewhere: nothing.
import os, subprocess, sys
if "google.colab" in sys.modules and not os.path.isdir("/content/course"):
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/explaining-vits/vit-explain-course", "/content/course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "lxt==2.1"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "/content/course/requirements.txt"], check=True)
if "google.colab" in sys.modules:
    os.chdir("/content/course/notebooks")
    sys.path.insert(0, "/content/course")

# %%
# Otter-Grader: grader.check("name") runs a question's public checks. On Colab this cell first
# installs otter-grader and builds the checks from the course (about a minute).
from helpers.assignments import grader_for

grader = grader_for("01_classify_imagenet_a")

# %% [markdown]
# Inputs to try your code on: the logits a 1000-way ImageNet head could give for 8 images of
# ImageNet-A, each image's true class (a head index) and the 200 ImageNet-A classes as indices of
# that head (the official table, in dataset order).

# %%
import torch

from helpers import fixtures

logits, labels, head_indices = fixtures.imagenet_a_logits(n=8, seed=0)
print(f"logits {tuple(logits.shape)}, {len(head_indices)} ImageNet-A classes, "
      f"e.g. head indices {head_indices[:5]}, labels {labels.tolist()}")

# %% [raw]
# # BEGIN QUESTION
# name: protocol
# points: [1, 2]

# %% [markdown]
# ## Q1 · The 200-class protocol and top-1 accuracy (3 points)
#
# ImageNet-A scores a 1000-way ImageNet model on its 200 classes only: the prediction is the
# arg-max over the logits of those 200 classes (Hendrycks et al. 2021), never one of the 800 others.
# Write
#
# - `protocol_predictions(logits, head_indices)`: `logits` `[B, K]`, `head_indices` the dataset's
#   classes as indices of the head → each image's prediction as a **head index** (a LongTensor
#   `[B]`, every value one of `head_indices`);
# - `top1_accuracy(predictions, labels)`: the fraction of predictions equal to the labels, a Python
#   `float` in `[0, 1]`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def protocol_predictions(logits, head_indices):
    """Arg-max over the dataset's classes only, returned as head indices: LongTensor [B]."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    head = torch.as_tensor(list(head_indices))
    return head[logits[:, head].argmax(dim=1)]
    # END SOLUTION


def top1_accuracy(predictions, labels):
    """Fraction of predictions equal to the labels: a float in [0, 1]."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    return float((torch.as_tensor(predictions) == torch.as_tensor(labels)).float().mean())
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_a_small_example(protocol_predictions, top1_accuracy):
    import torch
    from helpers import fixtures
    fixtures.assert_own_code(protocol_predictions)
    fixtures.assert_own_code(top1_accuracy)
    logits = torch.tensor([[0.0, 5.0, 1.0, 2.0, 9.0],
                           [3.0, 0.0, 4.0, 1.0, 0.0]])
    predictions = protocol_predictions(logits, [1, 3])
    assert isinstance(predictions, torch.Tensor), "return a tensor of head indices"
    assert predictions.tolist() == [1, 3], (
        f"with head_indices [1, 3] the predictions are [1, 3] (class 4 is not a dataset class), "
        f"got {predictions.tolist()}")
    accuracy = top1_accuracy(torch.tensor([1, 3]), torch.tensor([1, 1]))
    assert isinstance(accuracy, float) and abs(accuracy - 0.5) < 1e-12, \
        f"top1_accuracy([1, 3], [1, 1]) should be 0.5 (a float), got {accuracy!r}"

test_a_small_example(protocol_predictions, top1_accuracy)


# %%
# HIDDEN
def test_imagenet_a_protocol_matches_helpers(protocol_predictions, top1_accuracy):
    import torch
    from helpers import fixtures
    from helpers.predict import masked_logits
    logits, labels, head = fixtures.imagenet_a_logits(n=64, seed=7)
    expected = torch.tensor(head)[masked_logits(logits, head).argmax(dim=1)]
    assert not torch.equal(expected, logits.argmax(dim=1)), "fixture: protocols must disagree"
    predictions = protocol_predictions(logits, head)
    assert torch.equal(torch.as_tensor(predictions).long(), expected), \
        "predictions differ from the masked arg-max over the 200 classes"
    expected_accuracy = float((expected == labels).float().mean())
    assert abs(top1_accuracy(predictions, labels) - expected_accuracy) < 1e-9

test_imagenet_a_protocol_matches_helpers(protocol_predictions, top1_accuracy)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: ece
# points: [1, 1, 1]

# %% [markdown]
# ## Q2 · Expected calibration error (3 points)
#
# Guo et al. (2017): split `[0, 1]` into `n_bins` equal-width bins; a confidence `c` falls into bin
# `m` (`m = 0 … n_bins − 1`) if `m / n_bins < c ≤ (m + 1) / n_bins` — a bin holds its upper edge —
# and `c = 0` falls into bin 0. Then
#
# `ECE = Σ_m (|B_m| / n) · |acc(B_m) − conf(B_m)|`,
#
# with `acc` the fraction correct and `conf` the mean confidence of the `|B_m|` predictions in bin
# `m`, `n` the number of predictions; empty bins add nothing. Write
# `expected_calibration_error(confidence, correct, n_bins=10)` (1-D tensors: the top-1 confidence
# and whether the prediction was right) → a `float`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def expected_calibration_error(confidence, correct, n_bins=10):
    """ECE over n_bins equal-width confidence bins (upper edges inclusive): a float."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    confidence = torch.as_tensor(confidence, dtype=torch.float64)
    correct = torch.as_tensor(correct, dtype=torch.float64)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    which = torch.bucketize(confidence, edges[1:-1])  # m with edges[m] < c <= edges[m + 1]
    error = 0.0
    for m in range(n_bins):
        inside = which == m
        if inside.any():
            gap = (correct[inside].mean() - confidence[inside].mean()).abs()
            error += float(inside.double().mean() * gap)
    return error
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_two_small_examples(expected_calibration_error):
    import torch
    from helpers import fixtures
    fixtures.assert_own_code(expected_calibration_error)
    calibrated = expected_calibration_error(torch.full((10,), 0.9, dtype=torch.float64), torch.arange(10) < 9)
    assert isinstance(calibrated, float) and abs(calibrated) < 1e-9, \
        f"90 % confident and 9 of 10 right is perfectly calibrated (ECE 0), got {calibrated!r}"
    over = expected_calibration_error(torch.full((4,), 0.95, dtype=torch.float64), torch.tensor([1, 0, 0, 0]))
    assert abs(over - 0.7) < 1e-9, f"95 % confident, 1 of 4 right: ECE 0.7, got {over!r}"

test_two_small_examples(expected_calibration_error)


# %%
# HIDDEN
def test_matches_helpers_on_random_predictions(expected_calibration_error):
    import torch
    from helpers.predict import calibration_bins
    generator = torch.Generator().manual_seed(3)
    confidence = torch.rand(500, generator=generator, dtype=torch.float64) ** 0.5
    correct = torch.rand(500, generator=generator, dtype=torch.float64) < confidence ** 2
    for n_bins in (10, 15):
        expected = calibration_bins(confidence.numpy(), correct.numpy(), n_bins)[1]
        got = expected_calibration_error(confidence, correct, n_bins)
        assert abs(got - expected) < 1e-9, f"ECE with {n_bins} bins: {got!r}, expected {expected:.6f}"

test_matches_helpers_on_random_predictions(expected_calibration_error)


# %%
# HIDDEN
def test_bin_edges_belong_to_the_lower_bin(expected_calibration_error):
    import torch
    from helpers.predict import calibration_bins
    confidence = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 0.3, 0.6, 0.5], dtype=torch.float64)
    correct = torch.tensor([0, 1, 0, 1, 1, 0, 1, 1], dtype=torch.bool)
    expected = calibration_bins(confidence.numpy(), correct.numpy(), 4)[1]
    got = expected_calibration_error(confidence, correct, 4)
    assert abs(got - expected) < 1e-9, f"ECE with confidences on the bin edges: {got!r}"

test_bin_edges_belong_to_the_lower_bin(expected_calibration_error)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: temperature
# points: [1, 2]

# %% [markdown]
# ## Q3 · Temperature scaling (3 points)
#
# Guo et al. (2017) calibrate a classifier after training by dividing its logits by one
# temperature `T > 0` before the softmax, `T` chosen to minimise the negative log-likelihood (NLL)
# of the true labels on held-out data. Write
#
# - `temperature_scaled(logits, temperature)`: `softmax(logits / T)` over the last axis → `[B, K]`;
# - `best_temperature(logits, labels, temperatures)`: the `T` of the list `temperatures` with the
#   lowest mean NLL `−log p_T(label)` (`labels`: class positions `0 … K−1`); on a tie the first.
#
# The try inputs below are over-confident by construction (their logits are 2.5 × too large).

# %%
calibration_logits, calibration_labels = fixtures.overconfident_logits(n=500, seed=0)
temperatures = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]

# %% [raw]
# # BEGIN SOLUTION

# %%
def temperature_scaled(logits, temperature):
    """softmax(logits / T) over the last axis."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    return (logits / temperature).softmax(dim=-1)
    # END SOLUTION


def best_temperature(logits, labels, temperatures):
    """The temperature of the list with the lowest mean negative log-likelihood (first on ties)."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    losses = [float(-temperature_scaled(logits, t).gather(1, labels[:, None]).log().mean())
              for t in temperatures]
    return temperatures[losses.index(min(losses))]
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_scaling_and_a_temperature_from_the_list(temperature_scaled, best_temperature):
    import torch
    from helpers import fixtures
    fixtures.assert_own_code(temperature_scaled)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    for t in (1.0, 2.0, 0.5):
        fixtures.assert_close(temperature_scaled(logits, t), (logits / t).softmax(-1), 1e-6,
                              f"temperature_scaled(logits, {t})")
    z, y = fixtures.overconfident_logits(n=200, seed=1)
    chosen = best_temperature(z, y, [0.5, 1.0, 2.0, 3.0])
    assert chosen in (0.5, 1.0, 2.0, 3.0), f"best_temperature must return one of the list, got {chosen!r}"

test_scaling_and_a_temperature_from_the_list(temperature_scaled, best_temperature)


# %%
# HIDDEN
def test_minimises_nll_and_keeps_the_accuracy(temperature_scaled, best_temperature):
    import torch
    import torch.nn.functional as F
    from helpers.predict import calibration_bins
    from helpers import fixtures
    fixtures.assert_own_code(best_temperature)
    z, y = fixtures.overconfident_logits(n=800, classes=8, temperature=2.5, seed=3)
    grid = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
    losses = [float(F.cross_entropy(z / t, y)) for t in grid]
    expected = grid[losses.index(min(losses))]
    chosen = best_temperature(z, y, grid)
    assert chosen == expected, f"best_temperature chose {chosen!r}; the lowest NLL is at {expected}"
    scaled = temperature_scaled(z, chosen)
    assert torch.equal(scaled.argmax(1), z.argmax(1)), "scaling must not change any prediction"
    before = calibration_bins(z.softmax(1).amax(1).numpy(), (z.argmax(1) == y).numpy())[1]
    after = calibration_bins(scaled.amax(1).numpy(), (scaled.argmax(1) == y).numpy())[1]
    assert after < before, "the fitted temperature should lower the ECE of these logits"

test_minimises_nll_and_keeps_the_accuracy(temperature_scaled, best_temperature)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: calibration_reading
# manual: true
# points: 3

# %% [markdown]
# ## Q4 · Reading a reliability diagram (3 points, graded by hand)
#
# The cell below draws the reliability diagram of the try logits before and after temperature
# scaling (with `helpers`: the best temperature of the list by NLL). In 4–8 sentences:
# (a) read the left diagram — what does a bar *below* the diagonal mean, and is this model over- or
# under-confident? (b) Why can dividing the logits by any `T > 0` never change a top-1 prediction,
# hence the accuracy? (c) In notebook 01 the tiny model was ~99 % right with a small ECE on its
# standard scenes but ~50 % right with an ECE around 30 % on the hard split. Would a temperature
# fitted on the *standard* split calibrate the *hard* one? Why (not)?

# %% tags=["otter_ignore"]
# For the written question only (otter skips this cell when it grades).
import matplotlib.pyplot as plt
import torch.nn.functional as F

from helpers import predict, viz

nll = [float(F.cross_entropy(calibration_logits / t, calibration_labels)) for t in temperatures]
fitted = temperatures[nll.index(min(nll))]
figure, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
for ax, t, name in zip(axes, (1.0, fitted), ("raw logits (T = 1)", f"temperature-scaled (T = {fitted})")):
    probabilities = (calibration_logits / t).softmax(-1)
    confidence, predicted = probabilities.max(-1)
    bins, ece = predict.calibration_bins(confidence.numpy(), (predicted == calibration_labels).numpy())
    viz.reliability_diagram(ax, bins, ece, title=name)
plt.show()

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# **Model answer.** (a) A bar below the diagonal is a bin whose accuracy is lower than the
# confidence its predictions claim; here nearly every bin lies below it and the mass sits at high
# confidence: the model is over-confident (ECE of tens of percent before scaling, a few after).
# (b) `softmax(z / T)` is a monotone transformation of `z` for every `T > 0`: the order of the
# logits, hence the arg-max, is unchanged; only the confidences are sharpened (`T < 1`) or softened
# (`T > 1`). (c) Not in general: one temperature fitted on the standard split (where the model is
# right and rightly confident, `T ≈ 1`) leaves the hard split's confidences almost as they are,
# while its mistakes there are made with high confidence; calibration does not transfer across a
# distribution shift (calibrating on the hard split would need hard-split labels).
#
# **Rubric (3 points).**
# - 1 pt (a): below the diagonal = accuracy < confidence, and "over-confident". ½ pt for one of the two.
# - 1 pt (b): dividing by a positive constant keeps the order of the logits (softmax is monotone),
#   so the arg-max and the accuracy are unchanged. ½ pt for "the arg-max does not change" without why.
# - 1 pt (c): no — the temperature fitted where the model is calibrated is ≈ 1 and the shift to the
#   hard split changes how wrong the confidences are; mentions distribution shift or the need for
#   held-out data from the same distribution. ½ pt for a bare "no" with a partial reason.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Before you hand in
#
# Run *Kernel → Restart & Run All*, check that every check above passes, answer the written
# question, save, and hand in this `.ipynb`.
