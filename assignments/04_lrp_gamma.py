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
# # 04 · Exercises: the Gamma rule and conservation
#
# In notebook 04, `helpers.explain(..., "attnlrp", preset=...)` propagated relevance through the
# whole ViT with Gamma rules. Here you write the Gamma rule for one Linear layer — the rule AttnLRP
# applies to the MLPs and the classifier — and find out what breaks conservation.
#
# **How this works.** Fill in every cell marked `# YOUR CODE HERE`, then run the
# `grader.check(...)` cell below it: it runs that question's *public* checks and tells you which
# fail. Your teacher grades with more checks (hidden, on other inputs), so passing the public
# checks is necessary, not sufficient: follow the formulas exactly. Write the code yourself: a
# function that calls into `helpers` loses the question's points. The written question at the end
# is graded by hand.
#
# **Hand in** this notebook (`.ipynb`), saved after *Kernel → Restart & Run All*.

# %% [raw]
# # ASSIGNMENT CONFIG
# config_file: otter-config.yml
# name: 04_lrp_gamma

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

grader = grader_for("04_lrp_gamma")

# %% [markdown]
# Inputs to try your code on: one Linear layer `y = x Wᵀ + b` with 6 inputs and 4 outputs, a batch
# of 3 signed inputs `x`, and the relevance `R` of each output (float64).

# %%
import torch

from helpers import fixtures

x, weight, bias, relevance = fixtures.linear_case(seed=0)
print(f"x {tuple(x.shape)}, weight {tuple(weight.shape)}, bias {tuple(bias.shape)}, "
      f"relevance {tuple(relevance.shape)}")

# %% [raw]
# # BEGIN QUESTION
# name: gamma_rule
# points: [1, 2, 1]

# %% [markdown]
# ## Q1 · The Gamma rule for one Linear layer (4 points)
#
# LRP redistributes each output's relevance `R_j` to the inputs in proportion to their
# contributions `z_ij = x_i w_ji`. The Gamma rule (Montavon et al. 2019) favours the contributions
# that have the output's sign by adding `γ` times them. With `(·)⁺ = max(·, 0)`, `(·)⁻ = min(·, 0)`
# (so `x = x⁺ + x⁻`, `W = W⁺ + W⁻`, `b = b⁺ + b⁻`), for inputs of either sign (zennit's form, the
# one `helpers` uses):
#
# - `y = x Wᵀ + b`;
# - `c⁺ = R / (y + γ (x⁺ W⁺ᵀ + x⁻ W⁻ᵀ + b⁺))` where `y > 0`, else 0;
#   `c⁻ = R / (y + γ (x⁺ W⁻ᵀ + x⁻ W⁺ᵀ + b⁻))` where `y < 0`, else 0 (both `[B, out]`);
# - `R_in = x⁺ ⊙ (c⁺ (W + γW⁺) + c⁻ (W + γW⁻)) + x⁻ ⊙ (c⁺ (W + γW⁻) + c⁻ (W + γW⁺))` → `[B, in]`.
#
# Write `gamma_relevance(x, weight, bias, relevance, gamma)` (`weight` `[out, in]`, `bias` `[out]`
# or `None`). With `γ = 0` it is LRP-0: `R_in,i = Σ_j x_i w_ji R_j / y_j`. A negative input must
# use the *other* signs of `W`: that is what the `x⁻` term is for.

# %% [raw]
# # BEGIN SOLUTION

# %%
def gamma_relevance(x, weight, bias, relevance, gamma):
    """Gamma-rule relevance [B, in] of the inputs of y = x Wᵀ + b, given the outputs' relevance."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    b = torch.zeros(weight.shape[0], dtype=x.dtype) if bias is None else bias
    y = x @ weight.T + b
    x_pos, x_neg = x.clamp(min=0), x.clamp(max=0)
    w_pos, w_neg = weight.clamp(min=0), weight.clamp(max=0)
    denominator_pos = y + gamma * (x_pos @ w_pos.T + x_neg @ w_neg.T + b.clamp(min=0))
    denominator_neg = y + gamma * (x_pos @ w_neg.T + x_neg @ w_pos.T + b.clamp(max=0))
    c_pos = torch.where(y > 0, relevance / denominator_pos, 0.0)
    c_neg = torch.where(y < 0, relevance / denominator_neg, 0.0)
    favour_pos, favour_neg = weight + gamma * w_pos, weight + gamma * w_neg
    return (x_pos * (c_pos @ favour_pos + c_neg @ favour_neg)
            + x_neg * (c_pos @ favour_neg + c_neg @ favour_pos))
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_lrp0_and_gamma_one_on_the_try_inputs(gamma_relevance):
    from helpers import fixtures
    fixtures.assert_own_code(gamma_relevance)
    x, weight, bias, relevance = fixtures.linear_case(seed=0)
    y = x @ weight.T + bias
    lrp0 = x * ((relevance / y) @ weight)
    fixtures.assert_close(gamma_relevance(x, weight, bias, relevance, 0.0), lrp0, 1e-5,
                          "gamma_relevance(..., gamma=0) (LRP-0)")
    fixtures.assert_close(gamma_relevance(x, weight, bias, relevance, 1.0),
                          fixtures.gamma_reference(x, weight, bias, relevance, 1.0), 1e-5,
                          "gamma_relevance(..., gamma=1)")

test_lrp0_and_gamma_one_on_the_try_inputs(gamma_relevance)


# %%
# HIDDEN
def test_matches_helpers_for_every_gamma(gamma_relevance):
    from helpers import fixtures
    x, weight, bias, relevance = fixtures.linear_case(seed=71, batch=4, inputs=7, outputs=5)
    for gamma in (0.1, 0.5, 2.0, 10.0, 100.0):
        fixtures.assert_close(gamma_relevance(x, weight, bias, relevance, gamma),
                              fixtures.gamma_reference(x, weight, bias, relevance, gamma), 1e-5,
                              f"gamma_relevance(..., gamma={gamma})")

test_matches_helpers_for_every_gamma(gamma_relevance)


# %%
# HIDDEN
def test_conserves_relevance_without_bias(gamma_relevance):
    import torch
    from helpers import fixtures
    x, weight, _, relevance = fixtures.linear_case(seed=72, batch=5, inputs=9, outputs=6, bias=False)
    for gamma in (0.25, 2.0):
        total = gamma_relevance(x, weight, None, relevance, gamma).sum(1)
        assert torch.allclose(total, relevance.sum(1), rtol=1e-9, atol=1e-12), \
            f"without a bias, Σ R_in must equal Σ R_out (gamma={gamma})"

test_conserves_relevance_without_bias(gamma_relevance)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: conservation
# points: [1, 2]

# %% [markdown]
# ## Q2 · What breaks conservation in a ViT? (3 points)
#
# LRP *conserves* relevance when every layer passes all of it on: then the pixel relevance sums to
# the logit it explains. In a ViT, constants that do not depend on the pixels take a share on the
# way: every **bias** (of every Linear and LayerNorm layer), the **CLS token** and the **position
# embeddings**. Write `without_constants(model)`: a *copy* of the model (the original must stay
# unchanged) in which all of these are set to zero. The check explains the copy with
# `helpers.explain(..., "attnlrp")` and verifies that the pixel relevance sums to the logit.
#
# Hint: `copy.deepcopy`, `model.named_parameters()`, and `torch.no_grad()` around in-place zeroing.

# %% [raw]
# # BEGIN SOLUTION

# %%
import copy


def without_constants(model):
    """A copy of model with every bias, the CLS token and the position embeddings set to zero."""
    # YOUR CODE HERE
    # BEGIN SOLUTION
    stripped = copy.deepcopy(model)
    with torch.no_grad():
        for name, parameter in stripped.named_parameters():
            if name.endswith("bias") or "cls_token" in name or "position_embeddings" in name:
                parameter.zero_()
    return stripped
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_conserves_on_the_try_model(without_constants):
    import torch
    import helpers
    from helpers import fixtures
    fixtures.assert_own_code(without_constants)
    model = fixtures.tiny_vit(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stripped = without_constants(model)
    assert stripped is not model, "return a copy, not the model itself"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()), \
        "the original model changed: zero the parameters of a copy"
    pixel_values = fixtures.images(model, n=3)
    with torch.no_grad():
        logits = stripped(pixel_values=pixel_values).logits
    target = logits.argmax(1)
    logit = logits.gather(1, target[:, None])[:, 0]
    total = helpers.explain(stripped, pixel_values, "attnlrp", target=target).flatten(1).sum(1)
    gap = float(((total - logit).abs() / logit.abs().clamp(min=1.0)).max())
    assert gap < 1e-4, f"pixel relevance misses the logit by {gap:.1e}: a constant is left"

test_conserves_on_the_try_model(without_constants)


# %%
# HIDDEN
def test_conserves_with_gamma_presets_on_another_model(without_constants):
    import torch
    import helpers
    from helpers import fixtures
    model = fixtures.tiny_vit(seed=73, layers=3, heads=4, image_size=40, hidden=32)
    stripped = without_constants(model)
    pixel_values = fixtures.images(model, n=3, seed=74)
    with torch.no_grad():
        logits = stripped(pixel_values=pixel_values).logits
    target = logits.argmax(1)
    logit = logits.gather(1, target[:, None])[:, 0]
    for preset in ("balanced", "very_aggressive"):
        total = helpers.explain(stripped, pixel_values, "attnlrp", target=target,
                                preset=preset).flatten(1).sum(1)
        gap = float(((total - logit).abs() / logit.abs().clamp(min=1.0)).max())
        assert gap < 1e-4, f"{preset}: pixel relevance misses the logit by {gap:.1e}"

test_conserves_with_gamma_presets_on_another_model(without_constants)


# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: gamma_reading
# manual: true
# points: 3

# %% [markdown]
# ## Q3 · Reading the Gamma presets (3 points, graded by hand)
#
# The cell below explains the trained tiny model of the offline world on two hard scenes with
# AttnLRP at pixel resolution for three presets (no Gamma, balanced, very aggressive; red =
# evidence for the predicted class, blue = against), and prints for each preset the share of the
# relevance that is negative and the pixel sum divided by the logit *on the original model*.
# In 4–8 sentences: (a) what happens to the blue regions as `γ` grows, and what in the formula of
# Q1 makes it so? (b) The pixel sum is not the logit here: where did the rest go, and how would
# you show it (Q2)? (c) Which preset would you show a colleague, and what would you warn them
# about?

# %% tags=["otter_ignore"]
# For the written question only (otter skips this cell when it grades).
import matplotlib.pyplot as plt

import helpers
from helpers import viz

trained = fixtures.trained_tiny_vit()
scene_pixels, scene_masks, scene_labels, class_names = fixtures.scenes(n=2, split="hard", seed=2)
with torch.no_grad():
    scene_logits = trained(pixel_values=scene_pixels).logits
predicted = scene_logits.argmax(1)
predicted_logit = scene_logits.gather(1, predicted[:, None])[:, 0]
presets = ("none", "balanced", "very_aggressive")
pixel_maps = {preset: helpers.explain(trained, scene_pixels, "attnlrp", target=predicted,
                                      preset=preset, resolution="pixel") for preset in presets}
figure, _ = viz.heatmap_grid(
    scene_pixels, torch.stack([pixel_maps[p] for p in presets], dim=1), list(presets),
    row_labels=[f"true: {class_names[t]}\npred: {class_names[p]}" for t, p in zip(scene_labels, predicted)],
    signed=True, title="AttnLRP relevance of the predicted class, three Gamma presets")
plt.show()
for preset, maps in pixel_maps.items():
    negative = (maps.clamp(max=0).abs().flatten(1).sum(1) / maps.abs().flatten(1).sum(1)).mean()
    kept = (maps.flatten(1).sum(1) / predicted_logit).mean()
    print(f"{preset:>16}: negative share {negative:.2f}, pixel sum / logit {kept:.2f}")

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# **Model answer.** (a) As `γ` grows the blue (negative) relevance shrinks and the maps become
# mostly red and smoother: the rule adds `γ` times the contributions with the output's sign to
# both the numerator and the denominator, so for large `γ` the share of each input tends to its
# share of the *positive* (for `y > 0`) contributions alone and contradicting evidence fades.
# (b) The biases, the CLS token and the position embeddings receive part of the relevance (they
# are inputs of the layers too but not pixels); zeroing them (Q2's `without_constants`) makes the
# pixel sum equal the logit, which proves where the rest went. The Gamma rule itself also leaks
# relevance to the biases. (c) A moderate preset (balanced) is usually the readable compromise;
# warn that large `γ` hides negative evidence (it is no longer the gradient × input of the model),
# and that colours are normalised per image, so intensities do not compare across images.
#
# **Rubric (3 points).**
# - 1 pt (a): less negative relevance with larger `γ`, explained by the `γ`-weighted same-sign
#   contributions in the rule. ½ pt for the observation without the reason.
# - 1 pt (b): names the constants (biases, CLS token, position embeddings) and the stripped-model
#   test. ½ pt for one of the two.
# - 1 pt (c): a justified choice plus one honest caveat (hidden negative evidence, per-image colour
#   scale, not the model's gradient). ½ pt for a choice without a caveat.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Before you hand in
#
# Run *Kernel → Restart & Run All*, check that every check above passes, answer the written
# question, save, and hand in this `.ipynb`.
