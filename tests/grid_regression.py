"""The small grid that `test_eval_regression` runs and compares with `tests/golden/`.

Its rows were written by the evaluator before it was split into planning, loading, measuring
and writing (issue 13, commit 3330032, where the VQ analysis was `eval.vq_analysis=true`):
`python -m tests.grid_regression <dir>` wrote <dir>/results/, copied to tests/golden/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from src.eval import evaluate
from tests.conftest import compose_cfg

GRID = [
    (defense, attack, threat)
    for defense in ("none", "vqunet")
    for attack in ("fgsm", "pgd", "cw")
    for threat in ("classifier", "pipeline")
]
VOLATILE = ("seconds", "commit", "fingerprint")  # when and by which code, not what was measured


def run_grid(ckpt: str, defense_ckpt: str, tmp: Path) -> None:
    for defense, attack, threat in GRID:
        overrides = [
            "debug=smoke",
            "data.image_size=32",
            f"defense={defense}",
            f"attack={attack}",
            f"threat={threat}",
            "eval.n=64",
            "eval.eps=[0,0.1,0.3]",
            f"ckpt={ckpt}",
        ]
        if defense == "vqunet":
            overrides += ["defense.width=16", f"defense_ckpt={defense_ckpt}", "eval.analyses=[vq_analysis]"]
        evaluate(compose_cfg("eval", overrides, tmp))


if __name__ == "__main__":
    from tests.conftest import train_target32

    out = Path(sys.argv[1])
    trained = train_target32(out)
    run_grid(trained["ckpt"], trained["defense_ckpt"], out)
