"""The console's vendored npm modules match their lock, and the page can load every module it names:
each import is relative, or a bare name the import map resolves. And `pip install .` ships all of it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fluxstudio.web.assets import LOCK, STATIC, StaticTree

REPO = Path(__file__).resolve().parents[1]
VENDOR = STATIC / "vendor"
LOCKED = json.loads(LOCK.read_text())
IMPORT = re.compile(
    r"""(?:\bimport\s*(?:[\w*{}\s,$]+?\s*from\s*)?|\bexport\s*[\w*{}\s,$]*?\s*from\s*|\bimport\s*\(\s*)"""
    r"""(['"])([^'"\n]+)\1"""
)


def sri(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


def test_every_vendored_file_matches_the_lock_and_nothing_else_is_there() -> None:
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()}
    assert on_disk == set(LOCKED["files"])
    for name, entry in LOCKED["files"].items():
        assert sri(VENDOR / name) == entry["integrity"], f"{name} differs from vendor.lock.json"


def test_packages_are_pinned_with_licences_and_npm_integrity() -> None:
    wanted = json.loads((REPO / "scripts" / "vendor" / "package.json").read_text())["dependencies"]
    npm_lock = json.loads((REPO / "scripts" / "vendor" / "package-lock.json").read_text())["packages"]
    for name, package in LOCKED["packages"].items():
        assert package["license"] in {"MIT", "Apache-2.0", "ISC", "BSD-3-Clause"}, name
        assert (VENDOR / package["license_file"]).is_file()
        assert package["integrity"] == npm_lock[f"node_modules/{name}"]["integrity"]
        assert package["integrity"].startswith("sha512-")
        if name in wanted:
            assert wanted[name] == package["version"], f"{name} is not pinned to the vendored version"


def test_every_import_resolves_in_the_browser() -> None:
    """What a browser does with the import map: nothing the console reaches may be a dangling name."""
    tree = StaticTree.load()
    modules = [name for name in tree.files if name.endswith((".js", ".mjs"))]
    assert set(tree.imports.values()) <= set(tree.files)
    for name in modules:
        code = (STATIC / name).read_text()
        for _, specifier in IMPORT.findall(code):
            if specifier.startswith("."):
                target = (Path(name).parent / specifier).as_posix()
                target = _normal(target)
                assert target in tree.files, f"{name} imports {specifier}, which is not served"
            else:
                assert specifier in tree.imports, f"{name} imports {specifier!r}, which the import map lacks"


def _normal(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


@pytest.mark.slow
def test_the_wheel_carries_the_console(tmp_path: Path) -> None:
    """What `pip install .` installs: built the way pip builds it, then read like an installer would."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("fluxstudio-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "fluxstudio/web/vendor.lock.json" in names and "fluxstudio/web/static/index.html" in names
    assert "fluxstudio/web/static/app/main.js" in names
    for name in LOCKED["files"]:
        assert f"fluxstudio/web/static/vendor/{name}" in names


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_no_console_file_is_ignored_by_git() -> None:
    """A vendored file that .gitignore swallows (a `dist/` folder, say) works here and is missing from
    every clone; git must be able to see all of them."""
    files = [str(p.relative_to(REPO)) for p in STATIC.rglob("*") if p.is_file()] + [
        str(LOCK.relative_to(REPO))
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *files], cwd=REPO, capture_output=True, text=True
    )
    assert ignored.stdout == "", f"ignored by .gitignore: {ignored.stdout}"
