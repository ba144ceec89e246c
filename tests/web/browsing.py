"""Helpers for the headless-Chromium tests (the browser and page fixtures are in conftest.py)."""

import io
from pathlib import Path

from django.contrib.auth.models import User
from django.core.management import call_command

from tests.helpers.paths import REPO
from tests.web import desk_helpers

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"


def person(role: str) -> User:
    """A user named after its role, the roles set up first (a live-server test has no `roles` fixture)."""
    call_command("setup_roles", stdout=io.StringIO())
    return desk_helpers.person(role)


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)
