"""Headless Chromium for the console's browser tests: Debian's ``chromium`` driven through its
``chromedriver`` by Selenium, with the driver path given so Selenium Manager downloads nothing.

Missing browser: the tests skip with the reason on a developer's machine, and fail in CI
(``CI=true``), where .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "console-screenshots"
WIDE = (1280, 800)
NARROW = (390, 844)


def require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    reason = (
        f"headless browser missing ({', '.join(missing)}): "
        "apt-get install -y chromium chromium-driver"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must run the browser tests")
    pytest.skip(reason)


def start_chromium(profile: Path, downloads: Path) -> Any:
    """A fresh headless Chromium with its own profile; downloads land in ``downloads``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--window-size={WIDE[0]},{WIDE[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    viewport(driver, WIDE)
    return driver


def viewport(driver: Any, size: tuple[int, int]) -> None:
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def screenshots(driver: Any, name: str) -> None:
    """The current page at the wide and the narrow size, as build/console-screenshots/*.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("wide", WIDE), ("narrow", NARROW)):
        viewport(driver, size)
        time.sleep(0.2)  # let layout settle after the resize (rendering only; asserts wait)
        driver.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))
    viewport(driver, WIDE)


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 180.0, what: str, driver: Any = None
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` (and showing
    ``driver``'s page text, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the page is mid-swap; ask again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; the page says: {_text(driver)}" if driver is not None else ""
            raise AssertionError(f"timed out waiting for {what}{seen}")
        time.sleep(0.2)


def clean(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _text(driver: Any) -> str:
    try:
        return str(driver.execute_script("return document.body.innerText"))[:3000]
    except Exception as exc:
        return f"(unreadable: {exc})"
