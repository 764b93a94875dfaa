"""Settings that check themselves: a part (defense, attack, threat) declares next to its class
what each of its settings must be (`rules`), and the entry points ask the part to check a
config before any work, so a new part with a bad setting stops in one line without an edit to
a shared list."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from src.runtime.errors import AdvPurifyError


@dataclass(frozen=True)
class Rule:
    """What a setting must be: a test, and the words that say it."""

    ok: Callable[[Any], bool]
    meaning: str


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole_at_least(low: int) -> Rule:
    return Rule(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low, f"a whole number >= {low}"
    )


def one_of(*choices: Any) -> Rule:
    return Rule(lambda v: v in choices, f"one of {list(choices)}")


def each(rule: Rule) -> Rule:
    """A list whose every item keeps `rule`."""
    return Rule(
        lambda v: not isinstance(v, (str, bytes)) and hasattr(v, "__iter__") and all(rule.ok(x) for x in v),
        f"a list of {rule.meaning.removeprefix('a ').removeprefix('an ')}s",
    )


COUNT = whole_at_least(1)
POSITIVE = Rule(lambda v: _number(v) and v > 0, "a finite number > 0")
NON_NEGATIVE = Rule(lambda v: _number(v) and v >= 0, "a finite number >= 0")
FRACTION = Rule(lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]")
BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")


class ChecksSettings:
    """A part whose `rules` say what each of its settings must be (a subclass adds its own to
    those of its bases). `check_settings` refuses the first setting that breaks its rule."""

    rules: ClassVar[Mapping[str, Rule]] = {}

    @classmethod
    def setting_rules(cls) -> dict[str, Rule]:
        found: dict[str, Rule] = {}
        for klass in reversed(cls.__mro__):
            found |= dict(vars(klass).get("rules", {}))
        return found

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], where: str) -> None:
        for key, rule in cls.setting_rules().items():
            value = settings.get(key) if key in settings else None
            if value is not None and not rule.ok(value):
                raise AdvPurifyError(f"{where}.{key}={value!r}: it must be {rule.meaning}")
