# Fresh-machine entry points: `make test`, `make train`, `make bench`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test train bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch first (SPEC §2): a bare "torch" would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q tests

train: $(STAMP)
	@echo "The RL agent (train_rl.py) arrives with issue 3; meanwhile a short U-GAN sampling run:"
	$(BIN)/python -m softq_ugan.sample --target kidney --schedule nma --lambda0 -1 --steps 3000 --seed 0 --out runs/sample_kidney

bench: $(STAMP)
	$(BIN)/python benchmarks/ugan_toy.py

clean:
	rm -rf $(VENV) runs .pytest_cache
