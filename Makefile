# Set-up is part of every target: a fresh machine needs only python3 (3.10+) and make.
VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch: installed first so that the dependency range in pyproject.toml is already met.
# On a GPU machine use e.g. `make TORCH_SPEC=torch ...`.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo demo-judge compare test test-fast bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[all,test]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/bai run configs/demo.yaml

# The same demo against the family's learned reward model (the paper's kind of reward): reward hacking, measured.
demo-judge: setup
	HF_HUB_OFFLINE=1 $(BIN)/bai run configs/demo-judge.yaml

# The paper's Table 1 on the demo family: Paradigms 1-3, BAI, RL from pretrained and from M_sft, scored.
compare: setup
	HF_HUB_OFFLINE=1 $(BIN)/bai compare configs/demo.yaml

test: setup
	$(BIN)/python -m pytest -q

# The inner loop: everything but RL training runs, the comparison, multi-process and end-to-end tests.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not e2e"

bench: setup
	$(BIN)/python benchmarks/merge_bench.py

clean:
	rm -rf $(VENV) bai-demo
