"""Where a command's words go: `say` for the lines a user reads as it works (stderr, rich markup), `show` for what
it answers (tables on stdout), `console` for the progress bar. The CLI makes one; tests may make their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Output:
    say: Callable[[str], None]
    show: Callable[[Any], None]
    console: Any  # a rich Console: the progress bar draws there when it is a terminal
