"""The small grid that `test_eval_regression` runs and compares with `tests/golden/`.

Its rows were written by the evaluator before it was split into planning, loading, measuring
and writing (issue 13, commit 3330032, where the VQ analysis was `eval.vq_analysis=true`):
`python -m tests.grid_regression <dir>` wrote <dir>/results/, copied to tests/golden/. The
classifier is the session's 32x32 fmnist_a (its CPU training repeats bit for bit).
"""

from __future__ import annotations

import sys
from pathlib import Path

from src.eval import evaluate
from tests.conftest import compose_cfg

GRID = [
    (defense, attack, threat)
    for defense in ("none", "vqunet")
    for attack in ("fgsm", "pgd", "cw")  # cw: the minimal-norm CW-L-inf of the time, now cw_art
    for threat in ("classifier", "pipeline")
]
VOLATILE = ("seconds", "commit", "fingerprint")  # when and by which code, not what was measured


def seeded_vqunet(tmp: Path) -> Path:
    """A width-16 VQUNet at its seeded initialisation: the same weights in every process (a
    trained one is not: its CPU training differs in the last bits from run to run)."""
    import torch
    from hydra.utils import get_class

    from src import checkpoints

    torch.manual_seed(0)
    hparams = {"name": "vqunet", "data": "fmnist", "input_shape": (1, 32, 32), "num_classes": 10, "width": 16}
    module = get_class("src.defenses.vqunet.VQUNet")(**hparams)
    dest = tmp / "seeded" / "vqunet.ckpt"
    checkpoints.save(module, dest, "defense", hparams, "fmnist", (1, 32, 32))
    return dest


def run_grid(ckpt: str, tmp: Path) -> None:
    defense_ckpt = seeded_vqunet(tmp)
    for defense, attack, threat in GRID:
        overrides = [
            "debug=smoke",
            "data.image_size=32",
            f"defense={defense}",
            *([f"attack={attack}"] if attack != "cw" else ["attack=cw_art", "attack.name=cw"]),
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
    run_grid(train_target32(out)["ckpt"], out)
