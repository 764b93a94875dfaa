"""What the entry points print: the config tree at start, progress through long attacks, and
user errors as one clean line."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.syntax import Syntax
from rich.tree import Tree

from src.runtime.errors import user_error_in

console = Console()


def print_config(cfg: DictConfig, order: tuple[str, ...] = ("data", "classifier", "defense")) -> None:
    tree = Tree("config", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(f"[bold]{key}[/]").add(Syntax(text, "yaml", theme="ansi_dark"))
    console.print(tree)


INTERRUPTED = 130  # the shell's status for a run stopped by SIGINT


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (kill, a batch system's end of time) stops as Ctrl-C does


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn an AdvPurifyError into one red line and exit status 1, and a stop by Ctrl-C or
    SIGTERM into one line and status 130, without a traceback. What a run finished is on disk
    by then (rows at once, epochs' last.ckpt, crafted parts), so the same command goes on."""
    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        yield
    except KeyboardInterrupt:
        console.print(
            "[bold yellow]stopped:[/] what was finished is kept (results rows, the last epoch, crafted "
            "parts); run the same command again to go on (resume=true for a training)"
        )
        raise SystemExit(INTERRUPTED) from None
    except Exception as err:
        cause = user_error_in(err)
        if cause is None:
            raise
        console.print(f"[bold red]error:[/] {cause}")
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def image_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bar over `total` images with time left; yields the function that counts images done.
    It disappears when done (eval prints one line per finished cell instead)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.advance(task, done)
