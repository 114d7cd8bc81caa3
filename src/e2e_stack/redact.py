"""Keep secrets out of failure bundles: logs and env dumps are kept by CI and shared."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# Variable names whose values are secrets, wherever they appear in the compose model.
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN|CREDENTIAL", re.IGNORECASE)
# Values shorter than this are not masked on their own: masking a two-letter user name
# would shred the logs.
_MIN_SECRET_LEN = 6


def secrets_in(compose_model: Mapping[str, Any]) -> set[str]:
    """Values of every secret-named variable of every service in a `compose config` model."""
    found: set[str] = set()
    for service in (compose_model.get("services") or {}).values():
        for name, value in (service.get("environment") or {}).items():
            if value and _SECRET_NAME.search(name):
                found.add(str(value))
    return found


class Redactor:
    """Replaces known secret values, and `NAME=value` pairs with secret names, by a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if len(s) >= _MIN_SECRET_LEN)
        # Longest first, so a secret that contains another is masked whole.
        values = sorted(self.secrets, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, values))) if values else None
        self._pairs = re.compile(
            r"(?P<name>\b[\w.-]*(?:PASSWORD|SECRET|API[_-]?KEY|TOKEN)[\w.-]*)"
            r"(?P<sep>\s*[=:]\s*)(?P<quote>[\"']?)(?P<value>[^\s\"',;]+)",
            re.IGNORECASE,
        )

    def __call__(self, text: str) -> str:
        """The text with every secret masked."""
        if self._values is not None:
            text = self._values.sub(MASK, text)
        return self._pairs.sub(lambda m: f"{m['name']}{m['sep']}{m['quote']}{MASK}", text)
