# One venv (.venv, Python 3.12) holds the server, the plugin and the test dependencies.
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv graphon-venv run test image-test keys package bench reliability screenshots clean

venv: $(STAMP)

$(STAMP): requirements.txt inference_server/requirements.txt inference_server/requirements-nudenet.txt inference_server/requirements-ray.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

graphon-venv: venv  ## .cache/graphon-venv: Dify's workflow classes (PyPI graphon) for the example-workflow tests
	$(BIN)/python -m tests.plugin.graphon_env

run: venv  ## the inference server on 127.0.0.1:8000 (the tiny model on a machine with no GPU)
	$(BIN)/python -m inference_server serve

test: venv  ## the whole suite
	$(BIN)/python -m pytest

image-test: venv  ## build the Dockerfile with podman on a local Debian base, run it, generate (root; apt: podman runc debootstrap)
	IMAGE_TEST=1 $(BIN)/python -m pytest tests/deploy -s

keys: venv  ## keys/qwen_image.{private,public}.pem: a PKCS#1 key pair to sign the package with
	$(BIN)/python -m plugin_packaging.signing keys --out keys

package: venv  ## dist/qwen_image-<version>.difypkg; signed (.signed.difypkg) when PLUGIN_SIGNING_KEY names a private key
	$(BIN)/python -m plugin_packaging.build

bench: venv  ## benchmarks as ratios -> bench/results.md
	$(BIN)/python -m bench

reliability: venv  ## load, soak and crash scenarios -> docs/reliability.md
	$(BIN)/python -m bench.reliability

clean:
	rm -rf dist data .pytest_cache

screenshots: venv  ## docs/screenshots/*.png: every playground tab in English and Chinese (needs Chromium)
	$(BIN)/python -m tests.ui.screenshots
