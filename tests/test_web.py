"""The live page in a real browser (Debian's chromium, driven by selenium): a daemon with two file streams,
both streams' genres shown as the feed says, an upload classified as `rtgenre classify` does, a screenshot."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
import urllib.request

import pytest
from helpers import ROOT, free_port, rtgenre
from served import Served, track

pytestmark = pytest.mark.slow  # real daemons, devices, browsers or installs: `make test-fast` skips them


@pytest.fixture(scope="module")
def browser():
    missing = [t for t in ("chromium", "chromedriver") if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {', '.join(missing)} missing: `make test` installs chromium and chromium-driver")
        pytest.skip(f"needs chromium and chromium-driver ({', '.join(missing)} missing)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    yield driver
    driver.quit()


def wait_until(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return value


def test_the_page_shows_the_feed_and_classifies_an_upload(browser, data, tmp_path):
    from selenium.webdriver.common.by import By

    port = free_port()
    d = Served(tmp_path, [
        {"id": "hall", "source": "file", "path": track(data, "classical"), "loop": True, "speed": 2},
        {"id": "club", "source": "file", "path": track(data, "metal", 2), "loop": True, "speed": 2},
    ], web_port=port)  # fmt: skip
    try:
        browser.get(f"http://127.0.0.1:{port}/")

        def shown() -> dict[str, str]:
            cards = browser.find_elements(By.CSS_SELECTOR, "article.stream")
            return {c.get_attribute("data-stream"): c.get_attribute("data-genre") for c in cards}

        genres = wait_until(lambda: (g := shown()) and len(g) == 2 and all(g.values()) and g)
        for stream, genre in genres.items():  # what the page shows is what the feed said
            assert genre in {m["smoothed_top"] for m in d.of(stream, "window")}
        bars = browser.find_elements(By.CSS_SELECTOR, 'article[data-stream="hall"] .bars li')
        assert len(bars) == 10 and all(b.text.strip().endswith("%") for b in bars)  # numbers beside the colours

        song = data / "gtzan" / "metal" / "metal.00007.ogg"
        browser.find_element(By.ID, "file").send_keys(str(song))
        browser.find_element(By.CSS_SELECTOR, "#upload button").click()
        verdict = wait_until(lambda: browser.find_element(By.ID, "verdict").get_attribute("data-genre"))
        want = json.loads(rtgenre("classify", "--json", str(song)).stdout)
        assert verdict == want["genre"]
        shown_conf = float(browser.find_element(By.ID, "verdict").get_attribute("data-confidence"))
        assert shown_conf == pytest.approx(want["confidence"], abs=1e-6)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#result-probs tbody tr")) == 10
        browser.save_screenshot(str(tmp_path / "page.png"))
        if os.environ.get("RTGENRE_SCREENSHOT"):  # `make screenshot` refreshes the README's picture
            shutil.copy(tmp_path / "page.png", ROOT / "results" / "web-page.png")

        browser.set_window_size(360, 1400)  # a phone: the cards stack, nothing overflows
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 360
    finally:
        d.stop()


def test_a_bad_upload_is_one_line_and_too_large_is_refused(tmp_path, music):
    port = free_port()
    scratch = tmp_path / "tmp"  # the daemon's own temp dir: other tests' uploads may run meanwhile
    scratch.mkdir()
    d = Served(tmp_path, [{"id": "a", "source": "file", "path": str(music), "loop": True}], web_port=port,
               env={"TMPDIR": str(scratch)})  # fmt: skip
    try:

        def post(body: bytes, name: str) -> tuple[int, dict]:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/classify", body, {"X-Filename": name})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, body = post(b"this is not audio", "notes.ogg")
        assert status == 422 and body["error"].startswith("notes.ogg: ") and "\n" not in body["error"]
        status, body = post(music.read_bytes(), "music.wav")
        assert status == 200 and body["genre"] and len(body["window_probs"]) == body["windows"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # claims 200 MB, sends none of it
        conn.request("POST", "/classify", headers={"Content-Length": str(200_000_000), "X-Filename": "big.wav"})
        reply = conn.getresponse()
        assert reply.status == 413 and "up to 100 MB" in json.loads(reply.read())["error"].replace("1 byte to", "up to")
        assert not [p for p in os.listdir(scratch) if p.startswith("rtgenre-upload-")], "its temp dir is removed"
    finally:
        d.stop()


def test_a_browser_that_never_reads_costs_the_streams_nothing():
    """The hub never waits: a stalled browser's queue keeps only its newest messages; a late one gets the state."""
    from rtgenre.web import QUEUE, Hub

    hub = Hub()
    stalled = hub.connect()
    t0 = time.perf_counter()
    for i in range(20 * QUEUE):
        hub.send({"type": "window", "stream": f"s{i % 2}", "seq": i})
    assert time.perf_counter() - t0 < 1.0
    assert stalled.qsize() == QUEUE and stalled.get_nowait()["seq"] == 20 * QUEUE - QUEUE
    late = hub.connect()
    assert sorted(m["seq"] for m in (late.get_nowait(), late.get_nowait())) == [20 * QUEUE - 2, 20 * QUEUE - 1]
    hub.send({"type": "eos", "stream": "s0", "seq": 0})
    assert set(hub.latest) == {"s1"}  # an ended stream leaves the page
