"""Driving the standalone UI in Debian's Chromium (headless) with Selenium: the server, the browser and the few
moves a user makes (open a tab, type, click, read). Used by test_browser.py and make_screenshots.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import psutil

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def standalone(output: Path, python: str | None = None) -> Iterator[str]:
    """The standalone UI (.venv-ui) on a free port of 127.0.0.1, its jobs run by `python`; yields its URL."""
    port = free_port()
    command = [str(ROOT / ".venv-ui" / "bin" / "python"), "-m", "extension.standalone", "--port", str(port),
               "--output", str(output), "--python", python or str(ROOT / ".venv" / "bin" / "python")]
    log = open(output.parent / "standalone.log", "wb")
    server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the standalone UI did not start:\n" +
                                       (output.parent / "standalone.log").read_text(errors="replace")[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        for record in (output / ".jobs").glob("*/job.json"):  # a failed test leaves no job running
            job = json.loads(record.read_text(encoding="utf-8"))
            try:
                if abs(psutil.Process(job["pid"]).create_time() - job["created"]) < 1:
                    os.killpg(job["pid"], signal.SIGKILL)
            except (psutil.Error, ProcessLookupError):
                pass


@contextmanager
def chromium(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The UI as a user sees it: tabs by their label, fields and buttons by their elem_id."""

    def __init__(self, driver, url: str | None) -> None:
        """Open `url` (None: the page the browser shows, reloaded)."""
        self.driver = driver
        if url is not None:
            driver.get(url)
        self.wait(lambda: self.tabs(), 60, "the tabs")

    def tabs(self) -> dict:
        from selenium.webdriver.common.by import By

        return {b.text.strip(): b for b in self.driver.find_elements(By.CSS_SELECTOR, "button[role='tab'], "
                                                                                      ".tab-nav button")}

    def open_tab(self, label: str) -> None:
        """Open a tab and wait until its first field shows."""
        self.tabs()[label].click()
        self.wait(lambda: any(e.is_displayed() for e in self.driver.find_elements(
            "css selector", "[role='tabpanel'] textarea, [role='tabpanel'] input, .tabitem textarea, .tabitem input")),
            30, f"the {label} tab")

    def element(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def type(self, elem_id: str, text: str) -> None:
        """Type into a textbox as a user does (the page sees input events)."""
        field = self.element(f"#{elem_id} textarea, #{elem_id} input")
        field.clear()
        field.send_keys(text)

    def paste(self, elem_id: str, text: str) -> None:
        """Put a long text into a textbox at once, as a paste does (an input event after it)."""
        field = self.element(f"#{elem_id} textarea, #{elem_id} input")
        self.driver.execute_script("arguments[0].value = arguments[1];"
                                   "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", field, text)

    def click(self, elem_id: str) -> None:
        self.element(f"#{elem_id}").click()

    def text(self, elem_id: str) -> str:
        field = self.driver.find_elements("css selector", f"#{elem_id} textarea, #{elem_id} input")
        return field[0].get_attribute("value") if field else self.element(f"#{elem_id}").text

    def enter(self, elem_id: str, text: str) -> None:
        """Type a value of one's own into a dropdown (a checkpoint path) and confirm it with Enter."""
        from selenium.webdriver.common.keys import Keys

        field = self.element(f"#{elem_id} input")
        field.click()
        field.send_keys(text, Keys.ENTER)
        field.send_keys(Keys.ESCAPE)

    def choose_first(self, elem_id: str) -> str:
        """Open a dropdown and pick its first option; returns the option's text."""
        from selenium.webdriver.common.by import By

        self.element(f"#{elem_id} input").click()
        option = self.wait(lambda: [li for li in self.driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} ul.options li")
                                    if li.text.strip()], 30, f"the options of {elem_id}")[0]
        chosen = option.text.strip()
        option.click()
        return chosen

    def wait(self, condition: Callable, timeout: float, what: str):
        """Poll `condition` until it is truthy; an element being re-rendered (stale, not there yet) is tried again,
        and named in the message if the wait times out."""
        from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

        deadline, last = time.monotonic() + timeout, None
        while True:
            try:
                found = condition()
            except (NoSuchElementException, StaleElementReferenceException) as error:
                found, last = None, error
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" +
                                     (f" (last: {type(last).__name__}: {last.msg})" if last else ""))
            time.sleep(0.3)
