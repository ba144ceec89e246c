"""A progress bar for long CLI steps that stays quiet when output is not a terminal."""

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import track

T = TypeVar("T")


def progress(items: Iterable[T], description: str, *, total: int | None = None, stream=None) -> Iterator[T]:
    if stream is not None and not stream.isatty():
        yield from items
        return
    yield from track(items, description=description, total=total, transient=True)
