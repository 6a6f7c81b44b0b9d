# Every target does its own set-up: a fresh clone needs only Python 3, a Rust toolchain and the
# package registries.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
MATURIN := $(VENV)/bin/maturin
STAMP   := $(VENV)/.deps-stamp
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: venv dev test test-rust test-python redis-server test-keycloak demo wheel bench lint fmt clean

venv: $(STAMP)

# mypy is held below 3: a new major release brings new checks, which should come in on purpose.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "maturin>=1.7,<2" "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout" \
	    "fastapi>=0.100" "uvicorn>=0.23" "websockets>=12" "requests>=2.28" "httpx>=0.24" \
	    "ruff>=0.5" "mypy>=2.4,<3" "types-requests" "trustme>=1.1" \
	    "prometheus_client>=0.17"
	touch $(STAMP)

# Debug build of the extension, installed editable into the virtualenv.
dev: venv
	$(MATURIN) develop -q

test: test-rust test-python bench-smoke fuzz-smoke

test-rust:
	cargo test -q

# The agent executable's test (marker agent_exe) needs `make agent-exe`'s build:
# `make test-agent-exe` runs it, and .ci/run runs that target.
test-python: dev redis-server
	$(PY) -m pytest -q -m "not agent_exe"

# The tests of shared state (issue 18) start their own redis-server (tests/_redis.py); Debian's.
redis-server:
	command -v redis-server >/dev/null || { $(SUDO) apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q redis-server && \
	    { $(SUDO) service redis-server stop >/dev/null 2>&1 || true; }; }

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
	$(VENV)/bin/ruff check python tests scripts
	$(PY) -m mypy --strict python/tokenward
	$(PY) -m mypy.stubtest tokenward._native --allowlist .ci/stubtest-allowlist
	$(MAKE) --no-print-directory lint-workflows

fmt:
	cargo fmt

clean:
	rm -rf target dist $(VENV) $(WHEELS_VENV) $(AGENT_VENV)

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
	$(BENCH_PY) benches/python/scale.py --out bench-results

# Every bench once, briefly, so CI keeps them working (figures from it mean nothing): the Rust
# benches run once each in the test profile, the comparison against `make dev`'s debug build.
bench-smoke: bench-venv dev
	cargo test -q --bench core
	PYTHONPATH=$(CURDIR)/python $(BENCH_PY) benches/python/run.py --smoke --out target/bench-smoke
	PYTHONPATH=$(CURDIR)/python $(BENCH_PY) benches/python/scale.py --flood 20000 --jwks-keys 100 \
	    --out target/bench-smoke

# ---- release wheels, the core under Wine, the agent executable (issue 14) ----
# README.md, "Install", says what each builds and checks, and what was measured. Set-up on a
# fresh machine: the Rust target, Debian's mingw-w64 and wine64 (apt-get), and a virtualenv of
# its own with maturin, Zig (the ziglang package), auditwheel and PyInstaller.
WHEELS_VENV  := .venv-wheels
WHEELS_PY    := $(WHEELS_VENV)/bin/python
WHEELS_STAMP := $(WHEELS_VENV)/.wheels-deps-stamp
WHEELS_DIR   := dist/wheels
WIN_TARGET   := x86_64-pc-windows-gnu
# The Pythons a wheel is installed into (pyenv's, else python3.X on PATH).
WHEEL_TEST_PYTHONS ?= 3.10 3.12

.PHONY: wheels wheels-deps wheel-linux wheel-windows check-wheels test-wheels test-windows \
        agent-exe test-agent-exe lint-workflows

$(WHEELS_STAMP): Makefile
	rustup target add $(WIN_TARGET)
	command -v x86_64-w64-mingw32-gcc >/dev/null && \
	    { command -v wine64 >/dev/null || test -x /usr/lib/wine/wine64; } || \
	    { $(SUDO) apt-get update -q && \
	      DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q mingw-w64 wine64; }
	test -x $(WHEELS_PY) || python3 -m venv $(WHEELS_VENV)
	$(WHEELS_VENV)/bin/pip install -q --upgrade pip
	$(WHEELS_VENV)/bin/pip install -q "maturin>=1.7,<2" "ziglang>=0.13,<0.16" "auditwheel>=6.1,<7"
	touch $(WHEELS_STAMP)

wheels-deps: $(WHEELS_STAMP)

# Both release wheels, checked (scripts/release/check_wheels.py), then the Linux one installed
# into fresh virtualenvs and the Python suite run against it.
wheels: wheel-linux wheel-windows check-wheels test-wheels

# manylinux2014 (glibc 2.17) through Zig's linker; --strip drops the symbol tables.
wheel-linux: wheels-deps
	rm -f $(WHEELS_DIR)/tokenward-*-manylinux*.whl
	PATH="$(CURDIR)/$(WHEELS_VENV)/bin:$$PATH" $(WHEELS_VENV)/bin/maturin build --release --strip \
	    --zig --compatibility manylinux2014 --target x86_64-unknown-linux-gnu -o $(WHEELS_DIR)

# win_amd64 through mingw-w64; pyo3's generate-import-lib links python3.dll without a Windows
# Python. Naming --features replaces pyproject's features = ["python"], so both are named.
wheel-windows: wheels-deps
	rm -f $(WHEELS_DIR)/tokenward-*-win_amd64.whl
	$(WHEELS_VENV)/bin/maturin build --release --strip --target $(WIN_TARGET) \
	    --features python,pyo3/generate-import-lib -o $(WHEELS_DIR)

check-wheels: wheels-deps
	$(WHEELS_PY) scripts/release/check_wheels.py $(WHEELS_DIR)

test-wheels: wheels-deps
	scripts/release/test_wheel.sh $(WHEELS_DIR) $(WHEEL_TEST_PYTHONS)

# The core's own tests built for Windows and run under Wine, as cargo's runner
# (scripts/wine/run; scripts/wine/setup.sh makes the prefix and the bcryptprimitives.dll shim).
test-windows: wheels-deps
	scripts/wine/setup.sh
	CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$(CURDIR)/scripts/wine/run" \
	    cargo test -q --target $(WIN_TARGET)

# examples/agent.py as a one-file PyInstaller executable, built in a virtualenv of its own
# from the manylinux2014 wheel (packaging/agent.spec; the same spec builds it on Windows).
AGENT_VENV  := .venv-agent
AGENT_STAMP := $(AGENT_VENV)/.agent-deps-stamp
AGENT_EXE   := dist/agent/tokenward-agent

$(AGENT_STAMP): Makefile
	test -x $(AGENT_VENV)/bin/python || python3 -m venv $(AGENT_VENV)
	$(AGENT_VENV)/bin/pip install -q --upgrade pip
	$(AGENT_VENV)/bin/pip install -q "pyinstaller>=6.10,<7" "requests>=2.28"
	touch $(AGENT_STAMP)

agent-exe: wheel-linux $(AGENT_STAMP)
	$(AGENT_VENV)/bin/pip install -q --force-reinstall --no-deps $(WHEELS_DIR)/tokenward-*-manylinux*.whl
	$(AGENT_VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN \
	    --distpath dist/agent --workpath target/pyinstaller packaging/agent.spec
	$(AGENT_EXE) --help >/dev/null

# The executable against the DevIdP and the example services (tests/agent_exe/).
test-agent-exe: agent-exe dev
	TOKENWARD_AGENT_EXE="$(CURDIR)/$(AGENT_EXE)" $(PY) -m pytest -q -m agent_exe

# The release workflow (.github/workflows/release.yml), checked by actionlint from the Go module
# proxy (built once into target/tools), with shellcheck (Debian's) on its run: scripts and on the
# release scripts.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := target/tools/actionlint-$(ACTIONLINT_VERSION)/actionlint

# Go from PATH, else where this kind of machine keeps it (a login shell's PATH may not be CI's).
GO ?= $(or $(shell command -v go 2>/dev/null),$(wildcard /usr/local/go/bin/go),go)

$(ACTIONLINT):
	@command -v $(GO) >/dev/null || { echo "go not found: actionlint is built with Go (1.25+)"; exit 1; }
	GOBIN="$(CURDIR)/$(dir $@)" $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

lint-workflows: $(ACTIONLINT)
	command -v shellcheck >/dev/null || { $(SUDO) apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q shellcheck; }
	$(ACTIONLINT) -shellcheck "$$(command -v shellcheck)" .github/workflows/*.yml
	shellcheck .ci/run scripts/wine/run scripts/wine/setup.sh scripts/release/test_wheel.sh

# ---- fuzzing (issue 11, item 11): fuzz/ (cargo-fuzz, libFuzzer), docs/fuzzing.md ----
# cargo-fuzz needs a nightly toolchain; both are installed here when absent (rustup and
# crates.io are all a fresh machine needs). The targets are built without a sanitizer: the
# crate has no `unsafe`, and what we look for (panics, failed properties, overflows, timeouts,
# memory growth) needs none; it also keeps aws-lc-sys, a C build, out of ASan's way. The
# release profile of fuzz/Cargo.toml keeps debug assertions and overflow checks on.
# FUZZ_TOOLCHAIN can pin a dated nightly (nightly-YYYY-MM-DD) should a new one break the build.
FUZZ_TOOLCHAIN ?= nightly
FUZZ_SECONDS   ?= 600
FUZZ_TARGETS   := jws jwks policy token_response redact
FUZZ           := cargo +$(FUZZ_TOOLCHAIN) fuzz
FUZZ_BUILD     := --fuzz-dir fuzz --sanitizer none
# Bounded time and memory are part of every target's property: a slow input (-timeout, seconds)
# or one that grows the process past -rss_limit_mb is a finding like a panic. -max_len is the
# verifier's default max_token_bytes.
FUZZ_LIMITS    := -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1
FUZZ_OUT       := fuzz/target/runs

.PHONY: fuzz-tools fuzz-build fuzz-smoke fuzz

fuzz-tools:
	rustup toolchain list | grep -q '^$(FUZZ_TOOLCHAIN)-$(shell rustc -vV | sed -n 's/^host: //p')' \
	    || rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal
	cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

fuzz-build: fuzz-tools
	$(FUZZ) build $(FUZZ_BUILD)

# About a minute: each target runs its seeds (fuzz/corpus/<target>, read only), then mutates
# for a few seconds from a fresh corpus. A finding fails the target; the input that failed is
# in fuzz/artifacts/<target>/ (`$(FUZZ) run $(FUZZ_BUILD) <target> <file>` replays it).
FUZZ_SMOKE_SECONDS ?= 8
fuzz-smoke: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    rm -rf $(FUZZ_OUT)/smoke/$$t && mkdir -p $(FUZZ_OUT)/smoke/$$t || exit 1; \
	    echo "fuzz-smoke: $$t ($(FUZZ_SMOKE_SECONDS) s)"; \
	    $(FUZZ) run $(FUZZ_BUILD) $$t $(FUZZ_OUT)/smoke/$$t fuzz/corpus/$$t -- \
	        -max_total_time=$(FUZZ_SMOKE_SECONDS) $(FUZZ_LIMITS) \
	        >$(FUZZ_OUT)/smoke/$$t.log 2>&1 \
	        || { tail -40 $(FUZZ_OUT)/smoke/$$t.log; exit 1; }; \
	    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' $(FUZZ_OUT)/smoke/$$t.log; \
	done

# The long runs (not in CI): FUZZ_SECONDS per target, one after another, one job each; the
# corpus grows in fuzz/target/corpus/<target> (kept between runs, never committed), the log
# of each run is $(FUZZ_OUT)/<target>.log. `make fuzz FUZZ_TARGETS=jws FUZZ_SECONDS=3600`.
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p fuzz/target/corpus/$$t $(FUZZ_OUT) || exit 1; \
	    echo "fuzz: $$t ($(FUZZ_SECONDS) s), log in $(FUZZ_OUT)/$$t.log"; \
	    $(FUZZ) run $(FUZZ_BUILD) --jobs 1 $$t fuzz/target/corpus/$$t fuzz/corpus/$$t -- \
	        -max_total_time=$(FUZZ_SECONDS) $(FUZZ_LIMITS) \
	        >$(FUZZ_OUT)/$$t.log 2>&1 \
	        || { tail -40 $(FUZZ_OUT)/$$t.log; exit 1; }; \
	    grep -E '^(stat::|#[0-9]+[[:space:]]+DONE)' $(FUZZ_OUT)/$$t.log; \
	done
