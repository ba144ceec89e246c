"""Status moves: each model's drawn diagram equals its declared TRANSITIONS, the guarded helper refuses
anything else, and no code writes a status around it."""

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps

from tests.helpers.factories import approved_digest
from tests.helpers.paths import REPO
from worker.models import Delivery, Digest, StatusModel, Subscription, UndeclaredTransition

# One drawn move per docstring line: "from[, from ...] --what happens--> to".
DIAGRAM_LINE = re.compile(r"^\s*([a-z]+(?:,\s*[a-z]+)*)\s+--.*?-->\s+([a-z]+)\s*$", re.MULTILINE)
WORKER = REPO / "worker"


def drawn(model: type[StatusModel]) -> dict[str, set[str]]:
    moves: dict[str, set[str]] = {}
    for sources, target in DIAGRAM_LINE.findall(model.__doc__ or ""):
        for source in sources.split(","):
            moves.setdefault(source.strip(), set()).add(target)
    return moves


def status_models() -> list[type[StatusModel]]:
    return [m for m in apps.get_app_config("worker").get_models() if issubclass(m, StatusModel)]


def test_every_model_with_a_lifecycle_declares_its_transitions():
    with_status = {m for m in apps.get_app_config("worker").get_models()
                   if any(f.name == "status" for f in m._meta.get_fields())}
    # SuppressionEvent.status is the mail server's status code (5.1.1), not a state.
    assert {m.__name__ for m in with_status - set(status_models())} == {"SuppressionEvent"}
    assert {m.__name__ for m in status_models()} == {
        "Article", "Subscriber", "Subscription", "Digest", "Regeneration", "Delivery"}


@pytest.mark.parametrize("model", status_models(), ids=lambda m: m.__name__)
def test_the_drawn_diagram_is_the_declared_transitions(model):
    declared = {source: set(targets) for source, targets in model.TRANSITIONS.items() if targets}
    assert drawn(model) == declared
    states = set(model.Status.values)
    assert set(declared) | {t for targets in declared.values() for t in targets} <= states


@pytest.mark.django_db
def test_the_helper_refuses_an_undeclared_transition_and_touches_nothing():
    digest = approved_digest(1)
    with pytest.raises(UndeclaredTransition, match="approved -> sent"):
        Digest.transition(digest.pk, from_status=Digest.Status.APPROVED, to_status=Digest.Status.SENT)
    with pytest.raises(UndeclaredTransition, match="sent -> queued"):
        # One undeclared source among declared ones is enough to refuse the whole move.
        Delivery.objects.all().transition(from_status=[Delivery.Status.FAILED, Delivery.Status.SENT],
                                          to_status=Delivery.Status.QUEUED)
    with pytest.raises(UndeclaredTransition):
        Subscription.objects.all().transition(from_status="bogus", to_status=Subscription.Status.ACTIVE)
    digest.refresh_from_db()
    assert digest.status == Digest.Status.APPROVED


@pytest.mark.django_db
def test_the_helper_is_guarded_and_returns_the_row_count():
    digest = approved_digest(1)
    assert Digest.transition(digest.pk, from_status=Digest.Status.DRAFT, to_status=Digest.Status.APPROVED) == 0
    assert Digest.transition(digest.pk, from_status=[Digest.Status.DRAFT, Digest.Status.APPROVED],
                             to_status=Digest.Status.CANCELLED) == 1
    digest.refresh_from_db()
    assert digest.status == Digest.Status.CANCELLED
    assert not hasattr(Digest.objects, "transition")  # a manager-wide move of every row is not offered


def _status_writes(path: Path) -> list[str]:
    """`.update(status=...)`, `.bulk_update(..., ["status"])` and `x.status = ...` outside the helper."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "update" and any(k.arg == "status" for k in node.keywords):
                found.append(f"{path.name}:{node.lineno}")
            if node.func.attr == "bulk_update" and "'status'" in ast.dump(node):
                found.append(f"{path.name}:{node.lineno}")
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and any(
                isinstance(t, ast.Attribute) and t.attr == "status" for t in targets):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_code_writes_a_status_around_the_helper():
    sources = [p for p in WORKER.rglob("*.py") if "migrations" not in p.parts and p.name != "models.py"]
    writes = [hit for path in sources for hit in _status_writes(path)]
    # fetch.FetchResult.status is an HTTP status code, not a model's state.
    assert writes == ["fetch.py:34"]
