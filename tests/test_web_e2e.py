"""End to end: start ``deepdenoise serve``, drive the page in headless Chromium (Playwright),
upload a noisy image, download the result and check it is cleaner than the input."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
playwright_sync = pytest.importorskip("playwright.sync_api")

from deepdenoise.metrics import psnr  # noqa: E402
from deepdenoise.noise import add_noise_numpy  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "deepdenoise", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server died") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")
def test_page_upload_denoise_slider_download(server: str, tmp_path: Path, camera: np.ndarray) -> None:
    """Upload, denoise (level estimated), then drag the noise-level slider down to half: the page
    re-runs with the new level and the downloaded result keeps more of the grain."""
    clean = camera[:160, :200]
    noisy = add_noise_numpy(clean, 25, seed=0)
    src = tmp_path / "noisy.png"
    Image.fromarray(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(src)
    OUTPUT.mkdir(exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 800}, accept_downloads=True)
        page.goto(server + "/")
        page.set_input_files("#file", str(src))
        page.click("#go")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.wait_for_function("document.getElementById('after').complete")
        assert "(estimated" in page.inner_text("#info") and "(estimated)" in page.inner_text("#level-out")
        estimated = float(page.input_value("#level"))
        assert 20 < estimated < 32
        with page.expect_download() as dl:
            page.click("#download")
        dl.value.save_as(str(tmp_path / "first.png"))
        first_src = page.get_attribute("#after", "src")
        page.eval_on_selector("#level", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input'));"
                              " el.dispatchEvent(new Event('change')); }", str(round(estimated / 2)))
        page.wait_for_function(f"document.getElementById('after').src !== {first_src!r}", timeout=60_000)
        page.wait_for_function("document.getElementById('after').complete")
        assert f"(estimated {estimated:.1f})" in page.inner_text("#level-out")
        box = page.locator("#before").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
        page.screenshot(path=str(OUTPUT / "web_page.png"), full_page=True)
        with page.expect_download() as dl:
            page.click("#download")
        dl.value.save_as(str(tmp_path / "second.png"))
        browser.close()
    first = np.asarray(Image.open(tmp_path / "first.png"), dtype=np.float32) / 255
    second = np.asarray(Image.open(tmp_path / "second.png"), dtype=np.float32) / 255
    assert first.shape == clean.shape
    assert psnr(first, clean) > psnr(noisy, clean) + 5
    assert np.abs(first - second).mean() > 1e-3  # the slider moved the result: half the level, ...
    assert np.abs(np.diff(second, axis=1)).mean() > np.abs(np.diff(first, axis=1)).mean()  # ... more grain left
    assert (OUTPUT / "web_page.png").stat().st_size > 10_000
