# Every target sets itself up on a fresh machine: a .venv with the CPU torch first, then agentkit.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.agentkit-installed

.PHONY: setup system vllm test test-heavy test-fast demo bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@# Keep an existing torch; otherwise take the CPU build (a bare `pip install torch` pulls CUDA).
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	@touch $@

# Sandboxing tools from Debian (bubblewrap; podman + runc for the Docker-API backend). Needs root.
system:
	@bash .ci/system-deps.sh

# vLLM for CPU in its own venv (.venv-vllm; VLLM_VENV=DIR elsewhere), found by `agentkit serve engine=vllm`.
vllm:
	@bash .ci/vllm.sh

# The vLLM venv (for the vLLM tests) is built once; Podman's Docker-API socket (for the docker sandbox backend)
# is started if it is not up yet.
test: setup system vllm
	@eval "$$(bash .ci/podman.sh || echo 'echo podman socket unavailable: docker backend tests will skip >&2')"; \
	$(VENV)/bin/pytest -q

# Tests too long for CI's budget (the Youtu-2B geometry served by vLLM: ~19 min on 2 cores).
test-heavy: setup vllm
	AGENTKIT_HEAVY_TESTS=1 $(VENV)/bin/pytest -q -m heavy

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

demo: setup system
	$(VENV)/bin/agentkit demo

bench: setup system
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# ruff (lint rules and the formatting check) and pyright (basic) over agentkit/, envs/, synth/ and train/,
# see pyproject.toml.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

clean:
	rm -rf runs outputs multirun .pytest_cache
