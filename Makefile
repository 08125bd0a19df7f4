# Two commands for a fresh machine with only Python and pip:
#   make demo   train on built-in data and show dying ReLUs
#   make test   run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	# Build the streaming counters' compiled op now, not in the first fit
	# (it falls back to stock TensorFlow ops where it cannot be built).
	$(PY) -m keras_deadrelu.native
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-deadrelu demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/layers.py
	$(PY) benchmarks/leaky_relu_forms.py
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/step_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
