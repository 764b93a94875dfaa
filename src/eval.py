"""`python -m src.eval`: attack a (defended) classifier over an eps grid, one results row per eps.

Clean accuracy is the classifier alone on the first `eval.n` test images; purified clean
accuracy and adversarial accuracy are the defended model's (purify, then classify). The
threat model decides what the attack differentiates through (SPEC 4). Every finished row
is appended to the results table at once, so a crash loses nothing already computed.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from src.evaluation.grid import evaluate
from src.runtime.configs import CONF_DIR, require_readable_conf
from src.runtime.console import print_config, user_errors


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    print_config(cfg)
    with user_errors():
        evaluate(cfg)


if __name__ == "__main__":
    # Run the importable src.eval.main, not this __main__ copy: parallel launchers (joblib,
    # submitit) pickle the task function, and a function from __main__ would be pickled by
    # value with everything it references (the console's lock cannot be).
    from src.eval import main as importable_main

    with user_errors():
        require_readable_conf()
    importable_main()
