"""The comparison notebook in a real browser: Voila renders ``notebooks/03_comparison_mode.ipynb``, headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium) changes a widget, and the
comparison's chart and table change with it.

The browser is required, not optional: without it the test fails and says how to install it
(``apt-get install -y chromium chromium-driver``; ``.ci/run`` does this).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "03_comparison_mode.ipynb"
INSTALL = "apt-get install -y chromium chromium-driver && pip install -e '.[notebooks]'"


def _find(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"none of {', '.join(names)} is installed; the browser test needs them: {INSTALL}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_url(tmp_path):
    """Voila serving the comparison notebook on a free local port (stopped after the test)."""
    if importlib.util.find_spec("voila") is None:
        pytest.fail(f"voila is not installed; it is part of the notebooks extra: {INSTALL}")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    log = open(tmp_path / "voila.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "voila", str(NOTEBOOK), f"--port={port}", "--no-browser",
         "--Voila.ip=127.0.0.1"],
        cwd=NOTEBOOK.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("voila did not start:\n" + (tmp_path / "voila.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def browser():
    chromium = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_comparison_notebook_reacts_to_a_widget(voila_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(voila_url)
    # the first panel of the notebook is the seed's comparison: its chart and table appear once the kernel ran
    chart = WebDriverWait(browser, 120).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "img.perfkit-chart"))[0]
    table = browser.find_elements(By.CSS_SELECTOR, ".perfkit-table")[0]
    WebDriverWait(browser, 30).until(lambda d: (chart.get_attribute("src") or "").startswith("blob:"))
    before_src, before_table = chart.get_attribute("src"), table.text
    assert "Llama-3.3-70B-Instruct" in before_table and "TTFT (ms)" in before_table
    row = next(line for line in before_table.splitlines() if line.startswith("batch_size"))
    assert row.split()[1:3] == ["1", "1"]

    batch = browser.find_element(By.CSS_SELECTOR, ".perfkit-form-B .perfkit-batch_size input")
    batch.send_keys(Keys.CONTROL, "a")
    batch.send_keys("64", Keys.ENTER)

    WebDriverWait(browser, 60).until(lambda d: chart.get_attribute("src") != before_src)
    WebDriverWait(browser, 30).until(lambda d: table.text != before_table)
    browser.save_screenshot(str(tmp_path / "comparison.png"))
    row = next(line for line in table.text.splitlines() if line.startswith("batch_size"))
    assert row.split()[1:3] == ["1", "64"]  # B's batch is now 64, A's unchanged
    ttft = next(line for line in table.text.splitlines() if line.startswith("TTFT (ms)"))
    before_ttft = next(line for line in before_table.splitlines() if line.startswith("TTFT (ms)"))
    assert ttft != before_ttft  # the figures were recomputed, not just the echo of the input
