"""The small grid that `test_eval_regression` runs and compares with `tests/golden/`.

`python -m tests.grid_regression <dir>` writes <dir>/results/, copied to tests/golden/. The rows
were first written by the evaluator before it was split (commit 3330032), against a
float32-trained classifier whose weights differ from one CPU to the next; since 290ec36 they are
the split evaluator's, written on an AVX-512 AMD EPYC, against the float64-trained fmnist_a of
`train_target32` and a seeded VQUNet: the same weights on any x86 CPU. Rewritten with AVX2
kernels (ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2) no cell moved by more than 0.2%. With no
SIMD at all (=default) the accuracies and results.csv still held (within 1.2%), but the seeded,
untrained codebook's nearest codes flipped: 33 of 156 VQ-index cells moved by more than 2%.
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
# when, by which code and from which checkpoint bytes (they carry the commit that wrote them and a
# CPU's last bits of float64 training), not what was measured
VOLATILE = ("seconds", "commit", "fingerprint", "models")


def seeded_vqunet(tmp: Path) -> Path:
    """A width-16 VQUNet at its seeded initialisation: the same weights in every process (a
    trained one is not: its CPU training differs in the last bits from run to run)."""
    import torch
    from hydra.utils import get_class

    from src.runtime import checkpoints

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
