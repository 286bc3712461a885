# One venv (.venv, Python 3.12) holds the server, the plugin and the test dependencies.
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test package bench reliability clean

venv: $(STAMP)

$(STAMP): requirements.txt inference_server/requirements.txt inference_server/requirements-ray.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: venv  ## the inference server on 127.0.0.1:8000 (the tiny model on a machine with no GPU)
	$(BIN)/python -m inference_server serve

test: venv  ## the whole suite
	$(BIN)/python -m pytest

package: venv  ## dist/qwen_image-<version>.difypkg
	$(BIN)/python -m plugin_packaging.build

bench: venv  ## benchmarks as ratios -> bench/results.md
	$(BIN)/python -m bench

reliability: venv  ## load, soak and crash scenarios -> docs/reliability.md
	$(BIN)/python -m bench.reliability

clean:
	rm -rf dist data .pytest_cache
