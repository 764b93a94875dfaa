"""SFL-VAE (SPEC 3.1, chapter 3): a VAE purifier trained with a spatial frequency loss.

Loss = rec_weight * L_rec + kl_weight * L_reg + sfl_weight * L_SFL, each a per-image sum (over pixels,
or latent dimensions) averaged over the batch: the usual ELBO scaling, which keeps the KL
term from swamping a per-pixel mean. L_reg is the KL to N(0, prior_std^2 I): a wider prior
than the standard one tolerates noisy inputs. `defense=vae` (sfl_weight 0) is the ablation.
Purification decodes the posterior mean, so it is deterministic unless `sample_at_test`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from src.defenses.base import TrainedPurifier
from src.defenses.components.spatial_frequency import SpatialFrequencyLoss
from src.defenses.components.vae_net import VAENet
from src.runtime.rules import BOOLEAN, COUNT, FRACTION, NON_NEGATIVE, POSITIVE, each


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor, prior_std: float) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, prior_std^2)), summed over latent dims, averaged over the batch."""
    prior_var = prior_std**2
    kl = 0.5 * ((logvar.exp() + mu.pow(2)) / prior_var - 1 - logvar + math.log(prior_var))
    return kl.sum(1).mean()


class SFLVAE(TrainedPurifier):
    gradient = "exact"
    test_time_hparams = ("sample_at_test",)

    rules = {
        **dict.fromkeys(("latent_dim", "decoder_width"), COUNT),
        **dict.fromkeys(("rec_weight", "kl_weight", "sfl_weight"), NON_NEGATIVE),
        **dict.fromkeys(("prior_std", "lr"), POSITIVE),
        "dropout": FRACTION,
        "sfl_sigmas": each(POSITIVE),
        "sample_at_test": BOOLEAN,
    }

    def __init__(
        self,
        *,
        latent_dim: int = 1024,
        dropout: float = 0.2,
        decoder_width: int = 256,
        prior_std: float = 1.0,
        rec_weight: float = 1.0,
        kl_weight: float = 0.01,
        sfl_weight: float = 1.0,
        sfl_sigmas: Sequence[float] = (1.0,),
        sfl_scale_weights: Sequence[float] | None = None,
        lr: float = 1e-3,
        sample_at_test: bool = False,
        **common,
    ) -> None:
        super().__init__(**common)
        self.net = VAENet(self.channels, self.size, latent_dim, dropout, decoder_width)
        self.sfl = SpatialFrequencyLoss(sfl_sigmas, sfl_scale_weights) if sfl_weight else None

    @property
    def stochastic(self) -> bool:
        return self.hparams.sample_at_test

    def reconstruct(self, x: torch.Tensor, sample: bool):
        mu, logvar = self.net.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.net.decode(z), mu, logvar

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(x, self.hparams.sample_at_test)[0]

    def losses(self, x: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The loss of reconstructing `target` (default: x itself) from x."""
        target = x if target is None else target
        x_hat, mu, logvar = self.reconstruct(x, sample=True)
        parts = {
            "rec": (x_hat - target).pow(2).flatten(1).sum(1).mean(),
            "kl": kl_to_prior(mu, logvar, self.hparams.prior_std),
        }
        loss = self.hparams.rec_weight * parts["rec"] + self.hparams.kl_weight * parts["kl"]
        if self.sfl is not None:
            parts["sfl"] = self.sfl(target, x_hat)
            loss = loss + self.hparams.sfl_weight * parts["sfl"]
        return {"loss": loss, **parts}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        parts = self.losses(self.training_inputs(x, y, train=True), target=x)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=True, batch_size=len(x))
        return parts["loss"]

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        x_in = self.training_inputs(x, y, train=False)
        parts = self.losses(x_in, target=x)
        recon = F.mse_loss(self.purify(x_in), x)  # deterministic, per pixel: what purification gives
        self.log_eval(stage, {"loss": parts["loss"], "recon": recon}, x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
