from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.helpers.factories import make_digest
from worker import render, screenshot
from worker.models import DigestItem

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian chromium at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def shots(django_db_setup, django_db_blocker, tmp_path_factory):
    """One browser run for the module: a 6-story digest with an unbreakable word in a summary."""
    with django_db_blocker.unblock():
        from django.db import transaction

        with transaction.atomic():
            digest = make_digest(6, theme={"logo_url": "https://cdn.example.com/logo.png"})
            DigestItem.objects.filter(digest=digest, position=2).update(
                summary_override="Workers said " + "Antidisestablishmentarianism" * 4 + " was the word.")
            html = render.for_archive(render.render_digest(digest)).html
            headlines = [item.headline for item in digest.items.all()]
            transaction.set_rollback(True)
    return screenshot.capture(html, tmp_path_factory.mktemp("shots")), headlines


def test_phone_width_has_no_horizontal_overflow(shots):
    phone = next(shot for shot in shots[0] if shot.width == 375)
    assert phone.scroll_width <= 375


@pytest.mark.parametrize("width", screenshot.WIDTHS)
def test_every_headline_is_visible(shots, width):
    shot = next(shot for shot in shots[0] if shot.width == width)
    assert shot.headlines == len(shots[1]) and shot.hidden_headlines == []
    assert shot.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_screenshot_command_writes_a_png_per_width(tmp_path):
    digest = make_digest(2)
    call_command("digest", "screenshot", str(digest.pk), "--out", str(tmp_path))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [f"digest-{digest.pk}-375.png",
                                                               f"digest-{digest.pk}-640.png"]


def test_screenshot_command_explains_a_missing_browser(settings, tmp_path):
    settings.NEWSDIGEST_CHROMIUM = str(tmp_path / "no-chromium")
    digest = make_digest(1)
    with pytest.raises(CommandError, match="no Chromium at"):
        call_command("digest", "screenshot", str(digest.pk), "--out", str(tmp_path))
