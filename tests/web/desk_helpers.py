"""Signed-in clients and requests for the desk and console tests (the fixtures are in conftest.py)."""

import io

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from worker.models import Digest, DigestItem


def person(role: str, name: str | None = None) -> User:
    name = name or role
    user = User.objects.create_user(name, f"{name}@example.com", "a-long-password")
    call_command("setup_roles", "--assign", name, role, stdout=io.StringIO())
    return user


def client_for(user: User, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def items(digest: Digest) -> list[DigestItem]:
    return list(digest.items.select_related("summary").all())


def post(client: Client, name: str, *args, **data):
    return client.post(reverse(name, args=args), data)
