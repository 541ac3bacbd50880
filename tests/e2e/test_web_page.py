"""The web page at `/`, in a real headless Chromium (Debian's chromium and chromium-driver).

Selenium drives /usr/bin/chromedriver directly: Selenium Manager is never asked to download.
"""

import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from deploy.local_stack import LocalStack
from tests.support import reference_pi_text, wait_until

SCREENSHOT = Path("/tmp/pi-jobs-page.png")
APT_PACKAGES = ("chromium", "chromium-driver")


def browser_binaries() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (chromium, driver) if chromium and driver else None


def install_browser() -> tuple[str, str]:
    """Debian's packages when they are missing (as `make install` does); skip only if that fails."""
    if found := browser_binaries():
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium and chromium-driver are not installed and this user cannot apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *APT_PACKAGES]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"chromium is not installed and `{' '.join(step)}` failed: {done.stderr}")
    found = browser_binaries()
    if found is None:
        pytest.skip("apt-get installed chromium but no chromium/chromedriver binary was found")
    return found


@pytest.fixture
def page(stack: LocalStack) -> str:
    """The page's address, once the API is seen serving it there (and its script and style)."""
    for path, kind in (
        ("/", "text/html"),
        ("/static/app.js", "javascript"),
        ("/static/app.css", "css"),
    ):
        answer = httpx.get(f"{stack.url}{path}", timeout=30)
        assert answer.status_code == 200, f"the API must serve services/api/static at {path}"
        assert kind in answer.headers["content-type"], answer.headers["content-type"]
    return f"{stack.url}/"


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(
    downloads: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[webdriver.Chrome]:
    chromium, driver = install_browser()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield chrome
    finally:
        chrome.quit()


def wait_for(browser: webdriver.Chrome, css: str, timeout: float = 120) -> WebElement:
    def shown(driver: webdriver.Chrome) -> WebElement | Literal[False]:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found and found[0].is_displayed() else False

    element: WebElement = WebDriverWait(browser, timeout, poll_frequency=0.05).until(
        shown, f"waiting for {css}"
    )
    return element


def submit(browser: webdriver.Chrome, num: int | str) -> str:
    field = browser.find_element(By.ID, "num")
    field.clear()
    field.send_keys(str(num))
    browser.find_element(By.ID, "submit-button").click()
    wait_for(browser, "#job", timeout=30)
    job_id: str = WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "job-id").text or False
    )
    return job_id


def severe_console_messages(browser: webdriver.Chrome) -> list[str]:
    entries = browser.get_log("browser")  # type: ignore[no-untyped-call]
    return [str(entry["message"]) for entry in entries if entry["level"] == "SEVERE"]


def test_submit_watch_download_and_recent_jobs(
    stack: LocalStack, page: str, browser: webdriver.Chrome, downloads: Path
) -> None:
    browser.get(page)
    assert "pi-jobs" in browser.title
    label = browser.find_element(By.CSS_SELECTOR, "label[for='num']")
    assert label.text == "Number of decimals"

    job_id = submit(browser, 1000)
    assert len(job_id) == 32
    wait_for(browser, "#job-state[data-status='complete']")
    assert browser.find_element(By.ID, "job-state").text.startswith("Complete")
    assert browser.find_element(By.ID, "job-progress").get_attribute("value") == "1"
    assert browser.current_url.endswith(f"#job={job_id}")

    link = wait_for(browser, "#job-download")
    assert link.get_attribute("href") == f"{stack.url}/download_pi_job/{job_id}"
    link.click()
    saved = downloads / f"digits_of_pi_{job_id}.zip"
    wait_until(
        lambda: saved.exists() and not list(downloads.glob("*.crdownload")),
        60,
        f"{saved.name} in the download folder",
    )
    with zipfile.ZipFile(saved) as archive:
        assert archive.namelist() == [f"digits_of_pi_{job_id}.txt"]
        assert archive.read(archive.namelist()[0]).decode() == reference_pi_text(1000)

    row = wait_for(browser, f"#recent-jobs tr[data-job-id='{job_id}']", timeout=30)
    assert "Complete" in row.text and "1,000" in row.text
    assert row.find_element(By.LINK_TEXT, "zip").get_attribute("href") == (
        f"{stack.url}/download_pi_job/{job_id}"
    )
    assert "current" in (row.get_attribute("class") or "")

    browser.save_screenshot(str(SCREENSHOT))
    assert severe_console_messages(browser) == []


def test_live_progress_and_cancel(page: str, browser: webdriver.Chrome) -> None:
    browser.get(page)
    submit(browser, 20_000_000)
    wait_for(browser, "#job-state[data-status='in_progress']", timeout=60)
    state = browser.find_element(By.ID, "job-state")
    seen = {state.text}

    def shows_progress() -> bool:
        seen.add(state.text)  # the events keep the progress live
        return any(text.startswith("In progress") and "%" in text for text in seen)

    wait_until(shows_progress, 5, "the page to show live progress")
    browser.save_screenshot(str(SCREENSHOT.with_stem("pi-jobs-page-running")))

    cancel = wait_for(browser, "#job-cancel")
    cancel.click()
    wait_for(browser, "#job-state[data-status='cancelled']", timeout=30)
    assert state.text == "Cancelled"
    assert not browser.find_element(By.ID, "job-cancel").is_displayed()
    assert not browser.find_element(By.ID, "job-download").is_displayed()

    # Reloading keeps the job on screen (its id is in the address) and it stays cancelled.
    browser.refresh()
    wait_for(browser, "#job-state[data-status='cancelled']", timeout=30)
    assert severe_console_messages(browser) == []


def try_number(browser: webdriver.Chrome, text: str) -> str:
    """Type `text` as the number and submit: the message the page shows."""
    field = browser.find_element(By.ID, "num")
    field.clear()
    field.send_keys(text)
    browser.find_element(By.ID, "submit-button").click()
    message = wait_for(browser, "#message", timeout=30)
    assert message.get_attribute("role") == "alert"
    return message.text


def test_the_form_says_what_it_takes_and_reads_1e6(page: str, browser: webdriver.Chrome) -> None:
    browser.get(page)
    hint = browser.find_element(By.ID, "num-hint").text
    assert "from 1 to 1,000,000,000" in hint, "the server's maximum, in the page"
    expected = {
        "1e10": "Too many decimals: 10,000,000,000. This service computes at most 1,000,000,000.",
        "9" * 20: f"Too many decimals: {'9' * 20}. This service computes at most 1,000,000,000.",
        "0": "At least 1 decimal: enter a whole number from 1 to 1,000,000,000.",
        "2.5": "“2.5” is not a whole number. Enter one from 1 to 1,000,000,000, like 1000, "
        "1,000,000 or 1e6.",
    }
    for text, message in expected.items():
        assert try_number(browser, text) == message, text
    browser.save_screenshot(str(SCREENSHOT.with_stem("pi-jobs-page-refused")))
    assert not browser.find_element(By.ID, "job").is_displayed(), "nothing was submitted"

    submit(browser, "2e3")  # scientific notation is a whole number too
    details = browser.find_element(By.ID, "job-details").text
    assert "2,000" in details, details
    assert not browser.find_element(By.ID, "message").is_displayed()


def test_a_number_the_api_refuses_shows_its_reason(page: str, browser: webdriver.Chrome) -> None:
    browser.get(page)
    # As if the page's maximum were not the API's: the API's 422 is shown, in context.
    browser.execute_script("document.getElementById('num').dataset.max = '1' + '0'.repeat(30)")
    message = try_number(browser, "9" * 20)
    assert message.startswith(
        "The service refused 99,999,999,999,999,999,999 decimals: num must be a whole number "
        "from 1 to "
    ), message
    assert not browser.find_element(By.ID, "job").is_displayed()


def test_the_api_reference_renders_from_this_server_alone(
    stack: LocalStack, browser: webdriver.Chrome
) -> None:
    """/docs once loaded Swagger UI from a CDN and stayed blank without the internet."""
    page = httpx.get(f"{stack.url}/docs", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Content-Security-Policy" in page.headers  # only this server's scripts may run
    assert "http://" not in page.text and "https://" not in page.text
    browser.get(f"{stack.url}/docs")
    submit_call = wait_for(browser, "#operations section", timeout=30)
    assert submit_call.find_element(By.TAG_NAME, "h2").text == "POST /pi_job"
    assert "1 to 1000000000" in submit_call.text  # num's bounds, from the schema
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#operations h2")]
    assert {"GET /pi_job/{job_id}", "GET /pi_job/{job_id}/events", "DELETE /pi_job/{job_id}"} <= (
        set(headings)
    )
    assert wait_for(browser, "#schema-JobStatusBody").is_displayed()
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert fetched and all(url.startswith(stack.url) for url in fetched), fetched
    browser.save_screenshot(str(SCREENSHOT.with_stem("pi-jobs-docs")))
    assert severe_console_messages(browser) == []


def test_the_explorer_reads_and_searches_the_stored_digits(
    stack: LocalStack, page: str, browser: webdriver.Chrome
) -> None:
    browser.get(page)
    submit(browser, 1000)
    wait_for(browser, "#job-state[data-status='complete']")
    decimals = "3" + reference_pi_text(1000)[2:]

    start, count = (
        browser.find_element(By.ID, "digits-start"),
        browser.find_element(By.ID, "digits-count"),
    )
    start.clear()
    start.send_keys("990")
    count.clear()
    count.send_keys("11")
    browser.find_element(By.CSS_SELECTOR, "#digits-form button").click()
    shown = wait_for(browser, "#digits-output")
    WebDriverWait(browser, 30).until(lambda _: shown.text == decimals[990:1001])

    start.clear()
    start.send_keys("100000")  # the job computed one whole chunk of 100,000 decimals
    browser.find_element(By.CSS_SELECTOR, "#digits-form button").click()
    message = wait_for(browser, "#explore-message")
    assert "would store this range" in message.text, "past the stored digits: the API's 404"

    browser.find_element(By.ID, "search-q").send_keys("999999")
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    result = wait_for(browser, "#search-result button")
    assert result.text == "762"
    marked = wait_for(browser, "#digits-output mark")
    assert marked.text == "999999"
    browser.save_screenshot(str(SCREENSHOT.with_stem("pi-jobs-explorer")))

    browser.find_element(By.ID, "radix").send_keys("h")  # the select: hexadecimal
    assert browser.find_element(By.CSS_SELECTOR, "label[for='num']").text == (
        "Number of hexadecimal digits"
    )
    job_id = submit(browser, 12)
    wait_for(browser, "#job-state[data-status='complete']")
    assert "Hexadecimal digits" in browser.find_element(By.ID, "job-details").text
    status = httpx.get(f"{stack.url}/pi_job/{job_id}", timeout=30).json()
    assert (status["num"], status["radix"]) == (12, 16)
    unexpected = [m for m in severe_console_messages(browser) if "start=100000&" not in m]
    assert unexpected == [], "only the 404 asked for above"
