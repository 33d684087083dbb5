"""The site's shell, the admin page and the chair console at full size, end to end in a
real headless Chromium (Debian's /usr/bin/chromium driven by Playwright's Python
package) against a real `vcbridge serve`.

- `/` takes each role to its home; the header's navigation shows only the pages the
  role may use, the current one marked; the English switch lasts across pages.
- The admin page: accounts (create, errors next to their fields, edit, reset a
  password shown once, deactivate), endpoint tokens (issued and shown once with a copy
  button, revoked), the audit log with its filters and pages. Anyone else sees a
  refusal, and the API refuses them too.
- The chair console shows all 31 sites at once on 1366x768 (element boxes measured),
  the chair and the floor holder larger, the floor holder's buttons whole; beyond a
  screenful it pages, with a filter by state.

One service and one browser for the module. A screenshot of every state goes to
`test-artifacts/shell/` (or $VCBRIDGE_TEST_ARTIFACTS/shell). Skips without Chromium on
a developer's machine, fails in CI (VCBRIDGE_REQUIRE_ALL=1)."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from bridge.ice_policy import restrict_host_addresses
from harness.chromium import chromium_missing, new_page, password_of, running_chromium
from harness.service_process import Service, service_env
from tests.support import eventually as until
from tests.support import skip_or_fail
from tests.test_browser_pages import AiortcSite, book, conference_status

pytestmark = pytest.mark.asyncio(loop_scope="module")

ARTIFACTS = Path(os.environ.get(
    "VCBRIDGE_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
SHOTS = ARTIFACTS / "shell"
LOOPBACK = "127.0.0.1"
ADMIN_PASSWORD = "admin-password-e2e"  # harness/service_process.py
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
PHONE = {"width": 390, "height": 844}

# Each role: an account, where `/` takes it, and its menu (data-page of each link).
ROLES = {
    "admin": ("admin", "/calendar", ["calendar", "dashboard", "operator", "documents", "admin"]),
    "booker": ("booker-vp", "/calendar", ["calendar", "documents"]),
    "operator": ("op-nga-son", "/operator", ["operator", "join", "documents"]),
    "it": ("it-ky-thuat", "/dashboard", ["dashboard", "calendar", "documents"]),
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One `vcbridge serve` for the module, with a booker, an operator and an IT account."""
    missing = chromium_missing()
    if missing:
        skip_or_fail(missing)
    restrict_host_addresses([LOOPBACK])  # this process's aiortc sites too
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):  # this run's screenshots only
        old.unlink()
    started = Service(tmp_path_factory.mktemp("shell-service"), service_env(
        VCBRIDGE_ICE_HOST_ADDRESSES=LOOPBACK, VCBRIDGE_INVITE_TIMEOUT_SECONDS="2",
        VCBRIDGE_REDIAL_BACKOFF_SECONDS="1"))
    try:
        started.wait_healthy(timeout=60)
        started.login()
        for role, (username, _, _) in ROLES.items():
            if username == "admin":
                continue
            started.add_user(username, role, password_of(username),
                             "HUYEN-NGA-SON" if role == "operator" else None,
                             full_name="Nguyễn Văn An")
        yield started
    finally:
        started.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(service: Service) -> AsyncIterator[Any]:
    """One headless Chromium for the module (each test opens its own contexts)."""
    async with running_chromium() as browser:
        yield browser


@pytest.fixture
def errors() -> Iterator[list[str]]:
    """Script errors and policy violations of the test's pages: none allowed."""
    found: list[str] = []
    yield found
    assert found == []


def password(username: str) -> str:
    return ADMIN_PASSWORD if username == "admin" else password_of(username)


async def shot(page: Any, name: str) -> None:
    """Save the page as test-artifacts/shell/<name>.png."""
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def fill_login(page: Any, username: str) -> None:
    await page.wait_for_selector("#login-form")
    await page.fill("#username", username)
    await page.fill("#password", password(username))
    await page.click("#login-form button[type=submit]")


async def logged_in(browser: Any, service: Service, errors: list[str], path: str,
                    username: str) -> Any:
    """A new page (its own cookies) at `path`, logged in through the page's form."""
    page = await new_page(browser, service.base, errors)
    await page.goto(path)
    await fill_login(page, username)
    await page.wait_for_selector("#login-form", state="detached")
    return page


async def nav_pages(page: Any) -> list[str]:
    await page.wait_for_selector("#site-nav-list:not([hidden])")
    pages: list[str] = await page.eval_on_selector_all(
        "#site-nav a", "links => links.map(a => a.dataset.page)")
    return pages


async def current_page(page: Any) -> list[str]:
    current: list[str] = await page.eval_on_selector_all(
        "#site-nav a[aria-current=page]", "links => links.map(a => a.dataset.page)")
    return current


def http(service: Service, method: str, path: str, token: str | None = None,
         body: Any = None) -> tuple[int, Any]:
    """A request with `token` as bearer (no token: none), the body as JSON or text."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(service.base + path, data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def can_log_in(service: Service, username: str, secret: str) -> bool:
    status, _ = http(service, "POST", "/api/v1/auth/login",
                     body={"username": username, "password": secret})
    return status == 200



# -- the shell ------------------------------------------------------------------------------


async def test_each_role_lands_on_its_home_and_sees_only_its_pages(
    service: Service, browser: Any, errors: list[str]
) -> None:
    for role, (username, home, menu) in ROLES.items():
        page = await new_page(browser, service.base, errors)
        await page.goto("/")
        if role == "admin":
            await page.wait_for_selector("#login-form")
            # Nobody logged in: no menu yet, the language switch is there.
            assert await page.locator("#site-nav a").count() == 0
            await shot(page, "home-01-login")
        await fill_login(page, username)
        await page.wait_for_url(f"**{home}")

        # Logged in, `/` goes straight home: no login form again.
        await page.goto("/")
        await page.wait_for_url(f"**{home}")

        # The menu on a page of this branch: /admin for the admin, /join for the others
        # (the join page tells a non-operator it is for operators, under the same header).
        here = "/admin" if role == "admin" else "/join"
        await page.goto(here)
        assert await nav_pages(page) == menu, role
        hrefs = await page.eval_on_selector_all(
            "#site-nav a", "as => as.map(a => a.getAttribute('href'))")
        assert hrefs == [f"/{name}" for name in menu]
        expected_current = [here.strip("/")] if here.strip("/") in menu else []
        assert await current_page(page) == expected_current, role
        assert role != "admin" or await page.is_visible("#users-table")
        await shot(page, f"home-02-menu-{role}")
        await page.context.close()


async def test_the_menu_works_by_keyboard_and_on_a_phone(
    service: Service, browser: Any, errors: list[str]
) -> None:
    page = await logged_in(browser, service, errors, "/admin", "admin")
    await page.wait_for_selector("#users-table")
    # At 1366x768 the menu is a row of links in the header, no menu button.
    assert await page.is_hidden("#nav-toggle")
    box = await page.locator("#site-nav").bounding_box()
    assert box is not None and box["y"] < 56
    # Tab from the brand reaches the links in order.
    await page.focus(".brand")
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.dataset.page") == "calendar"

    await page.set_viewport_size(PHONE)
    toggle = page.locator("#nav-toggle")
    assert await toggle.is_visible()
    assert await page.is_hidden("#site-nav")
    await shot(page, "nav-01-phone-closed")
    await toggle.focus()
    await page.keyboard.press("Enter")
    assert await toggle.get_attribute("aria-expanded") == "true"
    assert await page.is_visible("#site-nav a[data-page=admin]")
    # The menu opens with the focus on its first link; Escape closes it.
    assert await page.evaluate("() => document.activeElement.dataset.page") == "calendar"
    assert await page.is_visible("#lang") and await page.is_visible("#user-box button")
    await shot(page, "nav-02-phone-open")
    await page.keyboard.press("Escape")
    assert await toggle.get_attribute("aria-expanded") == "false"
    assert await page.is_hidden("#site-nav")
    assert await page.evaluate("() => document.activeElement.id") == "nav-toggle"
    # The admin page's tables become cards that fit the phone's width.
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    await shot(page, "admin-10-phone-users")
    await page.context.close()


async def test_the_english_switch_lasts_across_pages(
    service: Service, browser: Any, errors: list[str]
) -> None:
    page = await logged_in(browser, service, errors, "/admin", "admin")
    await page.wait_for_selector("#users-table")
    assert await page.text_content("#site-nav a[data-page=admin]") == "Quản trị"
    await page.click("#lang")
    await page.wait_for_selector("html[lang=en]")
    assert await page.text_content("#site-nav a[data-page=admin]") == "Administration"
    assert await page.text_content("#tab-users") == "Accounts"
    # The admin's longest menu, in English, fits the header at 1366x768 beside the user.
    gap = await page.evaluate("""() => {
        const box = (selector) => document.querySelector(selector).getBoundingClientRect();
        return box('.topbar-right').left - box('#site-nav').right;
    }""")
    assert gap >= 16, gap
    await shot(page, "lang-01-admin-english")

    # Another page, and the home page's redirect: still English, without a click.
    for path, check in (("/join", "#site-nav a[data-page=calendar]"),
                        ("/chair/987654", "#site-nav a[data-page=calendar]")):
        await page.goto(path)
        await page.wait_for_selector(f"{check}")
        assert await page.get_attribute("html", "lang") == "en"
        assert await page.text_content(check) == "Calendar"
        assert await page.text_content(".brand-name") == "Video-conference network"
    assert "Conference 987654 was not found" in (await page.text_content("#app") or "")
    await shot(page, "lang-02-chair-english")
    await page.goto("/admin#audit")
    await page.wait_for_selector("#audit-table")
    assert await page.text_content("#tab-audit") == "Audit log"
    # Back to Vietnamese, and that lasts too.
    await page.click("#lang")
    await page.wait_for_selector("html[lang=vi]")
    await page.goto("/join")
    await page.wait_for_selector("#site-nav a[data-page=calendar]")
    assert await page.get_attribute("html", "lang") == "vi"
    assert await page.text_content("#site-nav a[data-page=calendar]") == "Lịch họp"
    await page.context.close()


async def test_a_non_admin_sees_a_refusal_and_the_api_refuses_too(
    service: Service, browser: Any, errors: list[str]
) -> None:
    for role in ("booker", "operator", "it"):
        username, _, menu = ROLES[role]
        page = await logged_in(browser, service, errors, "/admin", username)
        refusal = await page.wait_for_selector("#not-allowed")
        text = await refusal.text_content() or ""
        assert "Không có quyền truy cập" in text
        assert f"Tài khoản {username}" in text and "chỉ dành cho tài khoản quản trị" in text
        assert await page.locator("#users-table, #tab-users").count() == 0
        assert await nav_pages(page) == menu  # no "Quản trị" in its menu
        # The page hides nothing the server would give: the API refuses this account.
        refused = await page.evaluate("""async () => {
            const me = await (await fetch('/api/v1/auth/me')).json();
            const headers = {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token};
            const statuses = [];
            for (const [method, path, body] of [
                ['GET', '/api/v1/users'], ['GET', '/api/v1/audit'],
                ['GET', '/api/v1/audit/actions'],
                // Another endpoint's tokens (an operator may list its own calendar tokens).
                ['GET', '/api/v1/endpoints/HUYEN-HA-TRUNG/tokens'],
                ['POST', '/api/v1/users',
                 {username: 'sneaky', password: 'long-enough-pw', role: 'admin'}],
                ['POST', '/api/v1/users/1/password-reset', {}],
                // An agent token (the default scope): for an admin only, even of its own endpoint.
                ['POST', '/api/v1/endpoints/HUYEN-NGA-SON/tokens', {}]]) {
              const response = await fetch(
                path, {method, headers, body: body && JSON.stringify(body)});
              statuses.push(response.status);
            }
            return statuses;
        }""")
        assert refused == [403] * 7, (role, refused)
        if role == "booker":
            await shot(page, "admin-00-refused-booker")
            await page.set_viewport_size(PHONE)
            await shot(page, "admin-00-refused-booker-phone")
        await page.context.close()
    status, users = service.request("GET", "/api/v1/users")
    assert status == 200 and "sneaky" not in {u["username"] for u in users["users"]}


# -- the admin page -----------------------------------------------------------------------


async def _row(page: Any, username: str) -> Any:
    return page.locator(f'#users-table tr[data-username="{username}"]')


async def test_admin_creates_edits_resets_and_deactivates_an_account(
    service: Service, browser: Any, errors: list[str]
) -> None:
    page = await logged_in(browser, service, errors, "/admin", "admin")
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                         origin=service.base)
    await page.wait_for_selector("#users-table")
    assert await page.get_attribute("#tab-users", "aria-selected") == "true"
    await shot(page, "admin-01-users")

    # Nothing filled in: each problem is said next to its field, nothing is sent.
    await page.click("#new-user")
    await page.wait_for_selector("#user-form")
    await page.fill("#new-username", "Op Quảng Xương")
    await page.fill("#new-password", "ngắn")
    await page.click("#save-user")
    for name in ("username", "password", "endpoint"):
        error = page.locator(f'#user-form .field[data-field="{name}"] .field-error')
        assert await error.is_visible(), name
    assert "chữ thường không dấu" in (await page.locator(
        '#user-form .field[data-field="username"] .field-error').text_content() or "")
    assert await page.get_attribute("#new-username", "aria-invalid") is not None
    await shot(page, "admin-02-create-errors")

    # A valid operator, its endpoint chosen, a generated password.
    await page.fill("#new-username", "op-quang-xuong")
    await page.fill("#user-full-name", "Lê Thị Hoa <b>")
    await page.select_option("#user-endpoint", "HUYEN-QUANG-XUONG")
    await page.click("#generate-password")
    first_password = await page.input_value("#new-password")
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", first_password)
    await shot(page, "admin-03-create-filled")
    await page.click("#save-user")
    await page.wait_for_selector("#user-form", state="detached")
    row = await _row(page, "op-quang-xuong")
    await row.wait_for()
    cells = await row.locator("td").all_text_contents()
    assert cells[1] == "Lê Thị Hoa <b>"  # text, not markup
    assert cells[2:5] == ["Người vận hành", "UBND huyện Quảng Xương", "Đang hoạt động"]
    assert can_log_in(service, "op-quang-xuong", first_password)
    await shot(page, "admin-04-created")

    # The same user name again: the server's refusal lands next to the field.
    await page.click("#new-user")
    await page.fill("#new-username", "op-quang-xuong")
    await page.fill("#new-password", "long-enough-pw")
    await page.select_option("#user-endpoint", "HUYEN-QUANG-XUONG")
    await page.click("#save-user")
    taken = page.locator('#user-form .field[data-field="username"] .field-error')
    await taken.wait_for()
    assert await taken.text_content() == "Tên đăng nhập này đã có người dùng."
    await shot(page, "admin-05-name-taken")
    await page.keyboard.press("Escape")
    await page.wait_for_selector("#user-form", state="detached")

    # Edit: the operator becomes a booker (the endpoint field goes away).
    await row.locator("[data-action=edit]").click()
    await page.wait_for_selector("#user-form")
    await page.select_option("#user-role", "booker")
    assert await page.is_hidden("#user-endpoint")
    await page.click("#save-user")
    await page.wait_for_selector("#user-form", state="detached")
    await until(lambda: _cell(row, 2, "Cán bộ đặt lịch"), "the new role in the list")
    assert (await row.locator("td").all_text_contents())[3] == "—"

    # Reset the password: made by the server, shown once, copied; the old one is dead.
    await row.locator("[data-action=reset]").click()
    await page.wait_for_selector("#reset-form")
    await shot(page, "admin-06-reset-ask")
    await page.click("#reset-submit")
    secret = await page.wait_for_selector("#generated-password")
    new_password = await secret.input_value()
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", new_password)
    assert new_password != first_password
    await page.click("[data-copy=generated-password]")
    await page.wait_for_selector(".copy-status:has-text('Đã sao chép')")
    assert await page.evaluate("() => navigator.clipboard.readText()") == new_password
    await shot(page, "admin-07-reset-shown-once")
    await page.click("#reset-close")
    assert new_password not in (await page.content())  # gone once closed
    assert can_log_in(service, "op-quang-xuong", new_password)
    assert not can_log_in(service, "op-quang-xuong", first_password)

    # Deactivate (asked first): the account can no longer log in.
    await row.locator("[data-action=deactivate]").click()
    await page.wait_for_selector("#confirm-button")
    await shot(page, "admin-08-deactivate-confirm")
    await page.click("#confirm-button")
    await until(lambda: _cell(row, 4, "Đã khóa"), "the account shown deactivated")
    assert not can_log_in(service, "op-quang-xuong", new_password)
    # The admin cannot lock itself out from here.
    await page.fill("#user-search", "")
    assert await (await _row(page, "admin")).locator("[data-action=deactivate]").is_disabled()
    await page.fill("#user-search", "quang xuong")  # no diacritics
    await page.select_option("#user-state-filter", "inactive")
    assert await page.locator("#users-table tbody tr").count() == 1
    await shot(page, "admin-09-deactivated")

    # The tabs by keyboard: arrows move between them.
    await page.focus("#tab-users")
    await page.keyboard.press("ArrowRight")
    await page.wait_for_selector("#endpoint-search")
    assert await page.evaluate("() => [document.activeElement.id, location.hash]") == [
        "tab-tokens", "#tokens"]
    await page.context.close()


async def _cell(row: Any, index: int, text: str) -> bool:
    return (await row.locator("td").all_text_contents())[index] == text


async def test_admin_issues_a_token_shown_once_and_revokes_it(
    service: Service, browser: Any, errors: list[str]
) -> None:
    page = await logged_in(browser, service, errors, "/admin#tokens", "admin")
    await page.wait_for_selector("#endpoint-search")
    await shot(page, "tokens-01-pick")
    # "quang xuong" finds "Quảng Xương"; Enter picks the first match.
    await page.fill("#endpoint-search", "quang xuong")
    assert await page.eval_on_selector_all(
        "#endpoint-list [data-code]", "bs => bs.map(b => b.dataset.code)") == ["HUYEN-QUANG-XUONG"]
    await page.press("#endpoint-search", "Enter")
    await page.wait_for_selector("#token-endpoint:has-text('UBND huyện Quảng Xương')")
    assert await page.evaluate("() => location.hash") == "#tokens/HUYEN-QUANG-XUONG"

    # An agent token: shown once, and it works.
    await page.fill("#token-label", "Máy phòng họp tầng 2")
    await page.click("#issue-token")
    agent = await (await page.wait_for_selector("#token-secret")).input_value()
    assert agent.startswith("vca_")
    assert await page.is_visible("#new-token .secret-warning")
    status, me = http(service, "GET", "/api/v1/auth/me", agent)
    assert status == 200 and me["endpoint"] == "HUYEN-QUANG-XUONG"
    await shot(page, "tokens-02-agent-shown-once")

    # A calendar token: its subscription link is shown too, and the feed answers.
    await page.select_option("#token-scope", "calendar")
    await page.fill("#token-label", "Lịch Outlook của chánh văn phòng")
    await page.click("#issue-token")
    await page.wait_for_selector("#token-feed")
    calendar = await page.input_value("#token-secret")
    feed = await page.input_value("#token-feed")
    assert calendar != agent and feed.endswith(f"calendar.ics?token={calendar}")
    status, body = http(service, "GET", feed.removeprefix(service.base))
    assert status == 200 and "BEGIN:VCALENDAR" in body
    await shot(page, "tokens-03-calendar-shown-once")

    # Once the page is left, no secret is shown again: only the tokens' notes.
    await page.reload()
    await page.wait_for_selector("#tokens-table")
    content = await page.content()
    assert agent not in content and calendar not in content
    assert await page.locator("#token-secret").count() == 0
    rows = page.locator("#tokens-table tbody tr")
    assert await rows.count() == 2
    labels = await page.locator("#tokens-table tbody tr td:nth-child(2)").all_text_contents()
    assert labels == ["Lịch Outlook của chánh văn phòng", "Máy phòng họp tầng 2"]

    # Revoke the agent token (asked first): refused at once.
    agent_row = page.locator("#tokens-table tr[data-scope=agent]")
    await agent_row.locator("[data-action=revoke]").click()
    await page.wait_for_selector("#confirm-button")
    await shot(page, "tokens-04-revoke-confirm")
    await page.click("#confirm-button")
    await page.wait_for_selector("#tokens-table tr[data-scope=agent][data-state=revoked]")
    assert "Đã thu hồi" in (await agent_row.text_content() or "")
    assert await agent_row.locator("[data-action=revoke]").count() == 0
    status, _ = http(service, "GET", "/api/v1/auth/me", agent)
    assert status == 401
    await shot(page, "tokens-05-revoked")
    await page.set_viewport_size(PHONE)
    await shot(page, "tokens-06-phone")
    await page.context.close()


async def test_admin_filters_and_pages_the_audit_log(
    service: Service, browser: Any, errors: list[str]
) -> None:
    # Enough entries of one action for two pages of 50.
    for number in range(55):
        status, _ = service.request("POST", "/api/v1/endpoints/HUYEN-YEN-DINH/tokens",
                                    {"scope": "calendar", "label": f"Lịch {number}"})
        assert status == 201
    page = await logged_in(browser, service, errors, "/admin#audit", "admin")
    await page.wait_for_selector("#audit-table")
    await shot(page, "audit-01-all")

    # By action (the choices are the actions in the log, by name, with counts).
    option = page.locator("#audit-action option[value='endpoint.token_issue']")
    assert re.fullmatch(r"Cấp mã truy cập \(\d+\)", await option.text_content() or "")
    await page.select_option("#audit-action", "endpoint.token_issue")
    await page.click("#audit-apply")
    await page.wait_for_selector("#audit-results[data-state=ready]")
    first = await page.eval_on_selector_all("#audit-table tbody tr",
                                            "rs => rs.map(r => [r.dataset.action, r.dataset.id])")
    assert len(first) == 50 and {a for a, _ in first} == {"endpoint.token_issue"}
    ids = [int(i) for _, i in first]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert await page.text_content("#audit-page") == "Trang 1 · 1–50"
    assert await page.is_disabled("#audit-newer")
    await shot(page, "audit-02-action")
    # The next page goes on below the last id, then back.
    await page.click("#audit-older")
    await page.wait_for_selector("#audit-results[data-state=ready]")
    second = [int(i) for i in await page.eval_on_selector_all(
        "#audit-table tbody tr", "rs => rs.map(r => r.dataset.id)")]
    assert second and max(second) < min(ids)
    await shot(page, "audit-03-page-two")
    await page.click("#audit-newer")
    await page.wait_for_selector("#audit-results[data-state=ready]")
    assert await page.text_content("#audit-page") == "Trang 1 · 1–50"

    # The details: before and after, as text.
    await page.locator("#audit-table tbody tr").first.locator("summary").click()
    details = await page.locator("#audit-table tbody tr").first.locator("pre").text_content()
    assert '"scope": "calendar"' in (details or "")
    await shot(page, "audit-04-details")

    # By actor and target: the reset of op-nga-son's password, by the admin.
    user_id = next(u["id"] for u in service.request("GET", "/api/v1/users")[1]["users"]
                   if u["username"] == "op-nga-son")
    status, answer = service.request("POST", f"/api/v1/users/{user_id}/password-reset",
                                     {"password": password_of("op-nga-son")})
    assert status == 200, answer
    await page.click("#audit-clear")
    await page.fill("#audit-actor", "admin")
    await page.select_option("#audit-target-type", "user")
    await page.fill("#audit-target-id", str(user_id))
    await page.click("#audit-apply")
    await page.wait_for_selector("#audit-results[data-state=ready]")
    actions = await page.eval_on_selector_all("#audit-table tbody tr",
                                              "rs => rs.map(r => r.dataset.action)")
    assert actions == ["user.password_reset", "user.create"]
    row = page.locator("#audit-table tbody tr").first
    assert "Đặt lại mật khẩu" in (await row.text_content() or "")
    assert "op-nga-son (#" in (await row.text_content() or "")
    await shot(page, "audit-05-actor-target")

    # A range of days in Hanoi time: today has them, tomorrow nothing.
    today = datetime.now(HANOI).strftime("%d/%m/%Y")
    tomorrow = (datetime.now(HANOI) + timedelta(days=1)).strftime("%d/%m/%Y")
    await page.click("#audit-clear")
    await page.fill("#audit-from", today)
    await page.fill("#audit-to", today)
    await page.click("#audit-apply")
    await page.wait_for_selector("#audit-results[data-state=ready]")
    assert await page.locator("#audit-table tbody tr").count() == 50
    await page.fill("#audit-from", tomorrow)
    await page.fill("#audit-to", tomorrow)
    await page.click("#audit-apply")
    await page.wait_for_selector("#audit-results[data-state=ready]")
    assert await page.text_content("#audit-results") == "Không có mục nào khớp bộ lọc."
    await shot(page, "audit-06-empty-range")
    # The end before the start, or no date at all: said next to the field.
    await page.fill("#audit-from", tomorrow)
    await page.fill("#audit-to", today)
    await page.click("#audit-apply")
    error = page.locator('#audit-filters .field[data-field="to"] .field-error')
    await error.wait_for()
    assert await error.text_content() == "Ngày kết thúc phải từ ngày bắt đầu trở đi."
    await page.fill("#audit-to", "31/02/2026")
    await page.click("#audit-apply")
    assert "Ngày không hợp lệ" in (await error.text_content() or "")
    await shot(page, "audit-07-bad-dates")
    await page.context.close()


# -- the chair console at full size ---------------------------------------------------------

# Boxes of the console, in the page: is anything scrolled, cut, or outside the screen?
MEASURE = """() => {
  const box = (node) => node.getBoundingClientRect();
  const area = document.querySelector('.grid-area');
  const tiles = [...document.querySelectorAll('#grid .site-tile')];
  const areaBox = box(area);
  const outside = tiles.filter((tile) => {
    const b = box(tile);
    return b.top < areaBox.top - 1 || b.bottom > areaBox.bottom + 1 || b.left < areaBox.left - 1
      || b.right > areaBox.right + 1 || b.bottom > innerHeight || b.right > innerWidth;
  }).map((tile) => tile.dataset.code);
  const size = (code) => {
    const tile = document.querySelector(`.site-tile[data-code="${code}"]`);
    return tile ? [box(tile).width, box(tile).height] : null;
  };
  return {
    tiles: tiles.length, outside,
    pageScroll: [document.scrollingElement.scrollHeight, innerHeight,
                 document.scrollingElement.scrollWidth, innerWidth],
    areaScroll: [area.scrollHeight, area.clientHeight],
    sizes: Object.fromEntries(tiles.map((tile) => [tile.dataset.code, size(tile.dataset.code)])),
  };
}"""

# Every button of a tile shows its whole label: nothing cut or hidden by overflow.
CUT_BUTTONS = """(code) => {
  const tile = document.querySelector(`.site-tile[data-code="${code}"]`);
  const tileBox = tile.getBoundingClientRect();
  return [...tile.querySelectorAll('.tile-actions button')].filter((button) => {
    const text = button.querySelector('.button-text');
    const b = button.getBoundingClientRect();
    const t = text.getBoundingClientRect();
    return getComputedStyle(text).display === 'none' || text.scrollWidth > text.clientWidth + 1
      || button.scrollWidth > button.clientWidth + 1 || t.right > b.right + 1
      || b.right > tileBox.right + 1 || b.bottom > tileBox.bottom + 1;
  }).map((button) => button.textContent);
}"""


# The layout the console would take in its own grid area, for 31 and for 170 sites.
PLAN_170 = """async () => {
  const { gridLayout, pageCount, shortName } = await import('/static/chair_grid.js');
  const area = document.querySelector('.grid-area').getBoundingClientRect();
  const l31 = gridLayout(area.width, area.height, 2, 29);
  const l170 = gridLayout(area.width, area.height, 2, 168);
  return {
    fits31: l31.fits, fits170: l170.fits, perPage170: l170.perPage,
    pages170: pageCount(168, l170.perPage),
    short: ['UBND huyện Nga Sơn', 'UBND Thành phố Thanh Hóa', 'UBND Thị xã Bỉm Sơn',
            'Văn phòng Tỉnh ủy', "Nga Son District People's Committee",
            'Sở Thông tin và Truyền thông'].map(shortName),
  };
}"""


async def test_the_chair_console_shows_31_sites_at_once_and_pages_beyond_a_screenful(
    service: Service, browser: Any, errors: list[str]
) -> None:
    chair, holder, asking = "UBND-TINH", "HUYEN-NGA-SON", "HUYEN-HA-TRUNG"
    status, roster = service.request("GET", "/api/v1/endpoints")
    assert status == 200
    codes = [e["code"] for e in roster["endpoints"]]
    assert len(codes) == 31
    conference = book(service, chair, codes, datetime.now(UTC) + timedelta(seconds=1),
                      title="Hội nghị trực tuyến toàn tỉnh triển khai nhiệm vụ năm 2026")
    cid = conference["id"]
    await until(lambda: _async(conference_status(service, cid) in ("open", "live")), "the room")
    sites = [AiortcSite(service, cid, holder, (30, 60, 200)),
             AiortcSite(service, cid, asking, (200, 60, 30))]
    try:
        for site in sites:
            await site.client.join()
        page = await logged_in(browser, service, errors, f"/chair/{cid}", "admin")
        await page.wait_for_selector("#call-status[data-mode=live]", timeout=20000)
        for site in sites:
            await site.client.send({"type": "floor.request"})
        await page.wait_for_selector(f'.queue-item[data-code="{asking}"]')
        await page.click(f'.queue-item[data-code="{holder}"] [data-action="grant"]')
        await page.wait_for_selector(f'.site-tile[data-code="{holder}"][data-floor=true]')
        await page.click("#mute-all")
        await page.wait_for_selector(f'.site-tile[data-code="{asking}"][data-muted=true]')
        await page.wait_for_selector(f'.site-tile[data-code="{asking}"][data-asking=true]')

        # Every site at once on 1366x768: nothing scrolls, every tile is on the screen.
        seen = await page.evaluate(MEASURE)
        assert seen["tiles"] == 31 and seen["outside"] == [], seen
        height, inner_height, width, inner_width = seen["pageScroll"]
        assert height <= inner_height and width <= inner_width, seen["pageScroll"]
        assert seen["areaScroll"][0] <= seen["areaScroll"][1], seen["areaScroll"]
        assert await page.is_hidden("#grid-pager")
        # The chair and the floor holder larger than the others (about twice as wide).
        small = seen["sizes"]["HUYEN-YEN-DINH"]
        for big in (chair, holder):
            assert seen["sizes"][big][0] > 1.9 * small[0], (big, seen["sizes"][big], small)
            assert seen["sizes"][big][1] > 1.9 * small[1], (big, seen["sizes"][big], small)
        # Marks: state, muted, asking with its place in the queue, the floor.
        tile = page.locator(f'.site-tile[data-code="{asking}"]')
        assert await tile.locator(".chip-site-connected").is_visible()
        assert await tile.locator(".flag-muted").is_visible()
        assert "#1" in (await tile.locator(".flag-asking").text_content() or "")
        assert await page.locator(f'.site-tile[data-code="{holder}"] .flag-floor').is_visible()
        name = await page.text_content(".site-tile[data-code='HUYEN-YEN-DINH'] .tile-name")
        assert name == "Yên Định"  # a small tile's short name
        # The floor holder's buttons carry their whole Vietnamese words.
        assert await page.evaluate(CUT_BUTTONS, holder) == []
        holder_buttons = await page.locator(
            f'.site-tile[data-code="{holder}"] .tile-actions button').all_text_contents()
        assert holder_buttons == ["Tắt micro", "Thu hồi quyền phát biểu", "Mời ra"]
        # A small tile's buttons are named for screen readers and tooltips.
        mute = page.locator('.site-tile[data-code="HUYEN-YEN-DINH"] [data-action=mute]')
        assert await mute.get_attribute("aria-label") == "Bật micro"
        await shot(page, "chair-01-31-sites")

        await page.click("#lang")
        await page.wait_for_selector("html[lang=en]")
        assert await page.evaluate(CUT_BUTTONS, holder) == []
        seen = await page.evaluate(MEASURE)
        assert seen["tiles"] == 31 and seen["outside"] == [], seen
        await shot(page, "chair-02-31-sites-english")
        await page.click("#lang")
        await page.wait_for_selector("html[lang=vi]")

        # The filter: only the sites asking for the floor (the chair and holder stay).
        await page.click("#grid-filter [data-filter=asking]")
        shown = await page.eval_on_selector_all(
            "#grid .site-tile", "ts => ts.map(t => t.dataset.code)")
        assert shown == [chair, holder, asking]
        seen = await page.evaluate(MEASURE)  # three tiles: larger, still all on the screen
        assert seen["outside"] == [] and seen["areaScroll"][0] <= seen["areaScroll"][1], seen
        counts = await page.eval_on_selector_all(
            "#grid-filter .filter-count", "cs => cs.map(c => c.textContent)")
        assert counts == ["31", "1", "2", "29", "29"]  # all, asking, connected, not in, muted
        await shot(page, "chair-03-filter-asking")
        await page.click("#grid-filter [data-filter=connected]")
        assert await page.locator("#grid .site-tile").count() == 3  # chair, holder, the other
        await page.click("#grid-filter [data-filter=all]")

        # 170 sites (the 2025 structure) in this console's grid area: a few pages of
        # many small tiles, never a scrolled page.
        plan = await page.evaluate(PLAN_170)
        assert plan["fits31"] and not plan["fits170"], plan
        assert plan["perPage170"] >= 45 and plan["pages170"] <= 4, plan
        assert plan["short"] == ["Nga Sơn", "TP Thanh Hóa", "TX Bỉm Sơn", "VP Tỉnh ủy",
                                 "Nga Son District", "Sở Thông tin và Truyền thông"], plan

        # Beyond a screenful (a smaller window, a phone): pages, chair and holder on each.
        for name, size in (("small-window", {"width": 1024, "height": 600}), ("phone", PHONE)):
            await page.set_viewport_size(size)
            pager = await page.wait_for_selector("#grid-pager:not([hidden])")
            assert pager is not None
            pages = int(await page.get_attribute("#grid", "data-pages") or 0)
            assert pages >= 2, name
            while not await page.is_disabled("#page-prev"):  # to the first page
                await page.click("#page-prev")
            listed: list[str] = []
            for number in range(1, pages + 1):
                assert await page.text_content("#page-text") == f"Trang {number}/{pages}"
                codes_here = await page.eval_on_selector_all(
                    "#grid .site-tile", "ts => ts.map(t => t.dataset.code)")
                assert codes_here[:2] == [chair, holder], (name, number)
                listed += codes_here[2:]
                if number == 1:
                    await shot(page, f"chair-04-{name}-page-1")
                if number < pages:
                    await page.click("#page-next")
            assert sorted(listed) == sorted(set(codes) - {chair, holder}), name
            assert await page.is_disabled("#page-next")
            await page.click("#page-prev")
            assert await page.text_content("#page-text") == f"Trang {pages - 1}/{pages}"
        await page.context.close()
    finally:
        for site in sites:
            await site.stop()


async def _async(value: Any) -> Any:
    return value
