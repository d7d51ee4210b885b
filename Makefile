VENV ?= .venv
PY := $(VENV)/bin/python
# OpenBLAS threads fight torch's and make scipy's L-BFGS on tiny problems 4-20x slower.
export OPENBLAS_NUM_THREADS ?= 1
export WANDB_SILENT ?= true
DEMO_DIR ?= runs

.PHONY: venv test test-slow demo bench gpu-check gpu-check-smoke clean

venv: $(VENV)/.installed

# torch==2.13.0 first: the local CPU wheel. An unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The suite on both cores: two pytest-xdist workers (TEST_WORKERS=0: one process). `test` is every case but the
# heavy end-to-end ones marked `slow` (its budget: 10 minutes on 2 cores); `test-slow` runs those, the SLURM
# cases in one worker (they share one scheduler). CI (.ci/run) runs both.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=10 --ignore=tests/benchmarks
test: venv
	$(PYTEST) -m "not slow"

test-slow: venv
	$(PYTEST) -m slow

# One real run per architecture, then the smoke forecast: an LR rule, a 30x ladder of small Transformers on
# fresh Markov tokens, four laws fitted, forecasts pre-registered, the 10x runs trained and scored.
demo: venv
	$(VENV)/bin/harness -m sweep=demo out_dir=$(DEMO_DIR)
	$(VENV)/bin/harness-collect $(DEMO_DIR)/demo
	$(VENV)/bin/harness-forecast scale=smoke out_dir=$(DEMO_DIR)
	@echo "report: $(DEMO_DIR)/forecast/report/report.md"

bench: venv
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) -m pytest tests/benchmarks -q --benchmark-enable -s

# Issue 13's GPU figures (CPU vs GPU, MFU with and without compile, attention, plan memory) on one CUDA GPU,
# ~5 min on an H100/H200 -> reports/gpu_check/gpu_check.json + .md. The smoke target runs it on the CPU.
gpu-check: venv
	$(PY) -m tests.gpu_check --out reports/gpu_check

gpu-check-smoke: venv
	$(PY) -m tests.gpu_check --cpu-smoke --out reports/gpu_check_smoke

clean:
	rm -rf $(VENV) runs outputs multirun reports
