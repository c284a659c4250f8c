"""Open an HTML file in headless Chromium (Debian's ``chromium`` and ``chromium-driver``) via Selenium.

Used by the report's test and to make the README's screenshot.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-extensions", "--no-first-run")


def chromium_available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


@dataclass
class PageCheck:
    title: str
    console_errors: list[str]
    height: int


def open_page(path: Path, screenshot: Path | None = None, width: int = 1280) -> PageCheck:
    """Load ``path``, collect console errors (level SEVERE), and save a full-page screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},900")
    options.binary_location = shutil.which("chromium") or "chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    try:
        driver.get(path.resolve().as_uri())
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if screenshot is not None:
            driver.set_window_size(width, height)
            driver.save_screenshot(str(screenshot))
        return PageCheck(driver.title, errors, height)
    finally:
        driver.quit()
