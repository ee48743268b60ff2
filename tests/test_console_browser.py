"""The console in a real browser: Debian's Chromium driven by Playwright, against a real API server and a
real worker over loopback. Screenshots of the main views go to `test-artifacts/console/` (gitignored).

What is shown here: sign-in with a token and with the one-time link, the session cookie's attributes and
sign-out ending it on the server; CSRF refused (no token, a foreign Origin, a cross-site form); upload
of several files by drag and drop with live progress to ready; playback advancing; a comment at the
playhead with a drawing; a second browser seeing it live; an agent's MCP `add_comment` on the page in
under a second; presence between two browsers.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from fluxstudio.studio import sessions
from fluxstudio.studio.tokens import create_token
from tests.fixtures.platform import ApiServer, ApiUser
from tests.test_mcp import call, connect

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic",
        "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
VIEWPORT = {"width": 1360, "height": 860}

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    # Playwright waits 5 s by default; pages load slower on a crowded machine, and waiting costs nothing.
    expect.set_options(timeout=min(within(5), 60_000))
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


@contextlib.asynccontextmanager
async def signed_in(browser: Browser, user: ApiUser, **options) -> AsyncIterator[tuple[BrowserContext, Page]]:
    """A fresh browser context signed in through the page's token form."""
    context = await browser.new_context(base_url=user.server.url, viewport=VIEWPORT, **options)
    page = await context.new_page()
    try:
        await page.goto("/")
        await page.get_by_label("API token").fill(user.token)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Projects")).to_be_visible()
        yield context, page
    finally:
        await context.close()


def within(seconds: float) -> float:
    """A Playwright timeout (ms) for what the product promises within `seconds` on an idle machine, scaled
    by the load per core: the machine is shared, and a test must not fail because others are busy. The
    figures themselves are measured by tests/bench/bench_console.py and printed below."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * max(1.0, load) * 1000


def shot(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


async def test_sign_in_with_a_token_and_sign_out_ends_the_session(browser: Browser, make_user) -> None:
    user: ApiUser = await make_user("browser")
    async with signed_in(browser, user) as (context, page):
        cookie = next(c for c in await context.cookies() if c["name"] == sessions.COOKIE_NAME)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        stored = await page.evaluate(
            "JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})"
        )
        assert user.token not in stored and cookie["value"] not in stored
        assert await page.evaluate("document.cookie") == ""  # nothing for scripts to read
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_label("API token")).to_be_visible()
    # The old cookie is dead on the server, not just forgotten by the browser.
    async with httpx.AsyncClient(
        base_url=user.server.url, cookies={sessions.COOKIE_NAME: cookie["value"]}
    ) as c:
        answer = await c.get("/api/v1/session")
    assert answer.status_code == 401


async def test_a_wrong_token_is_refused_in_words(browser: Browser, api: ApiServer) -> None:
    context = await browser.new_context(base_url=api.url)
    page = await context.new_page()
    await page.goto("/")
    await page.get_by_label("API token").fill("fs_not-a-real-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("unknown or has been revoked")
    await context.close()


async def test_the_one_time_link_signs_in_once(browser: Browser, make_user, pool) -> None:
    user: ApiUser = await make_user("link")
    code = await sessions.create_signin_code(pool, email=user.email)
    context = await browser.new_context(base_url=user.server.url)
    page = await context.new_page()
    await page.goto(f"/signin?code={code}")
    await expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    assert "code" not in page.url  # the code never stays in the address bar or the history
    again = await browser.new_context(base_url=user.server.url)
    second = await again.new_page()
    await second.goto(f"/signin?code={code}")
    await expect(second.get_by_role("alert")).to_contain_text("already used")
    await context.close()
    await again.close()


async def test_csrf_is_refused(browser: Browser, make_user) -> None:
    user: ApiUser = await make_user("csrf")
    async with signed_in(browser, user) as (context, page):
        plain = await page.request.post("/api/v1/projects", data={"name": "no token"})
        assert plain.status == 403 and "CSRF" in (await plain.json())["detail"]
        csrf = (await (await page.request.get("/api/v1/session")).json())["csrf"]
        foreign = await page.request.post(
            "/api/v1/projects",
            data={"name": "foreign"},
            headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
        )
        assert foreign.status == 403
        good = await page.request.post(
            "/api/v1/projects", data={"name": "with token"}, headers={"X-CSRF-Token": csrf}
        )
        assert good.status == 201
        project_id = (await good.json())["id"]

        # The resumable upload is authenticated by the same cookie, so it asks for the same token.
        metadata = f"project_id {base64.b64encode(project_id.encode()).decode()},filename "
        metadata += base64.b64encode(b"clip.mp4").decode()
        tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "4", "Upload-Metadata": metadata}
        bare = await page.request.post("/api/v1/tus", headers=tus)
        assert bare.status == 403 and "CSRF" in (await bare.json())["detail"]
        created = await page.request.post("/api/v1/tus", headers={**tus, "X-CSRF-Token": csrf})
        assert created.status == 201
        location = created.headers["location"]
        head = await page.request.head(location, headers={"Tus-Resumable": "1.0.0"})  # a read: no token
        assert head.status == 200 and head.headers["upload-offset"] == "0"
        patch = {"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                 "Content-Type": "application/offset+octet-stream"}  # fmt: skip
        unsigned = await page.request.patch(location, headers=patch, data=b"abcd")
        assert unsigned.status == 403
        unsent = await page.request.delete(location, headers={"Tus-Resumable": "1.0.0"})
        assert unsent.status == 403
        ended = await page.request.delete(location, headers={"Tus-Resumable": "1.0.0", "X-CSRF-Token": csrf})
        assert ended.status == 204

        # A page of another site posting a form to the API: the browser does not send the cookie.
        async def evil(route):
            await route.fulfill(
                content_type="text/html",
                body=(
                    f'<form id=f method=post action="{user.server.url}/api/v1/projects" enctype="text/plain">'
                    '<input name=\'{"name":"evil","x":"\' value=\'"}\'></form><script>f.submit()</script>'
                ),
            )

        await context.route("http://evil.example/**", evil)
        attacker = await context.new_page()
        async with attacker.expect_response(lambda r: r.url.endswith("/api/v1/projects")) as posted:
            await attacker.goto("http://evil.example/")
        assert (await posted.value).status in (401, 403)
    async with user.client() as client:
        names = [p["name"] for p in (await client.get("/api/v1/projects")).json()["items"]]
    assert names == ["with token"]


async def _drop_files(page: Page, files: list[Path]) -> None:
    """Drag and drop real files onto the project page (a DataTransfer, as the OS would hand it over)."""
    payload = [{"name": f.name, "data": base64.b64encode(f.read_bytes()).decode()} for f in files]
    await page.evaluate(
        """(files) => {
            const transfer = new DataTransfer()
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0))
                transfer.items.add(new File([bytes], f.name, { type: 'video/mp4' }))
            }
            const target = document.querySelector('section.page')
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true }
            target.dispatchEvent(new DragEvent('dragover', init))
            target.dispatchEvent(new DragEvent('drop', init))
        }""",
        payload,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_review_in_the_browser(
    browser: Browser, make_user, pool, api_env, start_worker, tmp_path: Path
) -> None:
    from tests.fixtures.media import make_clip_in

    # A person with a readable name: these screenshots end up in the README.
    _, token = await create_token(pool, "console", email="maya@studio.example")
    user = ApiUser("maya@studio.example", token, (await make_user("review")).server)
    long_clip = make_clip_in(tmp_path, "dailies", size="1280x720", duration=12.0)
    short_clip = make_clip_in(tmp_path, "insert", size="320x240", duration=2.0)
    async with signed_in(browser, user) as (_, page):
        await page.get_by_label("New project name").fill("Launch trailer")
        await page.get_by_role("button", name="Create project").click()
        await expect(page.get_by_role("heading", name="Launch trailer")).to_be_visible()

        # Upload two files at once by drag and drop; each gets its own bar; no worker yet: queued.
        await page.evaluate("""() => { window.seenProgress = 0; new MutationObserver(() => {
            for (const bar of document.querySelectorAll('.job [role=progressbar]'))
                window.seenProgress = Math.max(window.seenProgress, +bar.getAttribute('aria-valuenow')) })
            .observe(document.body, { subtree: true, childList: true, attributes: true }) }""")
        requests: list[tuple[str, str]] = []
        page.on("request", lambda r: requests.append((r.method, r.url.split("/api/v1", 1)[-1].split("?")[0])))
        await _drop_files(page, [long_clip, short_clip])
        await expect(page.get_by_role("progressbar", name="Upload of dailies.mp4")).to_be_attached()
        await expect(page.get_by_role("progressbar", name="Upload of insert.mp4")).to_be_attached()
        cards = page.locator(".asset-card")
        await expect(cards).to_have_count(2, timeout=30_000)
        await expect(page.locator(".badge.queued")).to_have_count(2, timeout=15_000)
        await page.screenshot(path=shot("grid-queued"))
        # Both went by the resumable upload (tus), each with its own upload URL, not the streamed POST.
        assert [r for r in requests if r == ("POST", "/tus")] == [("POST", "/tus")] * 2
        assert len({path for method, path in requests if method == "PATCH" and path.startswith("/tus/")}) == 2
        assert not any(method == "POST" and path.endswith("/assets") for method, path in requests)
        start_worker(api_env)
        # One worker transcodes both (the default ladder): minutes when the machine is crowded.
        await expect(page.locator(".badge.ready")).to_have_count(2, timeout=min(within(120), 600_000))
        assert await page.evaluate("window.seenProgress") > 0  # live progress was shown on the way
        await page.screenshot(path=shot("grid"))

        # Playback advances.
        await page.get_by_role("link", name="Open dailies.mp4").click()
        await expect(page.get_by_role("heading", name="dailies.mp4")).to_be_visible()
        video = page.locator("video")
        await page.wait_for_function("() => document.querySelector('video').readyState >= 2", timeout=30_000)
        await page.keyboard.press("Space")
        await page.wait_for_function(
            "() => document.querySelector('video').currentTime > 1.0", timeout=20_000
        )
        await page.keyboard.press("k")
        await page.wait_for_function("() => document.querySelector('video').paused")
        playhead = await video.evaluate("v => v.currentTime")
        await page.keyboard.press(".")  # one frame on
        await page.wait_for_function(
            f"() => Math.abs(document.querySelector('video').currentTime - {playhead} - 1/30) < 0.02"
        )

        # Scrubbing previews a storyboard tile: storyboard_url's WebVTT cue, a region of its JPEG sprite.
        timeline = page.get_by_role("slider", name="Playhead")
        bounds = await timeline.bounding_box()
        assert bounds is not None
        await page.mouse.move(bounds["x"] + bounds["width"] * 0.75, bounds["y"] + bounds["height"] / 2)
        thumb = page.locator(".timeline .preview .thumb")
        await expect(thumb).to_be_visible()
        sprite = await thumb.evaluate("t => getComputedStyle(t).backgroundImage.slice(5, -2)")
        status, kind, size = await page.evaluate(
            "async (u) => { const r = await fetch(u); return [r.status, r.headers.get('content-type'),"
            " (await r.blob()).size] }",
            sprite,
        )
        assert status == 200 and kind.startswith("image/jpeg") and size > 1000
        await page.screenshot(path=shot("asset-view-scrub"))
        await page.mouse.move(0, 0)

        # The second browser: the same person in another window, on the same asset.
        async with signed_in(browser, user) as (_, other):
            await other.goto(page.url)
            await expect(other.get_by_role("heading", name="dailies.mp4")).to_be_visible()
            await expect(other.locator(".presence")).to_contain_text("another window", timeout=10_000)

            # A comment at the playhead, with a drawing on the paused frame.
            await page.get_by_role("button", name="Draw").click()
            box = await page.locator("canvas.overlay").bounding_box()
            assert box is not None
            await page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
            await page.mouse.down()
            await page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=8)
            await page.mouse.up()
            await expect(page.get_by_text("1 shape: drag on the paused frame")).to_be_visible()
            await page.get_by_role("button", name="Done drawing").click()
            at = await video.evaluate("v => v.currentTime")
            await page.get_by_label("Comment at").fill("The logo pops in a frame early")
            await page.get_by_role("button", name="Comment", exact=True).click()
            mine = page.locator(".comment", has_text="The logo pops in a frame early")
            await expect(mine).to_be_visible()
            started = time.monotonic()
            theirs = other.locator(".comment", has_text="The logo pops in a frame early")
            await expect(theirs).to_be_visible(timeout=within(2))
            live_s = time.monotonic() - started
            async with user.client() as client:
                asset_id = page.url.rsplit("/", 1)[1]
                stored = (await client.get(f"/api/v1/assets/{asset_id}/comments")).json()["items"]
            assert len(stored) == 1 and abs(stored[0]["time_s"] - at) < 0.01
            shape = stored[0]["annotation"]["shapes"][0]
            assert shape["type"] == "arrow" and all(0 <= v <= 1 for point in shape["points"] for v in point)
            # The drawing shows at its time on the other screen, after a click on the comment's timecode.
            await theirs.get_by_role("button", name="Go to").click()
            await other.wait_for_function(
                """() => { const c = document.querySelector('canvas.overlay')
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
                for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false }""",
                timeout=5_000,
            )

            # A reply and a resolve reach the other window too.
            await mine.get_by_role("button", name="Reply").click()
            await mine.get_by_label("Reply to").fill("Fixed in v2")
            await mine.get_by_role("button", name="Reply", exact=True).last.click()
            await expect(theirs.locator(".reply", has_text="Fixed in v2")).to_be_visible(timeout=within(2))

            # An agent comments through MCP: on the page in under a second.
            _, agent_token = await create_token(pool, "review-bot", email=user.email)
            async with connect(user.server.url, agent_token) as agent:
                sent = time.monotonic()  # from the call, so the tool's own time counts too
                await call(
                    agent, "add_comment", asset_id=asset_id, time_s=2.0, text="Audio peaks at -0.1 dBFS here"
                )
                arrived = page.locator(".comment", has_text="Audio peaks")
                await expect(arrived).to_be_visible(timeout=within(1) - (time.monotonic() - sent) * 1000)
                agent_s = time.monotonic() - sent
            await expect(
                page.locator(".comment", has_text="Audio peaks").locator(".badge.agent")
            ).to_be_visible()
            await (
                page.locator(".comment", has_text="The logo pops").get_by_role("button", name="Go to").click()
            )
            await page.screenshot(path=shot("asset-view"))
            await page.locator(".review").screenshot(path=shot("asset-view-small"), scale="css")
            print(f"comment to second browser {live_s:.3f} s; MCP add_comment to page {agent_s:.3f} s")

        await page.get_by_role("link", name="Projects", exact=True).click()
        await expect(page.get_by_role("heading", name="Projects")).to_be_visible()
        await page.screenshot(path=shot("projects"))

    async with signed_in(browser, user, color_scheme="dark") as (_, dark):
        await dark.get_by_role("link", name="Launch trailer").click()
        await expect(dark.locator(".badge.ready")).to_have_count(2)
        await dark.get_by_role("link", name="Open dailies.mp4").click()
        await expect(dark.locator(".comment")).to_have_count(2)
        await dark.wait_for_function("() => document.querySelector('video').readyState >= 2", timeout=30_000)
        # Once a frame is there the poster (a frame from the middle) gives way to it: picture = timecode.
        await dark.wait_for_function("() => !document.querySelector('video').getAttribute('poster')")
        await dark.screenshot(path=shot("asset-view-dark"))
        background = await dark.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 17, 21)"


async def test_static_files_are_gzipped_and_cached_for_good(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
        assert "script-src 'self' 'sha256-" in page.headers["content-security-policy"]
        main = next(part.split('"')[1] for part in page.text.split("src=")[1:] if "main.js" in part)
        module = await client.get(main, headers={"Accept-Encoding": "gzip"})
        assert module.status_code == 200 and module.headers["content-encoding"] == "gzip"
        assert module.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert module.headers["content-type"].startswith("text/javascript")
        stale = await client.get(main.replace(main.split("/")[2], "0" * 16))
        assert stale.headers["cache-control"] == "no-cache"  # another release's URL is never pinned
        assert (await client.get("/static/x/app/nothing.js")).status_code == 404
        for path in ("/projects/prj_x", "/signin"):
            assert (await client.get(path)).text == page.text
        review = (await client.get("/assets/ast_x")).text
        preloads = [part.split('"')[1] for part in review.split('rel="modulepreload" href=')[1:]]
        plain = [part.split('"')[1] for part in page.text.split('rel="modulepreload" href=')[1:]]
        assert any("hls.js@" in url for url in preloads) and not any("hls.js@" in url for url in plain)
        for url in preloads:  # every preload names a file that is served
            assert (await client.get(url)).status_code == 200, url


STORYBOARD = """WEBVTT

00:00:00.000 --> 00:00:02.000
sprites/board-0.jpg#xywh=0,0,160,90

00:00:02.000 --> 00:01:04.500
sprites/board-0.jpg#xywh=160,0,160,90
"""


async def test_storyboard_cues_are_read_from_webvtt_in_the_browser(browser: Browser, api: ApiServer) -> None:
    context = await browser.new_context(base_url=api.url)
    page = await context.new_page()
    await page.goto("/")
    player = await page.evaluate(
        "() => document.querySelector('script[type=module]').src.replace('main.js', 'player.js')"
    )
    cues = await page.evaluate(
        "async ([url, text]) => (await import(url)).parseStoryboard(text, 'https://cdn.example/hls/a/storyboard.vtt')",
        [player, STORYBOARD],
    )
    await context.close()
    assert cues == [
        {
            "start": 0,
            "end": 2,
            "url": "https://cdn.example/hls/a/sprites/board-0.jpg",
            "x": 0,
            "y": 0,
            "w": 160,
            "h": 90,
        },
        {
            "start": 2,
            "end": 64.5,
            "url": "https://cdn.example/hls/a/sprites/board-0.jpg",
            "x": 160,
            "y": 0,
            "w": 160,
            "h": 90,
        },
    ]
