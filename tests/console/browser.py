"""Debian's headless Chromium driven by Selenium through /usr/bin/chromedriver (Selenium Manager is
never asked to find or download anything), and waits on what the page shows."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CONVEYOR_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WAIT_SECONDS = 20


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} not found: `make browser` (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: `make install` (it is a dev extra)"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 900, downloads: Path | None = None) -> Iterator[Any]:
    """A fresh headless Chromium (own profile dir) recording the page's console messages, saving
    downloads in `downloads` without asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager, if ever reached, must not download
    profile = tempfile.mkdtemp(prefix="conveyor-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingOptions", {"browser": "ALL"})
    if downloads is not None:
        prefs = {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """The first truthy value of `condition(driver)`; fails naming `what` and the console's errors."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # a live view may redraw between finding an element and reading it: look again
        wait = WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException])
        return wait.until(condition)
    except TimeoutException:
        raise AssertionError(f"the console did not show {what}; browser log: {console_errors(driver)}") from None


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def console_errors(driver: Any) -> list[str]:
    """Severe entries of the browser log (JS errors, failed requests) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def sign_in(driver: Any, base_url: str, key: str) -> None:
    """Open the console signed out (the tab's stored key forgotten) and sign in with `key`."""
    driver.get(f"{base_url}/console")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    field = wait_for(
        driver, lambda d: next(iter(e for e in css(d, "#api-key") if e.is_displayed()), None), "the key form"
    )
    field.send_keys(key)
    css(driver, "#login-form button[type=submit]")[0].click()
    wait_for(driver, lambda d: css(d, "#app") and css(d, "#app")[0].is_displayed(), "the console after sign-in")
