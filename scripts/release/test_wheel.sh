#!/usr/bin/env bash
# Install the release wheels where this machine can (issue 14, `make test-wheels`):
#
#   scripts/release/test_wheel.sh DIR VERSION...      e.g. dist/wheels 3.10 3.12
#
# For each Python VERSION (pyenv's newest VERSION.x, else python VERSION on PATH): a fresh
# virtualenv under target/wheel-venvs, the manylinux wheel and the test dependencies installed
# from the index, a check that `tokenward` is imported from that virtualenv (not from python/),
# then the Python suite run against it, less the Keycloak tests (the same Python code as in
# `make test`; here the build is under test) and the agent executable's (`make test-agent-exe`).
# The win_amd64 wheel cannot be imported here: pip installs it for a Windows CPython of each
# VERSION into a target directory (its tags and metadata accepted by pip's own resolver) and the
# files are compared with the wheel's RECORD.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$1"
shift
linux_wheel="$(printf '%s' "$dir"/tokenward-*-manylinux*.whl)"
windows_wheel="$(printf '%s' "$dir"/tokenward-*-win_amd64.whl)"
[[ -f "$linux_wheel" && -f "$windows_wheel" ]] || { echo "test_wheel: no wheels in $dir (make wheels)" >&2; exit 1; }
deps=("pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout" "fastapi>=0.100" "uvicorn>=0.23"
      "websockets>=12" "requests>=2.28" "httpx>=0.24" "mypy>=2.4,<3" "types-requests"
      "trustme>=1.1" "prometheus_client>=0.17")

find_python() {
    local version="$1" pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}" candidate=""
    # pyenv's versions even when pyenv itself is not on PATH (CI's PATH may lack its shims).
    if command -v pyenv >/dev/null; then
        pyenv_root="$(pyenv root)"
    fi
    candidate="$(printf '%s\n' "$pyenv_root"/versions/"$version".*/bin/python3 \
        | sort -V | tail -n 1)"
    [[ -x "$candidate" ]] || candidate=""
    [[ -n "$candidate" ]] || candidate="$(command -v "python$version" || true)"
    [[ -n "$candidate" ]] || { echo "test_wheel: no Python $version (pyenv or PATH)" >&2; exit 1; }
    echo "$candidate"
}

for version in "$@"; do
    python="$(find_python "$version")"
    venv="$root/target/wheel-venvs/py$version"
    echo "== $linux_wheel on $("$python" --version) ($python)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$linux_wheel" "${deps[@]}"
    (cd "$root" && "$venv/bin/python" - "$venv" <<'EOF'
import sys, pathlib, tokenward, tokenward._native as native
where = pathlib.Path(tokenward.__file__).resolve()
assert pathlib.Path(sys.argv[1]).resolve() in where.parents, f"tokenward imported from {where}"
print(f"tokenward {tokenward.__name__} from {where.parent}, extension {pathlib.Path(native.__file__).name}")
EOF
    )
    # On Python 3.10 pip resolves Starlette 1.7 (1.10 needs 3.11), whose request.url.path keeps
    # "?", "#" and "\" unescaped where tokenward._bearer.request_path escapes them, so this one
    # comparison with Starlette fails there (tokenward is the stricter of the two: such a path is
    # never taken for an exempt one). Reported with issue 14; deselected on 3.10 only, by name.
    known=()
    if [[ "$version" == 3.10 ]]; then
        known=(--deselect "tests/test_middleware.py::test_request_path_is_starlettes_url_path")
    fi
    (cd "$root" && "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider \
        -m "not keycloak and not agent_exe" "${known[@]}")

    target="$root/target/wheel-venvs/win-py$version"
    rm -rf "$target"
    echo "== $windows_wheel for Windows CPython $version (pip --platform win_amd64 --target)"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform win_amd64 --python-version "$version" --implementation cp \
        --target "$target" "$windows_wheel"
    test -f "$target/tokenward/_native.pyd"
    "$venv/bin/python" - "$windows_wheel" "$target" <<'EOF'
import sys, zipfile, pathlib
wheel, target = zipfile.ZipFile(sys.argv[1]), pathlib.Path(sys.argv[2])
names = [n for n in wheel.namelist() if not n.endswith("/") and ".dist-info/" not in n]
missing = [n for n in names if (target / n).read_bytes() != wheel.read(n)]
assert not missing, f"installed files differ from the wheel: {missing}"
print(f"installed {len(names)} files for win_amd64, identical to the wheel's")
EOF
done
