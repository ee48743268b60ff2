"""The console's static files, read once per process: every file with its gzip form, one version hash
for the whole tree, and the import map from `vendor.lock.json`.

Files are served under `/static/{version}/…`, where `version` is a hash of every file in the tree. So
relative imports between modules stay inside one version, every URL names immutable content (cached for
a year), and a release changes every URL at once. Only the HTML page is `no-cache`. The tree is a few
hundred KiB: holding it and its gzip in memory costs less than reading files per request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

STATIC = Path(str(resources.files("fluxstudio.web") / "static"))
LOCK = Path(str(resources.files("fluxstudio.web") / "vendor.lock.json"))
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".html": "text/html", ".json": "application/json", ".png": "image/png"}  # fmt: skip
#: Not worth compressing.
_MIN_GZIP = 512


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    media_type: str


@dataclass(frozen=True)
class StaticTree:
    version: str
    files: dict[str, StaticFile]
    #: bare specifier -> path under the tree (`vendor/...`)
    imports: dict[str, str]

    @classmethod
    def load(cls, root: Path = STATIC, lock: Path = LOCK) -> StaticTree:
        digest = hashlib.sha256()
        files: dict[str, StaticFile] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name = path.relative_to(root).as_posix()
            if name.endswith(("index.html", ".map")) or "/." in f"/{name}":
                continue
            body = path.read_bytes()
            digest.update(name.encode() + b"\0" + body + b"\0")
            media_type = (
                _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
            )
            packed = (
                gzip.compress(body, 9, mtime=0)
                if len(body) >= _MIN_GZIP and not name.endswith(".png")
                else None
            )
            files[name] = StaticFile(body, packed if packed and len(packed) < len(body) else None, media_type)
        locked = json.loads(lock.read_text())
        imports = {spec: "vendor/" + target for spec, target in locked["imports"].items()}
        return cls(digest.hexdigest()[:16], files, imports)

    def url(self, name: str) -> str:
        return f"/static/{self.version}/{name}"

    def import_map(self) -> str:
        """The page's import map: every vendored bare specifier, at this version's URLs."""
        mapping = {spec: self.url(target) for spec, target in sorted(self.imports.items())}
        return json.dumps({"imports": mapping}, separators=(",", ":"))
