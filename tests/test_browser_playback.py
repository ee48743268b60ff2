"""A real player on another origin: hls.js (npm, pinned) in Debian's Chromium, driven by Playwright,
plays a public asset and a signed one from the API to 2 s of currentTime with every level.

The page is served from its own port, so every request it makes is cross-origin: `/media` must answer
CORS with `*`, and the signed asset's token is asked for by the page itself, with an Authorization
header, which only works because the API allows the page's origin (CORS_ORIGINS).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.media import make_clip_in
from tests.fixtures.platform import ApiServer, bound_socket
from tests.test_api_playback import SIGNING_KEY, ready_asset

pytestmark = pytest.mark.slow

HLS_JS = Path("node_modules") / "hls.js" / "dist" / "hls.min.js"  # in tests/js, pinned
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip

PLAYER = """<!doctype html>
<html><head><meta charset="utf-8"><title>FluxStudio player test</title></head>
<body style="margin:0;background:#222;color:#eee;font:14px sans-serif">
<video id="video" muted playsinline controls width="640" height="360"></video>
<pre id="log"></pre>
<script src="/hls.min.js"></script>
<script>
window.player = {levels: -1, fatal: null, errors: [], source: null};
async function play(source) {
  const video = document.getElementById("video");
  const hls = new Hls();
  window.player.source = source;
  hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
    window.player.levels = data.levels.length;
    video.play();
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    window.player.errors.push(data.details);
    if (data.fatal) window.player.fatal = data.details;
  });
  hls.loadSource(source);
  hls.attachMedia(video);
}
// A page that holds a user's API token asks for a playback token itself (cross-origin, with a preflight).
async function playSigned(api, token, assetId) {
  const answer = await fetch(`${api}/api/v1/assets/${assetId}/playback-tokens`, {
    method: "POST",
    headers: {"Authorization": `Bearer ${token}`, "Content-Type": "application/json"},
    body: JSON.stringify({ttl_s: 300}),
  });
  if (answer.status !== 201) { window.player.fatal = `token request answered ${answer.status}`; return; }
  await play((await answer.json()).playback_url);
}
</script></body></html>
"""


@pytest.fixture(scope="module")
def page_origin(tmp_path_factory: pytest.TempPathFactory, js_clients: Path) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): no browser to play in")
    root = tmp_path_factory.mktemp("player-page")
    (root / "player.html").write_text(PLAYER)
    shutil.copy(js_clients / HLS_JS, root / "hls.min.js")
    handler = functools.partial(_QuietHandler, directory=str(root))
    sock = bound_socket()
    server = http.server.ThreadingHTTPServer(sock.getsockname(), handler, bind_and_activate=False)
    server.socket = sock
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def browser_api(start_api, api_env: dict[str, str], page_origin: str) -> ApiServer:
    return start_api({**api_env, "PLAYBACK_SIGNING_KEY": SIGNING_KEY, "CORS_ORIGINS": page_origin})


@contextlib.asynccontextmanager
async def chromium():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def played(page, *, timeout_ms: float = 90_000) -> dict:
    await page.wait_for_function(
        "window.player.fatal !== null || document.getElementById('video').currentTime >= 2",
        timeout=timeout_ms,
    )
    return await page.evaluate(
        "({...window.player, currentTime: document.getElementById('video').currentTime})"
    )


async def test_hls_js_in_chromium_plays_public_and_signed_assets_from_another_origin(
    make_user, browser_api: ApiServer, api_env: dict, page_origin: str, start_worker, tmp_path: Path
) -> None:
    env = {**api_env, "PLAYBACK_SIGNING_KEY": SIGNING_KEY}
    start_worker(env, "--lease", "10")
    clip = make_clip_in(tmp_path, "browser", size="640x360", duration=5, fps=25)
    user = await make_user("browser", server=browser_api)
    async with user.client() as client:
        public = await ready_asset(client, clip, {"renditions": ["360p", "240p"]})
        signed = await ready_asset(client, clip, {"renditions": ["360p", "240p"]})
        await client.patch(f"/api/v1/assets/{signed['id']}", json={"playback_policy": "signed"})
    assert public["playback_url"].startswith(browser_api.url)

    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 660, "height": 420})
        await page.goto(f"{page_origin}/player.html")
        await page.evaluate("url => play(url)", public["playback_url"])
        state = await played(page)
        assert state["fatal"] is None, state
        assert state["currentTime"] >= 2 and state["levels"] == 2
        shot = tmp_path / "public.png"
        await page.screenshot(path=str(shot))
        assert shot.stat().st_size > 5_000

        page = await browser.new_page(viewport={"width": 660, "height": 420})
        await page.goto(f"{page_origin}/player.html")
        await page.evaluate("([api, token, id]) => playSigned(api, token, id)",
                            [browser_api.url, user.token, signed["id"]])  # fmt: skip
        state = await played(page)
        assert state["fatal"] is None, state
        assert state["currentTime"] >= 2 and state["levels"] == 2 and "token=" in state["source"]
        await page.screenshot(path=str(tmp_path / "signed.png"))

        # the signed asset's old public path, without a token: 403, and hls.js gives up
        page = await browser.new_page()
        await page.goto(f"{page_origin}/player.html")
        await page.evaluate("url => play(url)", signed["playback_url"])
        state = await played(page)
        assert state["fatal"] == "manifestLoadError" and state["currentTime"] == 0
