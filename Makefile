# Every target does its own set-up: a fresh clone needs only Python 3, a Rust toolchain and the
# package registries.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
MATURIN := $(VENV)/bin/maturin
STAMP   := $(VENV)/.deps-stamp

.PHONY: venv dev test test-rust test-python test-keycloak demo wheel bench lint fmt clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "maturin>=1.7,<2" "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout" \
	    "fastapi>=0.100" "uvicorn>=0.23" "requests>=2.28" "httpx>=0.24" "ruff>=0.5"
	touch $(STAMP)

# Debug build of the extension, installed editable into the virtualenv.
dev: venv
	$(MATURIN) develop -q

test: test-rust test-python

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

lint: venv
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check python tests

fmt:
	cargo fmt

clean:
	rm -rf target dist $(VENV)
