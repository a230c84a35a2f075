"""Debian's Chromium, headless, driven through Debian's chromedriver (Selenium): for the report's tests and its
open-time benchmark. No network: every host name resolves to nothing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextmanager
def chromium(width: int = 1300, height: int = 1000) -> Iterator[webdriver.Chrome]:
    """A headless Chromium session that keeps the page's console messages (``driver.get_log("browser")``)."""
    binary = shutil.which("chromium") or CHROMIUM
    driver_path = shutil.which("chromedriver") or CHROMEDRIVER
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_ready(driver: webdriver.Chrome) -> bool:
    """The report's script has drawn every chart and wired the table (it sets ``data-ready`` last)."""
    return driver.execute_script("return document.documentElement.dataset.ready === 'true'")
