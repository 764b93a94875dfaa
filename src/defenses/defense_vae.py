"""Defense-VAE (Li & Ji 2019; SPEC 3.4 baseline): a VAE trained to map adversarial examples
back to their clean images.

The network and loss are the non-SFL VAE's (`defense=vae`); only the input changes: every
training image is attacked on the fly against the frozen target, which any trained purifier
can do with `defense.train_inputs=adversarial` (src/defenses/components/attacked_inputs.py).
For Defense-VAE that is the definition, so it is the only setting it accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

from src.defenses.sfl_vae import SFLVAE
from src.runtime.errors import AdvPurifyError


class DefenseVAE(SFLVAE):
    def __init__(
        self, *, train_inputs: str = "adversarial", eps: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3), **vae
    ) -> None:
        if train_inputs != "adversarial":
            raise AdvPurifyError(
                f"defense_vae is trained on attacked inputs by definition, not train_inputs={train_inputs}: "
                "use defense=vae for the same VAE on other inputs"
            )
        super().__init__(train_inputs=train_inputs, eps=eps, **vae)
