"""The YAML files read outside Hydra (conf/ before Hydra composes it, the findings spec, the
published claims): one that is not YAML stops with its path and line, not a parser's traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from src.runtime.errors import AdvPurifyError


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise AdvPurifyError(f"{path}{where} is not valid YAML ({problem}): fix that file") from None
