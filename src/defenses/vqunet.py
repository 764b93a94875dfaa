"""VQUNet (SPEC 3.3, chapter 5): a U-Net whose features are vector-quantized at every depth.

Quantization snaps adversarial features back onto codes learned from clean data, which is
where the defense comes from; `quantize=false` is the non-VQ ablation (`defense=vqunet_novq`).
Loss: alpha * L_recon + beta * L_E + L_Q, summed over depths. The class-structured EMA
codebook update is the callback this module asks Lightning for (`configure_callbacks`). It
offers section 5.4.4's analysis (`eval.analyses=[vq_analysis]`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.defenses.base import TrainedPurifier
from src.defenses.components.ema_codebook import EmaCodebookUpdate
from src.defenses.components.vqunet_net import VQUNetNet
from src.defenses.vq_analysis import VQ_ANALYSIS
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import BOOLEAN, COUNT, FRACTION, NON_NEGATIVE, POSITIVE


class VQUNet(TrainedPurifier):
    gradient = "straight_through"  # argmin has no gradient; the STE is the surrogate (BPDA)
    analyses = (VQ_ANALYSIS,)

    rules = {
        **dict.fromkeys(("width", "depth", "res_blocks"), COUNT),
        **dict.fromkeys(("alpha", "beta"), NON_NEGATIVE),
        "lr": POSITIVE,
        "ema_omega": FRACTION,
        "quantize": BOOLEAN,
    }

    def __init__(
        self,
        *,
        width: int = 64,
        depth: int = 4,
        res_blocks: int = 2,
        quantize: bool = True,
        alpha: float = 1.0,
        beta: float = 1.0,
        lr: float = 2e-4,
        ema_omega: float = 0.2,
        ema_source: str = "encoder",
        **common,
    ) -> None:
        super().__init__(**common)
        if self.size % 2**depth:
            raise AdvPurifyError(
                f"VQUNet with depth {depth} needs image sizes divisible by {2**depth}, got {self.size}: "
                "set data.image_size=32 (Fashion-MNIST is zero-padded, SPEC 1)"
            )
        num_classes = self.hparams.num_classes
        self.net = VQUNetNet(self.channels, self.size, num_classes, width, depth, res_blocks, quantize)

    @property
    def quantizers(self):
        return self.net.quantizers

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]

    def _losses(self, x_in: torch.Tensor, x: torch.Tensor):
        """Losses of purifying x_in into the clean x."""
        x_hat, latents = self.net(x_in)
        recon = F.mse_loss(x_hat, x)
        if self.quantizers is None:
            return recon, recon, {}, latents
        loss_e = sum(z.loss_e for z in latents)
        loss_q = sum(z.loss_q for z in latents)
        total = self.hparams.alpha * recon + self.hparams.beta * loss_e + loss_q
        return total, recon, {"loss_e": loss_e, "loss_q": loss_q}, latents

    def training_step(self, batch, batch_idx: int):
        x, y = batch
        total, recon, parts, latents = self._losses(self.training_inputs(x, y, train=True), x)
        self.log_dict(
            {"train/loss": total, "train/recon": recon, **{f"train/{k}": v for k, v in parts.items()}},
            prog_bar=True,
            batch_size=len(x),
        )
        if self.quantizers is None:
            return total
        for depth, (quantizer, z) in enumerate(zip(self.quantizers, latents, strict=True), start=1):
            perplexity, used = quantizer.usage(z.indices)
            self.log_dict(
                {f"codebook/d{depth}_perplexity": perplexity, f"codebook/d{depth}_used": used},
                batch_size=len(x),
            )
        return {
            "loss": total,
            "latents": [z._replace(q_st=None, q=z.q.detach(), a=z.a.detach()) for z in latents],
        }

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        total, recon, _, _ = self._losses(self.training_inputs(x, y, train=False), x)
        self.log_eval(stage, {"loss": total, "recon": recon}, x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def configure_callbacks(self):
        if self.quantizers is None:
            return []
        return [EmaCodebookUpdate(self.hparams.ema_omega, self.hparams.ema_source)]
