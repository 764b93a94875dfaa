"""The house in floors: entry points on top, one package per concern, each importing only
downward, no import circle (imports inside functions included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ENTRY_POINTS = {"train", "eval", "report", "reproduce", "export", "zoo", "api"}
# each package's floor: a module may import its own floor's packages and lower ones only
FLOORS = {
    "runtime": 0,
    "data": 1,
    "classifiers": 1,
    "attacks": 2,
    "defenses": 3,
    "reporting": 4,
    "evaluation": 5,
}
TOP = 6


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every `src` module and the `src` modules it imports, wherever the import stands."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("src")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in modules else node.module)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in ENTRY_POINTS:
        return TOP
    return FLOORS.get(parts[1], -1) if len(parts) > 1 else -1


def test_the_src_root_holds_only_entry_points_and_the_api():
    assert {p.stem for p in SRC.glob("*.py")} - {"__init__"} == ENTRY_POINTS
    assert {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(FLOORS)


def test_every_import_goes_down_a_floor_or_stays_on_its_own():
    upward = [
        f"{a} -> {b}"
        for a, deps in imports().items()
        for b in deps
        if floor(b) > floor(a) and floor(a) != TOP
    ]
    assert upward == []


def test_there_is_no_import_circle():
    graph = imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path, node, dep]
            if dep not in state and (circle := visit(dep, [*path, node])):
                return circle
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            assert visit(module, []) is None


def test_the_reporting_floor_reads_rows_without_torch():
    code = (
        "import sys, src.reporting.rows, src.reporting.cards, src.reporting.checklist, "
        "src.reporting.published, src.reporting.grids, src.reporting.findings; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
