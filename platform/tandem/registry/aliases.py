"""``aliases.json``: which version each alias names, and the versions it named before.

Plain values and pure functions; ``store.Registry`` reads, changes and writes the
book under a lock.
"""

from __future__ import annotations

import re

from pydantic import Field

from tandem.errors import NotFoundError, RegistryError, SpecError
from tandem.registry.manifest import Record

ALIASES_FILE = "aliases.json"
LATEST = "latest"
"""Not an alias: a reference to the highest complete version, so it cannot be set."""
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,62}")


class AliasState(Record):
    history: list[int] = Field(min_length=1)
    """Versions the alias has named, oldest first; the last one is the current holder."""


class AliasBook(Record):
    aliases: dict[str, AliasState] = Field(default_factory=dict)

    def current(self) -> dict[str, int]:
        return {alias: state.history[-1] for alias, state in sorted(self.aliases.items())}

    def history(self, model: str, alias: str) -> list[int]:
        return list(self._state(model, alias).history)

    def moved(self, alias: str, version: int) -> AliasBook:
        """The book with ``alias`` naming ``version``; moving to the current holder is a no-op."""
        state = self.aliases.get(alias)
        if state is not None and state.history[-1] == version:
            return self
        history = [*(state.history if state else []), version]
        return AliasBook(aliases={**self.aliases, alias: AliasState(history=history)})

    def rolled_back(self, model: str, alias: str) -> AliasBook:
        """The book with ``alias`` back on its previous holder (the current one leaves the history,
        so rolling back again walks further back)."""
        history = self._state(model, alias).history
        if len(history) < 2:
            raise RegistryError(
                f"alias {alias!r} of model {model!r} has only ever named version {history[0]}, "
                "so there is nothing to roll back to; set it to a version explicitly instead"
            )
        return AliasBook(aliases={**self.aliases, alias: AliasState(history=history[:-1])})

    def _state(self, model: str, alias: str) -> AliasState:
        state = self.aliases.get(alias)
        if state is None:
            known = ", ".join(f"{a} → {v}" for a, v in self.current().items()) or "none"
            raise NotFoundError(f"model {model!r} has no alias {alias!r} (aliases: {known})")
        return state


def check_alias_name(alias: str) -> None:
    if alias == LATEST or not _ALIAS.fullmatch(alias):
        raise SpecError(
            f"alias {alias!r}",
            [
                "must start with a lowercase letter and hold only lowercase letters, digits, "
                f"'-' or '_' (at most 63 characters, not {LATEST!r}), e.g. 'production'"
            ],
        )
