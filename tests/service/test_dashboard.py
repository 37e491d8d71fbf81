"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

These tests fail, never skip, when Chromium is missing: ``bash scripts/setup --test`` installs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from playwright.async_api import Browser, Page, async_playwright, expect

from service.app import create_app
from service.settings import Settings
from tests.service.live_server import serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-token"
NODE_JOB = b'{"class":"add","queue":"math","args":[1,2]}'
NODE_FAILURE = (
    b'{"worker":"vm:10945","queue":"math","payload":{"class":"add","queue":"math","args":[1,2]},'
    b'"exception":"TypeError","error":"kaboom","backtrace":["    at add (jobs/math.js:4:11)"],'
    b'"failed_at":"Thu Dec 03 2026 15:40:42 GMT+0000 (Coordinated Universal Time)"}'
)


@pytest.fixture
def base_url(redis_url: str) -> Iterator[str]:
    app = create_app(Settings(redis_url=redis_url, admin_token=TOKEN))
    with serve(app) as url:
        yield url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `bash scripts/setup --test` (or apt-get install chromium)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def open_page(browser: Browser, base_url: str, width: int, height: int) -> tuple[Page, list[str]]:
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(10_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{base_url}/dashboard")
    return page, requested


async def sign_in(page: Page, token: str) -> None:
    await page.fill("#token", token)
    await page.click("#sign-in button[type=submit]")


async def test_show_queues_and_retry_failed_job(
    browser: Browser, base_url: str, sync_redis: redis.Redis, artifacts_dir: Path
) -> None:
    sync_redis.sadd("resque:queues", "math", "bitcoin:incoming")
    sync_redis.rpush("resque:queue:math", NODE_JOB)
    sync_redis.rpush("resque:failed", NODE_FAILURE)
    page, requested = await open_page(browser, base_url, 1280, 900)

    await expect(page.locator("#sign-in")).to_be_visible()
    await sign_in(page, "wrong")
    await expect(page.locator("#sign-in-error")).to_contain_text("not the admin token")
    await sign_in(page, TOKEN)

    math_row = page.locator("#queue-rows tr[data-queue='math']")
    await expect(math_row.locator("td.num")).to_have_text("1")
    await expect(page.locator("#queue-rows tr[data-queue='bitcoin:incoming'] td.num")).to_have_text("0")
    failure = page.locator("#failed-list li.failure")
    await expect(failure).to_have_count(1)
    await expect(failure).to_contain_text("TypeError: kaboom")
    await expect(failure).to_contain_text("add(1,2)")
    await failure.locator("summary").click()
    await expect(failure.locator("pre")).to_have_text("    at add (jobs/math.js:4:11)")
    await page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)

    await failure.locator("button.retry").click()
    await expect(page.locator("#failed-list li.failure")).to_have_count(0)
    await expect(math_row.locator("td.num")).to_have_text("2")
    assert sync_redis.lrange("resque:queue:math", 0, -1) == [NODE_JOB, NODE_JOB]
    assert sync_redis.llen("resque:failed") == 0

    await math_row.locator("button").click()
    await expect(page.locator("#queue-jobs-list li")).to_have_count(2)
    assert all(url.startswith(base_url) for url in requested), requested


async def test_refresh_dashboard_by_itself_on_phone_screen(
    browser: Browser, base_url: str, sync_redis: redis.Redis, artifacts_dir: Path
) -> None:
    sync_redis.sadd("resque:queues", "math")
    page, _ = await open_page(browser, base_url, 390, 844)
    await sign_in(page, TOKEN)
    await expect(page.locator("#queue-rows tr[data-queue='math'] td.num")).to_have_text("0")

    sync_redis.rpush("resque:queue:math", NODE_JOB, NODE_JOB, NODE_JOB)
    sync_redis.rpush("resque:failed", NODE_FAILURE)
    await expect(page.locator("#queue-rows tr[data-queue='math'] td.num")).to_have_text("3")
    await expect(page.locator("#failed-list li.failure")).to_have_count(1)
    await expect(page.locator("#counts")).to_contain_text("Pending3")

    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    await page.screenshot(path=str(artifacts_dir / "dashboard-phone.png"), full_page=True)

    await page.reload()  # the token lives in this tab's sessionStorage, so a reload stays signed in
    await expect(page.locator("#app")).to_be_visible()
    await page.click("#sign-out")
    await expect(page.locator("#sign-in")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
