"""A newcomer's set-up mistakes end in one line naming the fix and a non-zero exit, never a traceback."""

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.helpers.factories import approved_digest
from tests.helpers.processes import free_port, newsdigest, subprocess_env
from worker import render
from worker.models import Digest, IngestRejection


def one_line_failure(*args: str, env: dict[str, str], code: int) -> str:
    result = newsdigest(*args, env=env, check=False)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def bare_env(tmp_path, **extra: str) -> dict[str, str]:
    env = subprocess_env(NEWSDIGEST_VAR_DIR=str(tmp_path), **extra)
    for name in ("REDIS_URL", "EMAIL_URL"):
        env.pop(name, None)
    env.update(extra)
    return env


@pytest.mark.django_db
def test_a_bad_database_url_names_the_accepted_forms(tmp_path):
    env = bare_env(tmp_path, DATABASE_URL="mysqlx://reader:secret@db.example/news")
    assert one_line_failure("digest", "list", env=env, code=2) == (
        "newsdigest digest: DATABASE_URL is not a database URL (unknown scheme 'mysqlx'); use "
        "postgres://USER:PASSWORD@HOST:5432/NAME or sqlite:////absolute/path.sqlite3")


@pytest.mark.django_db
def test_an_unreachable_database_names_the_url_without_its_password(tmp_path):
    port = free_port()
    env = bare_env(tmp_path, DATABASE_URL=f"postgres://reader:secret@127.0.0.1:{port}/news")
    assert one_line_failure("digest", "list", env=env, code=2) == (
        f"newsdigest digest: cannot use the database at DATABASE_URL=postgres://***@127.0.0.1:{port}/news "
        f"(connection failed: connection to server at \"127.0.0.1\", port {port} failed: Connection refused); "
        f"check DATABASE_URL and that the database server is running")


@pytest.mark.django_db
def test_an_unmigrated_database_says_run_migrate(tmp_path):
    env = bare_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    assert one_line_failure("digest", "list", env=env, code=2) == (
        "newsdigest digest: the database is not set up (or is behind this version): run `newsdigest migrate`")


@pytest.mark.django_db
def test_ingest_with_redis_down_fails_at_once_naming_redis_url(tmp_path):
    article = tmp_path / "a.txt"
    article.write_text("Council backs bridge repair\n\nThe council voted on Tuesday to repair the bridge.\n")
    port = free_port()
    env = bare_env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert one_line_failure("ingest", str(article), env=env, code=1) == (
        f"CommandError: cannot reach Redis at REDIS_URL=redis://127.0.0.1:{port}/0 (Error 111 connecting to "
        f"127.0.0.1:{port}. Connection refused); start Redis or fix REDIS_URL "
        f"(or pass --no-summarize to store the articles only)")


@pytest.mark.django_db
def test_send_with_redis_down_fails_at_once_and_leaves_the_digest_approved(settings):
    port = free_port()
    settings.CELERY_BROKER_URL = settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    digest = approved_digest(2)
    with pytest.raises(CommandError) as refused:
        call_command("send", str(digest.pk), "--yes", stdout=StringIO())
    assert str(refused.value) == (f"cannot reach Redis at REDIS_URL=redis://127.0.0.1:{port}/0 (Error 111 "
                                  f"connecting to 127.0.0.1:{port}. Connection refused); start Redis or fix REDIS_URL")
    assert Digest.objects.get(pk=digest.pk).status == Digest.Status.APPROVED


@pytest.mark.django_db
def test_ingest_that_refuses_everything_exits_non_zero_and_says_each_refusal_once(tmp_path, capsys):
    pdf, sheet = tmp_path / "scan.pdf", tmp_path / "sheet.xlsx"
    pdf.write_bytes(b"%PDF-1.4")
    sheet.write_bytes(b"PK")
    console = logging.StreamHandler(StringIO())  # stands for the console handler of settings.LOGGING
    logging.getLogger("newsdigest").addHandler(console)
    try:
        with pytest.raises(CommandError, match="^nothing ingested: all 2 refused$"):
            call_command("ingest", str(pdf), str(sheet), "--no-summarize")
    finally:
        logging.getLogger("newsdigest").removeHandler(console)
    known = ".eml, .htm, .html, .json, .md, .txt"
    assert capsys.readouterr().err.splitlines() == [
        f"refused {pdf}: unsupported file type .pdf; use one of {known}",
        f"refused {sheet}: unsupported file type .xlsx; use one of {known}",
    ]
    assert console.stream.getvalue() == ""  # not logged to the console a second time
    assert IngestRejection.objects.count() == 2


@pytest.mark.django_db
def test_preview_into_a_folder_writes_the_file_inside_it(tmp_path):
    digest = approved_digest(1)
    render.ensure_rendered(digest)
    out = StringIO()
    call_command("digest", "preview", str(digest.pk), "--out", str(tmp_path), stdout=out)
    written = tmp_path / f"digest-{digest.pk}.html"
    assert out.getvalue() == f"wrote {written}\n"
    assert written.read_text().startswith("<!doctype html>")


@pytest.mark.django_db
def test_preview_into_a_missing_folder_says_create_it(tmp_path):
    digest = approved_digest(1)
    target = tmp_path / "nowhere" / "d.html"
    with pytest.raises(CommandError) as refused:
        call_command("digest", "preview", str(digest.pk), "--out", str(target))
    assert str(refused.value) == f"cannot write {target}: No such file or directory; create the folder first"
