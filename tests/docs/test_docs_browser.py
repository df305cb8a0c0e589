"""The built site in a real browser: Debian's Chromium, headless, driven by Selenium
through chromedriver (``scripts/quickstart.sh`` installs both).

The site is served from 127.0.0.1 by a thread of this process. Checked: the index
and every guide render (title, heading, the guide's code), the site's own search
(Sphinx's JavaScript index) finds ``quantize_tensor``, and a screenshot of the index
page is written to ``docs/_build/screenshots/index.png`` for a person to look at.
"""
import functools
import http.server
import re
import tempfile
import threading
from pathlib import Path

import pytest

import docs_site
import guide_blocks

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: The flags of a headless run that talks to nothing but the local server.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900")
SCREENSHOT = docs_site.BUILD / "screenshots" / "index.png"


@pytest.fixture(scope="module")
def server():
    """The site's base URL on 127.0.0.1 (an ephemeral port)."""
    handler = functools.partial(_QuietHandler, directory=str(docs_site.site()))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium with a fresh profile."""
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), \
        "needs Debian's chromium and chromium-driver (scripts/quickstart.sh installs them)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css).text


def test_the_index_renders_and_a_screenshot_is_written(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/index.html")
    assert browser.title.startswith("tensorflow_kappa")
    assert _text(browser, "article h1").startswith("tensorflow_kappa")
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR,
                                                                     "article a")]
    assert any(link.endswith("guides/quickstart.html") for link in links)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    image = _png_pixels(SCREENSHOT)
    assert image.shape[1] >= 1000 and image.shape[0] >= 600, image.shape
    assert image.std() > 0.05, "the screenshot is blank"


def _png_pixels(path: Path):
    import matplotlib.image
    return matplotlib.image.imread(str(path))


@pytest.mark.parametrize("page", guide_blocks.guide_pages(), ids=lambda p: p.stem)
def test_every_guide_renders(server, browser, page):
    from selenium.webdriver.common.by import By

    title = re.search(r"^# (.+)$", page.read_text(), re.M).group(1)
    browser.get(f"{server}/guides/{page.stem}.html")
    heading = _text(browser, "article h1").rstrip("#¶ \n")
    assert heading == title.replace("`", ""), (heading, title)
    code = browser.find_elements(By.CSS_SELECTOR, "article div.highlight pre")
    assert code and all(block.text.strip() for block in code[:3])
    # the navigation sidebar links every guide
    sidebar = [a.get_attribute("href") for a in
               browser.find_elements(By.CSS_SELECTOR, ".sidebar-tree a")]
    assert sum("/guides/" in link for link in sidebar) == len(guide_blocks.guide_pages())


def test_the_search_finds_quantize_tensor(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/search.html?q=quantize_tensor")
    WebDriverWait(browser, 60).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#search-results ul.search li")))
    results = [a.get_attribute("href") for a in
               browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")]
    assert any("tensorflow_kappa.quantization.quantize_tensor" in link for link in results), \
        results[:10]
