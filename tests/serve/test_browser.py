"""End to end: a real `flashgen serve` on loopback, driven by headless Chromium through the page.

Chromium is Debian's (`make browser-deps` installs it); Playwright only drives it (never
`playwright install`). Where either is missing the test is skipped and says why. Screenshots go
to a temporary folder; the ones in docs/img/ (README, docs/server.md) are refreshed with the
shipped student by
    FLASHGEN_SCREENSHOT_DIR=docs/img FLASHGEN_SERVE_TEST_MODEL=shapes-flash-4step \
        .venv/bin/pytest tests/serve/test_browser.py
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from flashgen.images import PARAMETERS_KEY

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(
    os.environ.get("FLASHGEN_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="flashgen-shots-")
)
SERVE_MODEL = os.environ.get("FLASHGEN_SERVE_TEST_MODEL", "tiny-random")  # as conftest.py
PROMPT = "a photo of a red circle above a blue square"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("FLASHGEN_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    exe = chromium_path()
    if exe is None:
        pytest.skip(
            "browser test skipped: no Chromium at /usr/bin/chromium or on PATH "
            "(`make browser-deps` installs Debian's chromium; set FLASHGEN_CHROMIUM to use another)"
        )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def expect(locator):
    from playwright.sync_api import expect as _expect

    _expect.set_options(timeout=60_000)  # a loaded CI machine is slow; a hang still fails
    return _expect(locator)


def open_page(browser, url, outside, **context):
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(60_000)

    def note(request):
        if not request.url.startswith((url, "data:", "blob:")):
            outside.append(request.url)

    page.on("request", note)
    page.goto(url + "/")
    expect(page.locator("#model")).to_have_text(SERVE_MODEL)
    return page


def open_recording(browser, served):
    """(page, the JSON bodies it POSTs, the outside addresses it fetches) for the served page."""
    url, _ = served
    outside: list[str] = []
    page = open_page(browser, url, outside)
    posted: list = []
    page.on("request", lambda r: r.method == "POST" and posted.append(r.post_data_json))
    return page, posted, outside


def test_generate_in_the_page_then_download_reuse_and_cancel(browser, served, tmp_path):
    url, _ = served
    outside: list[str] = []
    page = open_page(browser, url, outside, viewport={"width": 1280, "height": 760})
    jobs_posted = []
    page.on("request", lambda r: r.method == "POST" and jobs_posted.append(r.url))

    steps = httpx.get(url + "/health").json()["defaults"]["steps"]  # the model's: left blank
    page.fill("#prompt", PROMPT)
    page.fill("#count", "2")
    page.click("#dice")
    seed = int(page.input_value("#seed"))
    page.select_option("#size", "64x64")
    page.click("#generate")
    expect(page.locator("#gallery figure img")).to_have_count(2)
    expect(page.locator("#status")).to_have_text(re.compile(r"^done in "))
    sizes = page.eval_on_selector_all(
        "#gallery figure img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])"
    )
    assert sizes == [[True, 64], [True, 64]]
    captions = page.eval_on_selector_all("#gallery figcaption", "cs => cs.map(c => c.textContent)")
    assert f"seed {seed + 1}" in captions[0] and f"seed {seed}" in captions[1]
    assert all(PROMPT in c and f"{steps} steps" in c for c in captions)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "webui.png"))

    # download: the PNG carries the same metadata as the CLI's
    with page.expect_download() as info:
        page.click("#gallery figure:last-child .tools a")
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name == f"flashgen-{seed}.png"
    with Image.open(saved) as im:
        assert im.size == (64, 64)
        assert PROMPT in im.text[PARAMETERS_KEY] and f"Seed: {seed}" in im.text[PARAMETERS_KEY]

    # reuse settings fills the form from an image
    page.fill("#prompt", "something else")
    page.click("#gallery figure:first-child .tools button")
    assert page.input_value("#prompt") == PROMPT
    assert page.input_value("#seed") == str(seed + 1)
    assert page.input_value("#steps") == str(steps)

    # cancel stops a long job between steps
    page.fill("#steps", "100")
    page.fill("#count", "4")
    biggest = page.eval_on_selector("#size", "s => s.options[s.options.length - 1].value")
    page.select_option("#size", biggest)  # slowest size this model makes
    page.click("#generate")
    expect(page.locator("#status")).to_have_text(re.compile(r"^step \d+ of 100$"))
    page.focus("#prompt")
    page.keyboard.press("Control+Enter")  # while a job runs: no second job, Cancel stays usable
    expect(page.locator("#cancel")).to_be_enabled()
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("cancelled")
    assert page.eval_on_selector_all("#gallery figure", "fs => fs.length") == 2
    assert jobs_posted == [url + "/v1/jobs"] * 2, jobs_posted
    assert outside == [], f"the page fetched outside addresses: {outside}"


def test_image_to_image_from_a_file_and_from_a_gallery_image(browser, served, tmp_path):
    page, posted, outside = open_recording(browser, served)
    picture = tmp_path / "start.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(picture)
    expect(page.locator("#strength")).to_be_disabled()
    page.set_input_files("#start", str(picture))
    expect(page.locator("#startname")).to_have_text("start.png")
    expect(page.locator("#strength")).to_be_enabled()
    page.fill("#strength", "0.5")
    page.fill("#prompt", PROMPT)
    page.select_option("#size", "64x64")
    page.click("#generate")
    expect(page.locator("#gallery figcaption")).to_contain_text("strength 0.5")
    assert posted[0]["init_image"].startswith("data:image/png;base64,")
    assert posted[0]["strength"] == 0.5

    # a gallery image becomes the next start picture; Clear goes back to text to image
    page.click("#gallery figure .tools button:has-text('Start from it')")
    expect(page.locator("#startname")).to_have_text(re.compile(r"^the image of seed \d+$"))
    page.click("#generate")
    expect(page.locator("#gallery figure")).to_have_count(2)
    assert posted[1]["init_image"].startswith("data:image/png;base64,iVBOR")  # a PNG
    page.click("#nostart")
    expect(page.locator("#strength")).to_be_disabled()
    page.click("#generate")
    expect(page.locator("#gallery figure")).to_have_count(3)
    assert "init_image" not in posted[2] and "strength" not in posted[2]
    assert outside == [], f"the page fetched outside addresses: {outside}"


def test_inpainting_mask_painted_on_the_start_picture(browser, served, tmp_path):
    page, posted, outside = open_recording(browser, served)
    expect(page.locator("#maskbox")).to_be_hidden()
    from flashgen.shapes.prompts import scene_for_prompt
    from flashgen.shapes.render import render_scene

    picture = tmp_path / "start.png"
    scene = scene_for_prompt("a photo of a blue square", np.random.default_rng(7))
    Image.fromarray(render_scene(scene)).save(picture)
    page.set_input_files("#start", str(picture))
    expect(page.locator("#maskbox")).to_be_visible()
    expect(page.locator("#clearmask")).to_be_disabled()
    page.wait_for_function("document.getElementById('mask').width === 64")  # picture loaded
    page.locator("#mask").scroll_into_view_if_needed()
    box = page.locator("#mask").bounding_box()
    assert box["width"] > 100  # shown larger than the picture's 64 px, scaled back on painting
    for row in (0.3, 0.5, 0.7):  # three strokes over the left half
        y = box["y"] + box["height"] * row
        page.mouse.move(box["x"] + box["width"] * 0.1, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
        page.mouse.up()
    expect(page.locator("#maskstate")).to_contain_text("only the painted part")
    page.fill("#prompt", "a photo of a red circle")
    page.select_option("#size", "64x64")
    page.fill("#strength", "1")
    page.fill("#seed", "4")
    page.click("#generate")
    expect(page.locator("#gallery figcaption")).to_contain_text("inpainted")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "webui-inpaint.png"), full_page=True)
    data = posted[0]["mask_image"]
    assert data.startswith("data:image/png;base64,")
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("L"))
    assert mask.shape == (64, 64)  # the start picture's size
    assert mask[32, 18] == 255 and mask[32, 50] == 0 and mask[2, 18] == 0
    assert 0.1 < (mask > 127).mean() < 0.5
    assert posted[0]["paste_back"] is True  # unpainted pixels come back as they were
    page.click("#clearmask")
    expect(page.locator("#maskstate")).to_have_text("nothing painted")
    page.click("#generate")
    expect(page.locator("#gallery figure")).to_have_count(2)
    assert "mask_image" not in posted[1] and "init_image" in posted[1]
    assert "paste_back" not in posted[1]
    assert outside == [], f"the page fetched outside addresses: {outside}"


def _decoded(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_reuse_settings_brings_back_the_start_picture_and_mask(browser, served, tmp_path):
    page, posted, outside = open_recording(browser, served)
    picture = tmp_path / "start.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(picture)
    page.fill("#prompt", PROMPT)
    page.select_option("#size", "64x64")
    page.click("#generate")  # first a text-to-image result
    expect(page.locator("#gallery figure")).to_have_count(1)
    page.set_input_files("#start", str(picture))
    page.wait_for_function("document.getElementById('mask').width === 64")
    page.locator("#mask").scroll_into_view_if_needed()
    box = page.locator("#mask").bounding_box()
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.55, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.95, y, steps=5)
    page.mouse.up()
    page.fill("#strength", "0.9")
    page.uncheck("#pasteback")  # blended: the whole picture decoded again
    page.click("#generate")  # then an inpainted one
    expect(page.locator("#gallery figure")).to_have_count(2)
    expect(page.locator("#gallery figure:first-child figcaption")).to_contain_text(
        "inpainted, blended"
    )
    sent = posted[1]
    assert (_decoded(sent["mask_image"]) > 127).any()
    assert sent["paste_back"] is False
    page.check("#pasteback")  # the form moves on: back to pasting
    page.click("#nostart")  # the form moves on: no start picture
    expect(page.locator("#maskbox")).to_be_hidden()
    page.click("#gallery figure:first-child .tools button:has-text('Reuse')")
    expect(page.locator("#maskstate")).to_contain_text("only the painted part")
    assert page.input_value("#strength") == "0.9"
    expect(page.locator("#pasteback")).not_to_be_checked()
    page.click("#generate")
    expect(page.locator("#gallery figure")).to_have_count(3)
    again = posted[2]
    assert again["init_image"] == sent["init_image"] and again["strength"] == 0.9
    assert again["paste_back"] is False
    assert np.array_equal(_decoded(again["mask_image"]), _decoded(sent["mask_image"]))
    # reusing the text-to-image result goes back to text to image
    page.click("#gallery figure:last-child .tools button:has-text('Reuse')")
    expect(page.locator("#maskbox")).to_be_hidden()
    expect(page.locator("#startname")).to_have_text("none, text to image")
    page.click("#generate")
    expect(page.locator("#gallery figure")).to_have_count(4)
    assert "init_image" not in posted[3] and "mask_image" not in posted[3]
    assert outside == [], f"the page fetched outside addresses: {outside}"


def test_noise_source_is_sent_shown_and_reused(browser, served):
    page, posted, outside = open_recording(browser, served)
    assert page.input_value("#rng") == "cpu"  # the default: the other APIs' noise
    page.fill("#prompt", PROMPT)
    page.fill("#seed", "11")
    page.select_option("#size", "64x64")
    page.select_option("#rng", "nv")
    page.click("#generate")
    expect(page.locator("#gallery figcaption")).to_contain_text("seed 11 (NV noise)")
    assert posted[0]["rng"] == "nv"
    page.select_option("#rng", "cpu")
    page.click("#gallery figure .tools button:has-text('Reuse')")
    assert page.input_value("#rng") == "nv"  # the image's own noise source comes back
    assert outside == [], f"the page fetched outside addresses: {outside}"


def test_negative_prompt_is_off_for_a_model_without_guidance(browser, served):
    url, _ = served
    outside: list[str] = []
    page = open_page(browser, url, outside)
    if httpx.get(url + "/health").json()["defaults"]["guidance"] > 1:  # tiny-random: CFG
        expect(page.locator("#negative")).to_be_enabled()

    def unguided(route):  # /health as a distilled model (default guidance 1) answers it
        response = route.fetch()
        body = response.json()
        body["defaults"]["guidance"] = 1.0
        route.fulfill(response=response, json=body)

    page.route("**/health", unguided)
    page.reload()
    expect(page.locator("#model")).to_have_text(SERVE_MODEL)
    expect(page.locator("#negative")).to_be_disabled()
    expect(page.locator("#negative")).to_have_attribute("placeholder", re.compile("not used"))
    expect(page.locator("#guidance")).to_have_attribute("placeholder", "default 1")

    # a typed scale > 1 turns guidance, and with it the negative prompt, on; <= 1 off again
    page.fill("#guidance", "3.25")  # any scale: the field has no step grid
    expect(page.locator("#negative")).to_be_enabled()
    page.fill("#negative", "a green triangle")
    page.fill("#prompt", PROMPT)
    page.fill("#steps", "1")
    page.click("#generate")
    expect(page.locator("#gallery figcaption")).to_contain_text("not: a green triangle")
    expect(page.locator("#gallery figcaption")).to_contain_text("cfg 3.25")
    page.fill("#guidance", "1")
    expect(page.locator("#negative")).to_be_disabled()
    page.fill("#guidance", "")
    page.click("#gallery figure .tools button")  # reuse settings brings the scale back
    assert page.input_value("#guidance") == "3.25"
    expect(page.locator("#negative")).to_be_enabled()
    assert outside == []


def test_model_settings_grey_out_steps_and_guidance(browser, served_model_settings):
    url, _ = served_model_settings  # `flashgen serve --model-settings`
    outside: list[str] = []
    page = open_page(browser, url, outside)
    for field in ("#steps", "#guidance"):
        expect(page.locator(field)).to_be_disabled()
        expect(page.locator(field)).to_have_attribute("title", re.compile("--model-settings"))
    bodies = []
    page.on("request", lambda r: r.method == "POST" and bodies.append(r.post_data_json))
    page.fill("#prompt", PROMPT)
    page.click("#generate")
    expect(page.locator("#gallery figure img")).to_have_count(1)
    assert len(bodies) == 1 and "steps" not in bodies[0] and "guidance" not in bodies[0]
    page.click("#gallery figure .tools button")  # reuse settings leaves them to the model
    assert page.input_value("#steps") == "" and page.input_value("#guidance") == ""
    assert outside == []


def test_page_fits_a_phone_screen(browser, served):
    url, _ = served
    outside: list[str] = []
    page = open_page(
        browser,
        url,
        outside,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    page.fill("#prompt", PROMPT)
    page.fill("#steps", "1")
    page.click("#generate")
    expect(page.locator("#gallery figure img")).to_have_count(1)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    box = page.locator("#generate").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 36
    page.screenshot(path=str(SHOTS / "webui-phone.png"), full_page=True)
    assert outside == []
