"""What only the local folder does: stay inside its root (symlinks included), write atomically, and be
chosen by `open_storage` for a `file://` STORAGE_URL."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fluxstudio.config import load_settings
from fluxstudio.errors import Conflict, Invalid
from fluxstudio.storage import LocalStorage, open_storage
from fluxstudio.storage.local import TEMP_PREFIX


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "passwd").write_bytes(b"root:x:0:0")
    return secret


async def test_a_symlinked_file_leading_outside_is_refused(root: Path, outside: Path) -> None:
    storage = LocalStorage(root)
    await storage.put("assets/a1/ok.txt", b"ok")
    (root / "assets/a1/evil.txt").symlink_to(outside / "passwd")
    with pytest.raises(Invalid):
        b"".join([c async for c in storage.open("assets/a1/evil.txt")])
    with pytest.raises(Invalid):
        await storage.stat("assets/a1/evil.txt")
    with pytest.raises(Invalid):
        await storage.put("assets/a1/evil.txt", b"overwritten")
    assert (outside / "passwd").read_bytes() == b"root:x:0:0"


async def test_a_symlinked_folder_leading_outside_is_refused(root: Path, outside: Path) -> None:
    storage = LocalStorage(root)
    root.mkdir()
    (root / "jobs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Invalid):
        await storage.put("jobs/planted.txt", b"x")
    with pytest.raises(Invalid):
        await storage.delete_prefix("jobs")
    with pytest.raises(Invalid):
        await storage.list("jobs")
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]


async def test_writes_leave_no_temporary_files_and_are_private(root: Path, tmp_path: Path) -> None:
    storage = LocalStorage(root)
    await storage.put("hls/j1/master.m3u8", b"#EXTM3U\n")
    source = tmp_path / "upload.mp4"
    source.write_bytes(b"private")
    await storage.put_file("sources/a1/source.mp4", source)
    assert os.listdir(root / "hls/j1") == ["master.m3u8"]
    assert stat.S_IMODE((root / "hls/j1/master.m3u8").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "sources/a1/source.mp4").stat().st_mode) == 0o600


async def test_a_setgid_folder_shares_objects_with_its_group(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2750)  # `chmod 2750 media`, as the README says for a group that must read the files
    storage = LocalStorage(shared)
    await storage.put("sources/a1/source.mp4", b"private")
    assert stat.S_IMODE((shared / "sources/a1/source.mp4").stat().st_mode) == 0o640


async def test_a_crashed_write_is_invisible(root: Path) -> None:
    storage = LocalStorage(root)
    await storage.put("hls/j1/seg_1.m4s", b"done")
    (root / "hls/j1" / f"{TEMP_PREFIX}abc").write_bytes(b"half a segm")  # what a killed writer leaves
    assert await storage.list("hls") == ["hls/j1/seg_1.m4s"]
    assert await storage.delete_prefix("hls/j1") == 1
    assert not (root / "hls/j1").exists()


async def test_a_key_running_through_an_object_is_a_conflict(root: Path) -> None:
    storage = LocalStorage(root)
    await storage.put("a/b", b"an object")
    with pytest.raises(Conflict):
        await storage.put("a/b/c", b"x")
    with pytest.raises(Conflict):
        await storage.put("a/b/c/d", b"x")
    await storage.put("x/y/z", b"deep")
    with pytest.raises(Conflict):
        await storage.put("x/y", b"over a folder")
    assert await storage.list("") == ["a/b", "x/y/z"]


def test_the_root_must_be_absolute() -> None:
    with pytest.raises(Invalid):
        LocalStorage(Path("relative/media"))


async def test_url_is_none_without_a_public_base(root: Path) -> None:
    assert LocalStorage(root).url("hls/j1/master.m3u8") is None


def test_open_storage_builds_local_storage_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings("transcode", {"STORAGE_URL": (tmp_path / "m").as_uri()})
    storage = open_storage(settings)
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "m").resolve()
    assert storage.url("a.m3u8") is None
    assert open_storage(settings, public_base_url="http://127.0.0.1:8000/media/").url("a b.m3u8") == (
        "http://127.0.0.1:8000/media/a%20b.m3u8"
    )
