"""What the entry points print: the config tree at start, and user errors as one clean line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from src.errors import user_error_in

console = Console()


def print_config(cfg: DictConfig, order: tuple[str, ...] = ("data", "classifier", "defense")) -> None:
    tree = Tree("config", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(f"[bold]{key}[/]").add(Syntax(text, "yaml", theme="ansi_dark"))
    console.print(tree)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an AdvPurifyError into one red line and exit status 1, without a traceback."""
    try:
        yield
    except Exception as err:
        cause = user_error_in(err)
        if cause is None:
            raise
        console.print(f"[bold red]error:[/] {cause}")
        raise SystemExit(1) from None
