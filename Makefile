# The course's commands. A new user needs only `make run` and `make test`:
# both create the virtual environment they need on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned here, not in requirements.txt (Colab brings its own torch).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
export PYTHONHASHSEED := 0
# Notebooks executed by make (run, test) have no person at the keyboard: no live widgets
# (nbconvert can deadlock on ipywidgets.interact); each explorer draws a static view instead.
export COURSE_BATCH := 1
# glibc's malloc gives large blocks (a batch of images, a layer's activations) their own fresh
# mapping from the kernel and unmaps them when freed, so every forward pass page-faults its
# buffers in again. These settings keep freed memory for reuse instead: in one deletion-curve run
# at batch 128, 1.3 s of system time instead of 10.9 s and 1.5x faster (processes keep their
# peak memory). For the notebooks and tests (make run, make test); harmless where malloc is not glibc's.
run test test-real: export MALLOC_MMAP_THRESHOLD_ := 4294967296
run test test-real: export MALLOC_TRIM_THRESHOLD_ := 4294967296

.PHONY: setup run test test-real bench tiny-model tiny-models figures sync clean lock assignments grade

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS) -c constraints.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps lxt==2.1
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# Record the exact versions of a working environment (run after changing requirements).
lock: setup
	$(PY) -m pip freeze --exclude-editable | grep -v '^lxt' > constraints.txt

# Run the whole course: every notebook, full size, figures into figures/.
# COURSE_WORLD=auto uses ViT-B/16 + ImageNet-A when reachable, else the offline world.
# A re-run that computes the same numbers must change no committed byte: no execution timestamps
# in the cells' metadata, no widget state, streams merged (helpers.strip);
# the figures are reproducible PNGs (helpers.viz.png_bytes), progress bars are off (COURSE_BATCH).
# helpers.run executes two notebooks at a time where neither reads what the other writes (its
# NEEDS), so each computes the same numbers as in a one-by-one run; `make run JOBS=1` runs them
# one by one.
JOBS ?= 2
run: setup
	$(PY) -m helpers.run --jobs $(JOBS) $(NOTEBOOKS)

figures: run

# Unit tests, then every notebook under nbval at CI size: offline, then in the real world
# rehearsed against local stand-ins (test-real).
NBVAL := -m pytest -q --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider
test: setup
	COURSE_WORLD=offline COURSE_SCALE=ci HF_HUB_OFFLINE=1 $(PY) -m pytest tests -q
	COURSE_WORLD=offline COURSE_SCALE=ci HF_HUB_OFFLINE=1 $(PY) $(NBVAL) $(NOTEBOOKS)
	$(MAKE) --no-print-directory test-real

# The real world (ViT-B/16 + ImageNet-A) without the network: tests/standin.py builds hub-cache
# snapshots of google/vit-base-patch16-224 and of the DeiT and DINOv2 models of notebook 06 (small
# dimensions; STANDIN_DIMS=base for the true ones), an ImageNet-A-shaped archive, which the
# notebooks download, verify and extract through the course's own code, and a CIFAR-10-shaped
# dataset folder for notebook 07 ($COURSE_FINETUNE_DATA), all in a temporary folder. Predictions
# run under bfloat16 autocast, as on a GPU.
STANDIN_DIMS ?= small
test-real: setup
	@standin=$$(mktemp -d) && trap 'rm -rf "$$standin"' EXIT && \
	echo "Real world: building the stand-ins ($(STANDIN_DIMS) dimensions)" && \
	$(PY) tests/standin.py "$$standin" --dims $(STANDIN_DIMS) >/dev/null && \
	source "$$standin/env.sh" && \
	COURSE_SCALE=ci COURSE_PRECISION=bf16 $(PY) $(NBVAL) $(NOTEBOOKS)

# Every method's cost against its floor, with the peers (lxt + zennit, torchcam) side by side:
# prints the table and writes figures/bench/costs.csv (README, "Benchmark"). `make bench
# BENCH_ARGS=--quick` is a seconds-long smoke run on a tiny model.
bench: setup
	$(PY) -m helpers.bench $(BENCH_ARGS)

# The teaching kit (README, "For teachers"): from each source assignments/NN_name.ipynb (paired
# with NN_name.py), otter-grader writes assignments/dist/NN_name/student/ (hand out; also zipped),
# autograder/ (solution notebook, tests, autograder zip) and checks that the solutions score full
# marks. `make grade SUBMISSIONS=dir` grades every handed-in notebook of dir with `otter run`
# (no Docker) into dir/grades.csv.
assignments: setup
	$(PY) -m helpers.assignments build

grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder-of-notebooks"; exit 2; }
	@test -d assignments/dist || { echo "no autograders yet: run 'make assignments' first"; exit 2; }
	$(PY) -m helpers.assignments grade "$(SUBMISSIONS)"

# Retrain the tiny offline ViT from scratch (a few minutes on 2 CPU cores).
tiny-model: setup
	$(PY) -m helpers.train_tiny --model vit

# Retrain all three tiny models from scratch: the ViT, then the DeiT (distilled from that ViT) and
# the DINOv2. Each one's manifest.json records its accuracies and how long it took.
tiny-models: tiny-model
	$(PY) -m helpers.train_tiny --model deit
	$(PY) -m helpers.train_tiny --model dinov2

sync: setup
	$(PY) -m helpers.colab
	$(PY) -m jupytext --sync notebooks/*.ipynb assignments/[0-9][0-9]_*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache data/cache figures/_tmp assignments/dist
	find . -name __pycache__ -prune -exec rm -rf {} +
