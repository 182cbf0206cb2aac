"""The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by Selenium): sign in, watch a batch progress live, cancel it, search the results
and open one. Screenshots go to test-artifacts/dashboard/ (BATCHYARD_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ServerFactory, client_for, make_requests, workspace_key

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("BATCHYARD_TEST_ARTIFACTS", "test-artifacts")) / "dashboard"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM and DRIVER):
        if os.environ.get("BATCHYARD_REQUIRE_BROWSER"):
            pytest.fail(
                "chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
            )
        pytest.skip("no chromium/chromedriver here; `make test` installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: WebDriver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


T = TypeVar("T")


class _LiveWait(WebDriverWait[WebDriver]):
    """A wait whose condition may read an element a live panel just replaced: Chrome
    (156) reports that as a generic "Node ... does not belong to the document" error,
    not as a stale element, so it is turned into one (and waited through)."""

    def until(self, method: Callable[[WebDriver], Literal[False] | T], message: str = "") -> T:
        def settled(driver: WebDriver) -> Literal[False] | T:
            try:
                return method(driver)
            except WebDriverException as exc:
                if "does not belong to the document" in (exc.msg or ""):
                    raise StaleElementReferenceException(exc.msg) from exc
                raise

        return super().until(settled, message)


def wait(driver: WebDriver, seconds: float = 20) -> WebDriverWait[WebDriver]:
    # Live panels replace their contents and pages navigate under the test's feet.
    flux = (NoSuchElementException, StaleElementReferenceException)
    return _LiveWait(driver, seconds, poll_frequency=0.1, ignored_exceptions=flux)


def find(driver: WebDriver, element_id: str) -> WebElement:
    """The element, once the page that has it has loaded (clicks don't wait for that)."""
    return wait(driver).until(ec.presence_of_element_located((By.ID, element_id)))


def follow(driver: WebDriver, link_text: str) -> None:
    wait(driver).until(ec.element_to_be_clickable((By.LINK_TEXT, link_text))).click()


def count(driver: WebDriver, element_id: str) -> int:
    return int(driver.find_element(By.ID, element_id).text.replace(",", ""))


def test_sign_in_watch_progress_cancel_and_open_a_result(
    start_server: ServerFactory, browser: WebDriver
) -> None:
    # Slow enough to watch: two engine slots, 150 ms a call; every 10th request errors.
    server = start_server("--fake-latency-ms", "150", "--fake-capacity", "2")
    key = workspace_key(server, "browsing")
    client = client_for(server, api_key=key)
    requests = make_requests(400)
    for r in requests[::10]:
        r["params"]["model"] = "no-such-model"  # type: ignore[index]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]

    # `/` is the dashboard, which asks for a key first; a wrong one is refused.
    browser.get(server.base_url + "/")
    find(browser, "key").send_keys("sk-by-api01-not-a-real-key")
    browser.find_element(By.ID, "sign-in").click()
    assert "not accepted" in find(browser, "login-error").text
    shot(browser, "00-sign-in-refused")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "sign-in").click()
    assert find(browser, "workspace-name").text == "browsing"

    # The batch list shows the batch in progress, and its progress moves without a reload.
    row = f'tr[data-batch="{batch.id}"]'
    assert browser.find_element(By.CSS_SELECTOR, row).get_attribute("data-status") == "in_progress"
    browser.execute_script("window.notReloaded = true;")
    before = browser.find_element(By.CSS_SELECTOR, f"{row} .progress-text").text
    wait(browser).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f"{row} .progress-text").text != before
    )
    assert browser.execute_script("return window.notReloaded === true;")
    engine = browser.find_element(By.CSS_SELECTOR, 'tr[data-engine="fake"]').text
    assert "fake" in engine
    shot(browser, "01-batches-live")

    # The batch's page: counts move live; results so far list the errored ones first.
    follow(browser, batch.id)
    find(browser, "count-succeeded")
    wait(browser).until(lambda d: count(d, "count-succeeded") > 20)
    assert browser.find_element(By.ID, "batch-status").text == "in_progress"
    bars = browser.find_elements(By.CSS_SELECTOR, "#throughput rect.seg-succeeded")
    assert bars  # requests finished per interval, drawn as they finish
    browser.refresh()  # the results table is drawn when the page loads
    find(browser, "results-count")
    kinds = [
        r.get_attribute("data-kind")
        for r in browser.find_elements(By.CSS_SELECTOR, "table.results tbody tr")
    ]
    assert kinds and kinds[0] == "errored" and "succeeded" in kinds
    assert kinds == sorted(kinds, key=lambda k: k != "errored")  # all errors before the rest
    shot(browser, "02-batch-running")

    # Cancel (the page asks first), then watch it end as canceled.
    browser.find_element(By.ID, "cancel-batch").click()
    wait(browser, 5).until(ec.alert_is_present())
    browser.switch_to.alert.accept()
    wait(browser).until(lambda d: d.find_element(By.ID, "batch-status").text == "canceled")
    assert not browser.find_elements(By.ID, "cancel-batch")
    shot(browser, "03-batch-canceled")
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled > 0
    assert count(browser, "count-canceled") == ended.request_counts.canceled
    assert count(browser, "count-succeeded") == ended.request_counts.succeeded

    # Search by custom_id, then open a succeeded and an errored result.
    results = {r.custom_id: r for r in client.messages.batches.results(batch.id)}
    box = browser.find_element(By.CSS_SELECTOR, '#results-search input[name="q"]')
    box.send_keys("req-3")
    box.submit()
    wait(browser).until(lambda d: "q=req-3" in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.results tbody tr")
    shown = [r.get_attribute("data-custom-id") or "" for r in rows]
    matching = sorted(c for c in results if c.startswith("req-3"))  # req-3, 30-39, 300-399
    assert f"of {len(matching)} results" in browser.find_element(By.ID, "results-count").text
    assert len(shown) == 50 and set(shown) <= set(matching)
    errored = [c for c in matching if results[c].result.type == "errored"]
    assert shown[: len(errored)] == sorted(errored, key=lambda c: int(c[4:]))  # errors first
    follow(browser, "req-3")
    assert find(browser, "result-kind").text == "succeeded"
    answer = results["req-3"].result
    assert answer.type == "succeeded"
    expected = "".join(b.text for b in answer.message.content if b.type == "text")
    assert browser.find_element(By.ID, "result-text").text == expected.strip()
    assert '"custom_id": "req-3"' in browser.find_element(By.ID, "result-json").text
    shot(browser, "04-result")

    browser.back()
    follow(browser, "req-30")
    assert find(browser, "result-kind").text == "errored"
    assert "no-such-model" in browser.find_element(By.ID, "result-error").text
    shot(browser, "05-errored-result")

    # Signing out ends the session: the dashboard asks for a key again.
    browser.find_element(By.ID, "sign-out").click()
    find(browser, "sign-in")
    browser.get(f"{server.base_url}/ui/batches/{batch.id}")
    find(browser, "sign-in")
    assert batch.id not in browser.page_source
