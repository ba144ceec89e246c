"""What the web tests share: the desk's roles, signed-in editor and operator and a three-story digest;
a headless Chromium and a page in it."""

import io
import os

import pytest
from django.core.management import call_command
from django.test import Client

from tests.helpers.factories import make_digest
from tests.web.browsing import CHROMIUM
from tests.web.desk_helpers import client_for, person
from worker.models import Digest


@pytest.fixture
def roles():
    call_command("setup_roles", stdout=io.StringIO())


@pytest.fixture
def editor(roles) -> Client:
    return client_for(person("editor"))


@pytest.fixture
def operator(roles) -> Client:
    return client_for(person("ops"))


@pytest.fixture
def digest() -> Digest:
    return make_digest(stories=3)


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; Django's ORM would refuse to run beside it.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"])
            yield chromium
            chromium.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
