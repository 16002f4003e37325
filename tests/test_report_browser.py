"""The HTML report in a real browser: headless Chromium opens it from disk, runs nothing hostile, fetches nothing."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from harness.reports import render_report

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run_fixture"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs /usr/bin/chromium and /usr/bin/chromedriver: apt-get install -y chromium chromium-driver",
)


@pytest.fixture
def browser(tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[dev]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.add_argument("--window-size=1440,900")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.unhandled_prompt_behavior = "ignore"
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver, page_uri: str) -> list[str]:
    """Every URL the report page asked the network stack for (its own load included), from the DevTools log.

    Requests of the browser's own start page (chrome:// resources) belong to another document and are left out.
    """
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent" and message["params"].get("documentURL") == page_uri:
            urls.append(message["params"]["request"]["url"])
    return urls


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_opens_offline_and_runs_nothing_hostile(browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    html_path = render_report(run_dir, ["html"])[0]
    page_uri = html_path.resolve().as_uri()
    browser.get(page_uri)

    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert
    assert browser.title == "Run report: fixture"
    assert browser.execute_script("return document.title") != "pwned"
    planted = browser.execute_script("return document.body.innerText")
    assert "<script>document.title='pwned'</script>" in planted and "<img src=x onerror=alert(1)>" in planted

    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [url for url in resources if url.startswith(("http:", "https:"))]
    requests = requested_urls(browser, page_uri)
    assert page_uri in requests, "the DevTools log missed the page itself; the network check would be vacuous"
    assert requests == [page_uri], requests

    layout = browser.execute_script(
        "const r = document.querySelector('table.summary').getBoundingClientRect();"
        "const v = document.querySelector('#verdict').getBoundingClientRect();"
        "return [r.bottom, v.top, window.innerHeight];"
    )
    print(f"summary table bottom {layout[0]:.0f}px, verdict top {layout[1]:.0f}px, viewport {layout[2]}px")
    assert layout[1] < layout[2] and layout[0] <= layout[2], "headline, verdict and summary table should fit the first screen"

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    width, height = png_size(shot)
    assert width >= 800 and height >= 500
    assert shot.stat().st_size > 20_000, "screenshot is nearly empty"
