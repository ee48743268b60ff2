"""Refresh the console's vendored browser dependencies from npm, in one command:

    python scripts/vendor.py            # npm ci in scripts/vendor, then copy and pin
    python scripts/vendor.py --no-install   # copy and pin from an existing scripts/vendor/node_modules

The console is plain ES modules with an import map, so `pip install .` needs no Node and no build. This
script is the only place npm is used: it starts from the specifiers the console imports (`ENTRIES`),
resolves them the way a browser-targeting bundler would (package `exports`, conditions browser → module
→ import → default), follows every static and dynamic import through the packages, and writes exactly
the files reached to `fluxstudio/web/static/vendor/{package}@{version}/`, each package's licence file
beside them. Files are minified one by one with esbuild (a transform, not a bundle: every module and
import stays as published, licence comments kept), because npm ships hls.js's ES module build
unminified (1.3 MB, 300 KB gzipped). It then writes `fluxstudio/web/vendor.lock.json`: every package
with its version, licence and npm integrity (from package-lock.json), every file with the SHA-384 of
what we serve and of the npm file it came from (the form of Subresource Integrity), and the import map
(bare specifier → file). `tests/test_web_vendor.py` checks the
vendored files against that lock.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NPM_PROJECT = ROOT / "scripts" / "vendor"
MODULES = NPM_PROJECT / "node_modules"
TARGET = ROOT / "fluxstudio" / "web" / "static" / "vendor"
LOCK = ROOT / "fluxstudio" / "web" / "vendor.lock.json"

#: What the console's own modules import by bare name.
ENTRIES = ("preact", "preact/hooks", "htm/preact", "hls.js", "yjs", "y-websocket", "y-protocols/awareness",
           "tus-js-client")  # fmt: skip
#: Entries whose ES module build still imports CommonJS-only packages (tus-js-client 4's `lib.esm` imports
#: url-parse, lodash.throttle, combine-errors), which a browser cannot load as modules: these alone are
#: bundled by esbuild into one ES module at the entry's path; every package inlined is still locked with
#: its licence.
BUNDLED = frozenset({"tus-js-client"})
CONDITIONS = ("browser", "module", "import", "default")
LICENCE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "license", "LICENCE", "LICENSE-MIT")

_IMPORT = re.compile(
    r"""(?:\bimport\s*(?:[\w*{}\s,$]+?\s*from\s*)?|\bexport\s*[\w*{}\s,$]*?\s*from\s*|\bimport\s*\(\s*)"""
    r"""(['"])([^'"\n]+)\1"""
)


ESBUILD = MODULES / ".bin" / "esbuild"


def minify(path: Path) -> bytes:
    return subprocess.run(
        [str(ESBUILD), str(path), "--minify", "--format=esm", "--target=es2022", "--legal-comments=inline",
         "--log-level=warning"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip


def bundle(path: Path, metafile: Path) -> bytes:
    """One ES module of `path` and everything it imports (CommonJS converted), for `BUNDLED` entries."""
    out = metafile.with_suffix(".js")
    subprocess.run(
        [str(ESBUILD), str(path), "--bundle", "--minify", "--format=esm", "--platform=browser",
         "--target=es2022", "--legal-comments=inline", "--log-level=warning", f"--metafile={metafile}",
         f"--outfile={out}"],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    data = out.read_bytes()
    out.unlink()
    return data


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def imports_of(source: str) -> set[str]:
    """Specifiers a module imports (static, re-exports and dynamic imports with a literal)."""
    # Comments may mention `import x from 'y'`; drop them first (crudely, but enough for these packages).
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    code = re.sub(r"(?m)^\s*//.*$", "", code)
    return {match[2] for match in _IMPORT.finditer(code)}


def split_specifier(specifier: str) -> tuple[str, str]:
    parts = specifier.split("/")
    name = "/".join(parts[:2]) if specifier.startswith("@") else parts[0]
    rest = specifier[len(name) :]
    return name, "." + rest if rest else "."


def pick(target: object) -> str | None:
    """The path an `exports` target means for a browser loading ES modules."""
    if isinstance(target, str):
        return target
    if isinstance(target, dict):
        for condition in CONDITIONS:
            if condition in target:
                found = pick(target[condition])
                if found is not None:
                    return found
    return None


def resolve_bare(specifier: str) -> Path:
    name, subpath = split_specifier(specifier)
    package_dir = MODULES / name
    meta = json.loads((package_dir / "package.json").read_text())
    exports = meta.get("exports")
    if exports is not None:
        if isinstance(exports, str) or (
            isinstance(exports, dict) and not any(k.startswith(".") for k in exports)
        ):
            exports = {".": exports}
        target = pick(exports.get(subpath))
        if target is None:
            raise SystemExit(f"{specifier}: no browser ES module export in {name}'s package.json")
        return (package_dir / target).resolve()
    entry = (meta.get("module") or meta.get("main") or "index.js") if subpath == "." else subpath
    # The `browser` field may swap a package's Node files for browser ones (tus-js-client does).
    swaps = meta.get("browser") if isinstance(meta.get("browser"), dict) else {}
    normal = "./" + Path(entry).as_posix().removeprefix("./")
    return (package_dir / (swaps.get(normal) or entry)).resolve()


def package_of(path: Path) -> tuple[str, Path]:
    relative = path.relative_to(MODULES)
    parts = relative.parts
    name = "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]
    return name, MODULES / name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-install", action="store_true", help="use the node_modules already there")
    args = parser.parse_args()
    if not args.no_install:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NPM_PROJECT, check=True
        )
    npm_lock = json.loads((NPM_PROJECT / "package-lock.json").read_text())["packages"]

    files: dict[Path, None] = {}
    bundled: set[Path] = set()
    bare: dict[str, Path] = {}
    pending: list[tuple[str, Path | None]] = [(entry, None) for entry in ENTRIES]
    while pending:
        specifier, importer = pending.pop()
        if specifier.startswith((".", "/")):
            assert importer is not None
            path = (importer.parent / specifier).resolve()
        else:
            if specifier in bare:
                continue
            path = bare[specifier] = resolve_bare(specifier)
            if specifier in BUNDLED:
                bundled.add(path)
                files[path] = None
                continue
        if path in files:
            continue
        if not path.is_file():
            raise SystemExit(f"{specifier} (imported by {importer}) resolves to a missing file {path}")
        files[path] = None
        pending += [(found, path) for found in sorted(imports_of(path.read_text()))]

    packages: dict[str, dict[str, str]] = {}
    vendored: dict[str, dict[str, str]] = {}
    shutil.rmtree(TARGET, ignore_errors=True)

    def place(path: Path) -> str:
        name, package_dir = package_of(path)
        meta = json.loads((package_dir / "package.json").read_text())
        folder = f"{name}@{meta['version']}"
        if name not in packages:
            locked = npm_lock[f"node_modules/{name}"]
            licence = next((package_dir / f for f in LICENCE_FILES if (package_dir / f).is_file()), None)
            if licence is None:
                raise SystemExit(f"{name} ships no licence file")
            destination = TARGET / folder / licence.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(licence, destination)
            packages[name] = {
                "version": meta["version"],
                "license": meta.get("license", "UNKNOWN"),
                "license_file": f"{folder}/{licence.name}",
                "integrity": locked["integrity"],
                "resolved": locked.get("resolved")
                or f"https://registry.npmjs.org/{name}/-/{name.rsplit('/', 1)[-1]}-{meta['version']}.tgz",
            }
            licence_sri = sri(destination.read_bytes())
            vendored[f"{folder}/{licence.name}"] = {"integrity": licence_sri, "source": licence_sri}
        return f"{folder}/{path.relative_to(package_dir).as_posix()}"

    for path in files:
        relative = place(path)
        destination = TARGET / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path in bundled:
            metafile = NPM_PROJECT / "metafile.json"
            destination.write_bytes(bundle(path, metafile))
            for source in json.loads(metafile.read_text())["inputs"]:
                place((ROOT / source).resolve())  # lock each inlined package with its licence
            metafile.unlink()
        else:
            destination.write_bytes(minify(path))
        vendored[relative] = {"integrity": sri(destination.read_bytes()), "source": sri(path.read_bytes())}
    lock = {
        "comment": "Written by scripts/vendor.py from scripts/vendor/package-lock.json; do not edit.",
        "packages": dict(sorted(packages.items())),
        "imports": {specifier: place(path) for specifier, path in sorted(bare.items())},
        "files": dict(sorted(vendored.items())),
    }
    LOCK.write_text(json.dumps(lock, indent=2) + "\n")
    size = sum((TARGET / name).stat().st_size for name in vendored)
    print(f"vendored {len(vendored)} files of {len(packages)} packages ({size / 1024:.0f} KiB) into {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
