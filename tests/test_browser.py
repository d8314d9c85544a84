"""The admin review in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (never Selenium Manager, never a download).  ``.ci/run`` installs both
packages.  Where they are missing the test skips, saying which at the end of the run, and fails
instead when ``CI`` is set (a CI run must not pass without it).

Flow: log in as admin, open the dashboard, filter the AuthEvent changelist by a code, lock a
user from the user list through the form that asks why and until when, find the reason on the
account's page and in the event list, and unlock the account from the dashboard with a reason.
The dashboard, with the locked account, is saved to ``.artifacts/dashboard.png``.
"""

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from auth401.models import AccountStatus, AuthEvent

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / ".artifacts"
PASSWORD = "browser-admin-password-1"


def missing() -> list[str]:
    """What the browser test needs and this machine lacks."""
    absent = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if importlib.util.find_spec("selenium") is None:
        absent.append("the selenium package (pip install -e '.[dev]')")
    return absent


def verdict(absent: list[str], ci: str | None) -> tuple[str, str]:
    """("run", "") when nothing is missing; else ("skip", why), or ("fail", why) in CI (the
    ``CI`` variable set, as CI services set it): a run that must prove the admin works in a
    browser fails rather than passing without it."""
    if not absent:
        return "run", ""
    why = (
        f"the browser test did not run: missing {', '.join(absent)} (Debian's chromium and "
        "chromium-driver packages; .ci/run installs them with apt-get)"
    )
    return ("fail", why + "; CI is set, so this run must have them") if ci else ("skip", why)


def test_a_missing_browser_skips_loudly_and_fails_in_ci():
    assert verdict([], None) == ("run", "")
    assert verdict([], "true") == ("run", "")
    assert verdict(["/usr/bin/chromium"], None) == (
        "skip",
        "the browser test did not run: missing /usr/bin/chromium (Debian's chromium and "
        "chromium-driver packages; .ci/run installs them with apt-get)",
    )
    action, why = verdict(["/usr/bin/chromedriver"], "true")
    assert action == "fail"
    assert why.endswith("missing /usr/bin/chromedriver (Debian's chromium and chromium-driver "
                        "packages; .ci/run installs them with apt-get); CI is set, so this "
                        "run must have them")  # fmt: skip


@pytest.fixture
def browser(tmp_path):
    action, why = verdict(missing(), os.environ.get("CI"))
    if action == "fail":
        pytest.fail(why, pytrace=False)
    if action == "skip":
        pytest.skip(why)  # and listed at the end of the run (conftest's terminal summary)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1500",
        "--lang=en-US",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, css: str, timeout: float = 15):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def _submit_and_wait(driver, element, css: str):
    """Click ``element`` and wait for the next page (the old one goes stale, ``css`` shows)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element("tag name", "html")
    element.click()

    def gone(driver) -> bool:
        # chromedriver may answer "unhandled inspector error" about an element of a page
        # that is being replaced: that page is gone too.
        try:
            return expected_conditions.staleness_of(page)(driver)
        except WebDriverException:
            return True

    WebDriverWait(driver, 15).until(gone)
    return _wait(driver, css)


def _text(driver, css: str) -> str:
    return driver.find_element("css selector", css).text


@pytest.mark.django_db(transaction=True)
def test_admin_review_in_chromium(browser, live_server):
    from selenium.webdriver.support.ui import Select

    users = get_user_model()
    admin = users.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    bob = users.objects.create_user("bob", password="bob-password-1")
    now = timezone.now()
    for minutes, code, ip in [
        (3, "credentials_invalid", "203.0.113.5"),
        (8, "credentials_invalid", "203.0.113.5"),
        (40, "token_expired", "198.51.100.20"),
        (70, "token_expired", "198.51.100.20"),
        (60 * 5, "credentials_invalid", "203.0.113.5"),
        (60 * 9, "account_locked", "192.0.2.44"),
        (60 * 20, "credentials_missing", "192.0.2.44"),
    ]:
        AuthEvent.objects.create(
            created_at=now - timedelta(minutes=minutes),
            code=code,
            status_code=403 if code == "account_locked" else 401,
            username="bob",
            username_normalised="bob",
            user=bob,
            ip=ip,
            scheme="Bearer" if code.startswith("token") else "Basic",
            path="/api/me/",
            method="GET",
        )
    AuthEvent.objects.create(
        created_at=now - timedelta(minutes=60 * 30),
        code="credentials_invalid",
        status_code=401,
        username="robert.longname-of-the-finance-team@example-company.com",
        ip="2001:db8:85a3:1234:5678:8a2e:370:7334",
        scheme="Bearer",
        path="/api/v1/organisations/12345/members/67890/permissions/",
        method="GET",
        note="A note as long as a reason can be: " + "x" * 200,
    )
    url = live_server.url

    # Log in as admin.
    browser.get(f"{url}/admin/login/?next=/admin/")
    _wait(browser, "#id_username").send_keys("admin")
    browser.find_element("css selector", "#id_password").send_keys(PASSWORD)
    _submit_and_wait(
        browser, browser.find_element("css selector", "input[type=submit]"), "#content"
    )
    assert "Site administration" in browser.title
    assert "Authentication events" in _text(browser, "#content-main")

    # The dashboard: guessing apart from routine failures, nobody locked yet.
    browser.get(f"{url}/admin/auth401/authevent/dashboard/")
    _wait(browser, "#auth401-guessing")
    assert _text(browser, "h1") == "Authentication failures dashboard"
    assert len(browser.find_elements("css selector", "#auth401-guessing svg rect.bar")) == 24
    assert "4 failures since" in _text(browser, "#auth401-guessing")
    assert "3 failures since" in _text(browser, "#auth401-routine")
    assert "credentials_invalid 3" in _text(browser, "#auth401-guessing")
    assert "token_expired 2" in _text(browser, "#auth401-routine")
    assert "203.0.113.5 3" in _text(browser, "#auth401-top-ips")
    assert "bob 4" in _text(browser, "#auth401-top-usernames")
    assert "No account is locked." in _text(browser, "#auth401-locked")

    # From the dashboard to the changelist, then filter it by a code.
    _submit_and_wait(
        browser,
        browser.find_element("link text", "Authentication events"),
        "#changelist-filter",
    )
    filters = browser.find_element("css selector", "#changelist-filter")
    _submit_and_wait(browser, filters.find_element("link text", "token_expired"), "#result_list")
    assert "code=token_expired" in browser.current_url
    codes = [td.text for td in browser.find_elements("css selector", "#result_list .auth401-code")]
    assert codes == ["token_expired", "token_expired"]
    assert "2 authentication events" in _text(browser, ".paginator")

    # Lock bob from the user list: the action asks why and until when first.
    browser.get(f"{url}/admin/auth/user/")
    _wait(browser, "#result_list")
    row = browser.find_element("xpath", "//tr[.//th//a[text()='bob']]")
    row.find_element("css selector", "input.action-select").click()
    Select(browser.find_element("css selector", "select[name=action]")).select_by_value(
        "auth401_lock"
    )
    _submit_and_wait(
        browser,
        browser.find_element("css selector", "button[name=index]"),
        "#auth401-account-action-form",
    )
    assert _text(browser, "h1") == "Lock accounts"
    assert _text(browser, "#auth401-subjects") == "bob"
    reason = browser.find_element("css selector", "#id_reason")
    assert reason.get_attribute("required") == "true"  # the browser refuses an empty reason
    browser.find_element("css selector", "input[name=apply]").click()
    assert browser.execute_script("return arguments[0].validity.valueMissing", reason)
    assert AccountStatus.objects.filter(user=bob).count() == 0
    browser.find_element("css selector", "#id_reason").send_keys("Phishing report")
    Select(browser.find_element("css selector", "#id_duration")).select_by_value("24h")
    _submit_and_wait(
        browser, browser.find_element("css selector", "input[name=apply]"), ".messagelist"
    )
    assert "1 account locked." in _text(browser, ".messagelist")
    status = AccountStatus.objects.get(user=bob)
    assert (status.state, status.reason, status.changed_by) == ("locked", "Phishing report", admin)
    assert status.locked_until is not None

    # Bob's own page says why he cannot log in, at the top.
    browser.get(f"{url}/admin/auth/user/{bob.pk}/change/")
    facts = _wait(browser, "#auth401-login")
    first = browser.find_element("css selector", "#content-main fieldset h2")
    assert first.text.lower() == "account status"
    rows = {
        row.find_element("tag name", "th").text: row.find_element("tag name", "td").text
        for row in facts.find_elements("css selector", "table.auth401-login-facts > tbody > tr")
    }
    assert rows["state"].startswith("locked (by an administrator")
    assert rows["reason"] == "Phishing report"
    assert rows["by"].startswith("admin · ")
    assert (
        rows["ends"] == f"{timezone.localtime(status.locked_until):%Y-%m-%d %H:%M:%S} (in 24 hours)"
    )

    # The reason on the account's page and in the event list.
    browser.get(f"{url}/admin/auth401/accountstatus/{status.pk}/change/")
    _wait(browser, ".field-reason")
    assert "Phishing report" in _text(browser, ".field-reason")
    assert "Phishing report" in _text(browser, ".auth401-recent-events")
    browser.get(f"{url}/admin/auth401/authevent/?kind=account")
    _wait(browser, "#result_list")
    cells = browser.find_elements("css selector", "#result_list tbody tr")
    assert len(cells) == 1
    assert [
        cells[0].find_element("css selector", f"td.field-{name}").text
        for name in ("code_status", "who", "actor_note")
    ] == ["admin_lock", "bob (locked)", "admin: Phishing report"]

    # At 1280 pixels the whole event list shows, long addresses, paths and notes included:
    # no horizontal scroll, the last column inside the window.
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1280, 900)
    browser.get(f"{url}/admin/auth401/authevent/")
    _wait(browser, "#result_list")
    widths = browser.execute_script(
        "const r = document.querySelector('#changelist .results');"
        "const note = document.querySelector('#result_list td.field-actor_note');"
        "return [document.documentElement.scrollWidth, window.innerWidth,"
        " r.scrollWidth, r.clientWidth, note.getBoundingClientRect().right];"
    )
    page_width, window_width, list_width, list_box, note_right = widths
    assert page_width <= window_width and list_width <= list_box, widths
    assert note_right <= window_width, widths
    long_row = browser.find_element("xpath", "//tr[.//td[contains(., '2001:db8:85a3')]]")
    assert "/api/v1/organisations/12345/members/67890/permissions/" in long_row.text.replace(
        "\n", ""
    )
    assert browser.save_screenshot(str(ARTIFACTS / "events.png"))

    # The dashboard lists bob, with an Unlock button: the screenshot, then unlock with a reason.
    browser.get(f"{url}/admin/auth401/authevent/dashboard/")
    locked = _wait(browser, "#auth401-locked")
    assert "bob" in locked.text and "Phishing report" in locked.text and "admin" in locked.text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1280, browser.execute_script("return document.body.scrollHeight"))
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    _submit_and_wait(
        browser,
        locked.find_element("css selector", "a.auth401-unlock"),
        "#auth401-account-action-form",
    )
    assert _text(browser, "h1") == "Unlock accounts"
    browser.find_element("css selector", "#id_reason").send_keys("Verified by phone")
    _submit_and_wait(
        browser, browser.find_element("css selector", "input[name=apply]"), ".messagelist"
    )
    assert browser.current_url == f"{url}/admin/auth401/authevent/dashboard/"
    assert "1 account unlocked." in _text(browser, ".messagelist")
    assert "No account is locked." in _text(browser, "#auth401-locked")
    status.refresh_from_db()
    assert (status.state, status.reason, status.changed_by) == (
        "active",
        "Verified by phone",
        admin,
    )
    unlock = AuthEvent.objects.get(code="admin_unlock", user=bob)
    assert (unlock.actor, unlock.note) == (admin, "Verified by phone")
