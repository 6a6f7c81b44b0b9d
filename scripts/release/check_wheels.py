"""Check the release wheels `make wheels` built (issue 14); exit 1 with the reasons if any fails.

    python scripts/release/check_wheels.py dist/wheels

The directory must hold exactly one manylinux wheel and one win_amd64 wheel. Checked:

- both: the tags in WHEEL; METADATA (name, version from pyproject.toml, Requires-Python, the
  extras) identical in the two; every file listed in RECORD with its sha256, and nothing else;
  the same file list in both apart from the extension module (and the SBOM's contents);
- Linux: `auditwheel show` (the highest GLIBC_ symbol version is 2.17, the wheel is consistent
  with manylinux_2_17_x86_64, no library outside the manylinux policy); the `.so` has no symbol
  table and no debug sections (`readelf`);
- Windows: the `.pyd` (`x86_64-w64-mingw32-objdump -p`) exports `PyInit__native`, imports
  `python3.dll` (the stable ABI, never `python3X.dll`) and otherwise only DLLs that every
  Windows 10 or later has, and carries no COFF symbols and no debug sections.

It prints what it saw (the glibc versions, the DLLs, the sizes), so a CI log shows the facts.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]

MAX_GLIBC = (2, 17)
LINUX_TAGS = {"cp310-abi3-manylinux2014_x86_64", "cp310-abi3-manylinux_2_17_x86_64"}
WINDOWS_TAGS = {"cp310-abi3-win_amd64"}
LINUX_EXT = "tokenward/_native.abi3.so"
WINDOWS_EXT = "tokenward/_native.pyd"

#: DLLs the .pyd may import besides python3.dll: each ships with every Windows 10 and later
#: (the oldest Windows that Rust's standard library supports). Lower-case.
SYSTEM_DLLS = {
    "advapi32.dll",
    "api-ms-win-core-synch-l1-2-0.dll",
    "bcrypt.dll",
    "bcryptprimitives.dll",
    "crypt32.dll",
    "iphlpapi.dll",
    "kernel32.dll",
    "msvcrt.dll",
    "ncrypt.dll",
    "ntdll.dll",
    "ole32.dll",
    "oleaut32.dll",
    "secur32.dll",
    "shell32.dll",
    "user32.dll",
    "userenv.dll",
    "ws2_32.dll",
}

problems: list[str] = []


def check(ok: bool, what: str) -> None:
    if not ok:
        problems.append(what)


def tool(name: str) -> str:
    """A tool from this interpreter's virtualenv, else from PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        sys.exit(f"check_wheels: {name} not found (make wheels-deps installs it)")
    return found


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"check_wheels: {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        sys.exit(f"check_wheels: expected one {pattern} in {directory}, found {found}")
    return found[0]


def dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if re.fullmatch(rf"[^/]+\.dist-info/{name}", n)]
    return wheel.read(path).decode()


def check_common(path: Path, wheel: zipfile.ZipFile, tags: set[str]) -> str:
    """Tags, RECORD; returns METADATA."""
    fields = Parser().parsestr(dist_info(wheel, "WHEEL"))
    check(set(fields.get_all("Tag") or []) == tags, f"{path.name}: tags {fields.get_all('Tag')}")
    check(fields["Root-Is-Purelib"] == "false", f"{path.name}: Root-Is-Purelib")
    record_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    listed = {}
    for row in csv.reader(io.StringIO(wheel.read(record_name).decode())):
        listed[row[0]] = row[1]
    check(set(listed) == set(wheel.namelist()), f"{path.name}: RECORD and the archive differ")
    for name, digest in listed.items():
        if name == record_name:
            continue
        actual = base64.urlsafe_b64encode(hashlib.sha256(wheel.read(name)).digest())
        check(digest == "sha256=" + actual.rstrip(b"=").decode(), f"{path.name}: hash of {name}")
    print(f"{path.name}: tags {sorted(tags)}, {len(listed)} files, RECORD hashes match")
    return dist_info(wheel, "METADATA")


def check_metadata(metadata: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    fields = Parser().parsestr(metadata)
    check(fields["Name"] == project["name"], f"METADATA Name {fields['Name']}")
    check(fields["Version"] == project["version"], f"METADATA Version {fields['Version']}")
    check(
        fields["Requires-Python"] == project["requires-python"],
        f"METADATA Requires-Python {fields['Requires-Python']}",
    )
    extras = set(fields.get_all("Provides-Extra") or [])
    check(extras == set(project["optional-dependencies"]), f"METADATA extras {sorted(extras)}")
    print(
        f"METADATA: {fields['Name']} {fields['Version']}, Requires-Python "
        f"{fields['Requires-Python']}, extras {sorted(extras)}"
    )


def glibc_versions(text: str) -> list[tuple[int, ...]]:
    return sorted({tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_([\d.]+\d)", text)})


def check_linux(path: Path, extension: Path) -> None:
    shown = " ".join(run(tool("auditwheel"), "show", str(path)).split())
    versions = glibc_versions(shown)
    highest = ".".join(map(str, versions[-1])) if versions else "none"
    print(f"auditwheel show: highest glibc symbol version GLIBC_{highest}")
    print(f"  {shown}")
    check(bool(versions) and versions[-1] <= MAX_GLIBC, f"highest glibc symbol GLIBC_{highest}")
    check(
        'constrains the platform tag to "manylinux_2_17_x86_64"' in shown
        or 'consistent with the following platform tag: "manylinux_2_17_x86_64"' in shown,
        "auditwheel: not manylinux_2_17_x86_64",
    )
    sections = run("readelf", "-S", "-W", str(extension))
    check(".symtab" not in sections, f"{LINUX_EXT} has a symbol table (not stripped)")
    check(".debug_" not in sections, f"{LINUX_EXT} has debug sections")
    print(f"{LINUX_EXT}: {extension.stat().st_size} bytes, no .symtab, no .debug_* sections")


def check_windows(extension: Path) -> None:
    dump = run("x86_64-w64-mingw32-objdump", "-p", str(extension))
    imports = sorted({m.lower() for m in re.findall(r"DLL Name: (\S+)", dump)})
    _, _, table = dump.partition("[Ordinal/Name Pointer] Table")
    exports = re.findall(r"^\s*\[\s*\d+\]\s+(\S+)$", table.split("\n\n")[0], re.MULTILINE)
    print(f"{WINDOWS_EXT}: exports {exports}")
    print(f"{WINDOWS_EXT}: imports {imports}")
    check("PyInit__native" in exports, f"{WINDOWS_EXT} does not export PyInit__native")
    check("python3.dll" in imports, f"{WINDOWS_EXT} does not link python3.dll")
    others = [d for d in imports if d != "python3.dll" and d not in SYSTEM_DLLS]
    check(not others, f"{WINDOWS_EXT} imports DLLs not on every Windows: {others}")
    symbols = run("x86_64-w64-mingw32-objdump", "-t", str(extension))
    check("symbols stripped" in dump, f"{WINDOWS_EXT}: the COFF header does not say stripped")
    check("no symbols" in symbols, f"{WINDOWS_EXT} has a COFF symbol table")
    headers = run("x86_64-w64-mingw32-objdump", "-h", str(extension))
    check(".debug_" not in headers, f"{WINDOWS_EXT} has debug sections")
    print(f"{WINDOWS_EXT}: {extension.stat().st_size} bytes, no COFF symbols, no .debug_* sections")


def main() -> int:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/wheels")
    linux_path = one(directory, "tokenward-*-manylinux*.whl")
    windows_path = one(directory, "tokenward-*-win_amd64.whl")
    with (
        zipfile.ZipFile(linux_path) as linux,
        zipfile.ZipFile(windows_path) as windows,
        tempfile.TemporaryDirectory() as tmp,
    ):
        metadata = check_common(linux_path, linux, LINUX_TAGS)
        check(check_common(windows_path, windows, WINDOWS_TAGS) == metadata, "METADATA differs")
        check_metadata(metadata)

        def files(wheel: zipfile.ZipFile, extension: str) -> set[str]:
            names = {n for n in wheel.namelist() if "/sboms/" not in n}
            return {"<extension>" if n == extension else n for n in names}

        linux_files, windows_files = files(linux, LINUX_EXT), files(windows, WINDOWS_EXT)
        check("<extension>" in linux_files, f"{linux_path.name} has no {LINUX_EXT}")
        check("<extension>" in windows_files, f"{windows_path.name} has no {WINDOWS_EXT}")
        check(
            linux_files == windows_files,
            f"file lists differ: {sorted(linux_files ^ windows_files)}",
        )
        for name in ("tokenward/_native.pyi", "tokenward/py.typed", "tokenward/__init__.py"):
            check(name in windows_files, f"{windows_path.name} lacks {name}")
        print(f"file lists: the same {len(linux_files)} entries apart from the extension")
        linux.extract(LINUX_EXT, tmp)
        windows.extract(WINDOWS_EXT, tmp)
        check_linux(linux_path, Path(tmp, LINUX_EXT))
        check_windows(Path(tmp, WINDOWS_EXT))
    for wheel_path in (linux_path, windows_path):
        print(f"{wheel_path.name}: {wheel_path.stat().st_size} bytes")
    if problems:
        print("check_wheels: FAILED", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print("check_wheels: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
