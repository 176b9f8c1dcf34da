# Set-up is part of every target: a fresh machine needs only python3 (3.10+) and make.
VENV ?= .venv
PYTHON ?= python3
# The CPU build of torch: installed first so that the dependency range in pyproject.toml is already met.
# On a GPU machine use e.g. `make TORCH_SPEC=torch ...`.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo demo-judge compare test test-fast test-portable bench clean

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

# The fast tier again under settings that make torch, MKL and oneDNN take the code paths another processor takes
# (torch's generic kernels; MKL's SSE2 branch on 3 threads; oneDNN and MKL capped at SSE4 on 1 thread): a verdict
# that moves with the CPU fails here. research/cpu-portability/README.md says what each switch changes.
PORTABLE_SETTINGS = "ATEN_CPU_CAPABILITY=default" \
	"MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=3" \
	"ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 OMP_NUM_THREADS=1"
test-portable: setup
	@set -e; for setting in $(PORTABLE_SETTINGS); do \
		echo "== make test-fast under $$setting"; \
		env $$setting $(BIN)/python -m pytest -q -m "not slow and not e2e"; \
	done

bench: setup
	$(BIN)/python benchmarks/merge_bench.py

clean:
	rm -rf $(VENV) bai-artifacts
