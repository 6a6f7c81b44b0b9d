# Every target does its own set-up: a fresh clone needs only Python 3, a Rust toolchain and the
# package registries.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
MATURIN := $(VENV)/bin/maturin
STAMP   := $(VENV)/.deps-stamp

.PHONY: venv dev test test-rust test-python test-keycloak demo wheel bench lint fmt clean

venv: $(STAMP)

# mypy is held below 3: a new major release brings new checks, which should come in on purpose.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "maturin>=1.7,<2" "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout" \
	    "fastapi>=0.100" "uvicorn>=0.23" "websockets>=12" "requests>=2.28" "httpx>=0.24" \
	    "ruff>=0.5" "mypy>=2.4,<3" "types-requests"
	touch $(STAMP)

# Debug build of the extension, installed editable into the virtualenv.
dev: venv
	$(MATURIN) develop -q

test: test-rust test-python bench-smoke

test-rust:
	cargo test -q

test-python: dev
	$(PY) -m pytest -q

# Only the end-to-end suite against a real Keycloak (`make test` runs it too); README.md,
# "End-to-end against Keycloak".
test-keycloak: dev
	$(PY) -m pytest -q -m keycloak

demo: dev
	$(PY) -m tokenward demo

wheel: venv
	$(MATURIN) build --release -o dist

# The stub is checked against the built extension, so lint needs `make dev`'s build.
lint: dev
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check python tests
	$(PY) -m mypy --strict python/tokenward
	$(PY) -m mypy.stubtest tokenward._native --allowlist .ci/stubtest-allowlist

fmt:
	cargo fmt

clean:
	rm -rf target dist $(VENV)

# ---- benchmarks (issue 6): benches/core.rs (criterion) and benches/python (the comparison) ----
# Their own virtualenv with a release wheel: `make dev` installs a debug build into .venv, and
# tests and benches must not fight over which build is installed. The request-level figures use
# wrk when it is installed (Debian: `apt-get install -y wrk`), else an async httpx driver.
BENCH_VENV   := .venv-bench
BENCH_PY     := $(BENCH_VENV)/bin/python
BENCH_STAMP  := $(BENCH_VENV)/.bench-deps-stamp
BENCH_WHEELS := target/bench-wheel

.PHONY: bench bench-venv bench-smoke

$(BENCH_STAMP): benches/python/requirements.txt
	test -x $(BENCH_PY) || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -r benches/python/requirements.txt
	touch $(BENCH_STAMP)

bench-venv: $(BENCH_STAMP)

# The release wheel is rebuilt (incrementally) on every run, so the figures are of this code.
bench: bench-venv
	rm -rf $(BENCH_WHEELS)
	$(BENCH_VENV)/bin/maturin build --release -q -o $(BENCH_WHEELS)
	$(BENCH_VENV)/bin/pip install -q --force-reinstall --no-deps $(BENCH_WHEELS)/tokenward-*.whl
	cargo bench --bench core
	$(BENCH_PY) benches/python/run.py --out bench-results

# Every bench once, briefly, so CI keeps them working (figures from it mean nothing): the Rust
# benches run once each in the test profile, the comparison against `make dev`'s debug build.
bench-smoke: bench-venv dev
	cargo test -q --bench core
	PYTHONPATH=$(CURDIR)/python $(BENCH_PY) benches/python/run.py --smoke --out target/bench-smoke
