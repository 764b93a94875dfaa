"""Defense-CycleGAN (SPEC 3.2, chapter 4): two U-Net generators and two LSGAN discriminators.

Chapter 4 writes every loss over one set X, yet calls the first pass's output "a noise-reduced
image domain", so it admits two readings (`domains`, SPEC 3.2; docs/decisions.md):
- `same` (default, as its equations read): both generators map the training inputs to the
  clean images, both discriminators judge against clean images, and purification runs the
  cycle once, X_C = G_B(G_A(x)): the first pass removes noise, the second restores detail.
- `attacked_clean` (CycleGAN's own reading): domain A holds the attacked training inputs,
  domain B the clean images; G_A maps B to A, G_B maps A to B, D_A and D_B judge their own
  domain, and each cycle returns to its own domain. Purification is G_B alone, the one map
  trained to leave domain A; G_B(G_A(x)) would first push an input into the attacked domain.

`identity_weight` adds CycleGAN's identity term, |G_A(a) - a| + |G_B(b) - b| over real images of
each generator's output domain. Chapter 4 does not have it, so it is off by default; in the
`attacked_clean` reading nothing else ties G_B's output to the content of its input, so a map
that swaps classes satisfies every other loss (without it that reading fell below chance: docs/decisions.md).

GAN training needs two optimizers stepped in turn, so the module optimizes manually: each
batch makes one generator step on L_G(A) + L_G(B) + lambda * L_cyc, then one discriminator
step on L_D(A) + L_D(B). `toggle_optimizer` freezes the other side during each backward, so
a step never writes gradients into the networks it does not update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from src.defenses.base import TrainedPurifier
from src.defenses.components.unet import PatchDiscriminator, UNetGenerator
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, one_of

DOMAINS = ("same", "attacked_clean")


def cycle_consistency_loss(x: torch.Tensor, x_ab: torch.Tensor, x_ba: torch.Tensor) -> torch.Tensor:
    """SPEC 3.2's L_cyc = E|x - G_A(G_B(x))| + E|x - G_B(G_A(x))| (mean absolute error each)."""
    return F.l1_loss(x_ab, x) + F.l1_loss(x_ba, x)


def lsgan_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """L_G = E[(1 - D(G(x)))^2] (Mao et al. 2017)."""
    return (1 - d_fake).pow(2).mean()


def lsgan_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """L_D = E[(1 - D(x))^2] + E[D(G(x))^2]."""
    return (1 - d_real).pow(2).mean() + d_fake.pow(2).mean()


class DefenseCycleGAN(TrainedPurifier):
    gradient = "exact"  # two U-Nets: differentiable end to end
    settings_since: ClassVar[dict[str, Any]] = {"identity_weight": 0.0}

    rules = {
        **dict.fromkeys(("width", "depth", "max_width", "disc_width", "disc_layers"), COUNT),
        **dict.fromkeys(("cycle_weight", "identity_weight"), NON_NEGATIVE),
        "lr": POSITIVE,
        "decay_from": FRACTION,
        "domains": one_of(*DOMAINS),
    }

    def __init__(
        self,
        *,
        width: int = 64,
        depth: int = 5,
        max_width: int = 512,
        drop_skips: Sequence[int] = (),
        disc_width: int = 64,
        disc_layers: int = 3,
        cycle_weight: float = 10.0,
        identity_weight: float = 0.0,
        lr: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        decay_from: float = 0.5,
        domains: str = "same",
        **common,
    ) -> None:
        super().__init__(**common)
        if domains not in DOMAINS:
            raise AdvPurifyError(f"defense.domains={domains!r}: choose one of {list(DOMAINS)}")
        if domains == "attacked_clean" and self.inputs.mode == "clean":
            raise AdvPurifyError(
                "defense.domains=attacked_clean needs attacked images for domain A: "
                "set defense.train_inputs=adversarial (or mixed)"
            )
        self.automatic_optimization = False
        channels, size = self.channels, self.size
        unet = dict(width=width, depth=depth, max_width=max_width, drop_skips=tuple(drop_skips))
        self.g_a = UNetGenerator(channels, size, **unet)
        self.g_b = UNetGenerator(channels, size, **unet)
        self.d_a = PatchDiscriminator(channels, disc_width, disc_layers)
        self.d_b = PatchDiscriminator(channels, disc_width, disc_layers)

    @property
    def generators(self) -> nn.ModuleList:
        return nn.ModuleList([self.g_a, self.g_b])

    @property
    def discriminators(self) -> nn.ModuleList:
        return nn.ModuleList([self.d_a, self.d_b])

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.domains == "attacked_clean":
            return self.g_b(x)
        return self.g_b(self.g_a(x))

    def domain_pass(
        self, x: torch.Tensor, x_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(real A, real B, fake A, fake B, cycle loss) under the reading of `domains` (module docstring)."""
        if self.hparams.domains == "attacked_clean":
            fake_a, fake_b = self.g_a(x), self.g_b(x_in)
            cycle = F.l1_loss(self.g_b(fake_a), x) + F.l1_loss(self.g_a(fake_b), x_in)
            return x_in, x, fake_a, fake_b, cycle
        # the cycles must still end at the clean x
        fake_a, fake_b = self.g_a(x_in), self.g_b(x_in)
        return x, x, fake_a, fake_b, cycle_consistency_loss(x, self.g_a(fake_b), self.g_b(fake_a))

    def training_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        x_in = self.training_inputs(x, y, train=True)
        opt_g, opt_d = self.optimizers()

        with self.toggled_optimizer(opt_g):
            domain_a, domain_b, fake_a, fake_b, cycle = self.domain_pass(x, x_in)
            adv_a = lsgan_generator_loss(self.d_a(fake_a))
            adv_b = lsgan_generator_loss(self.d_b(fake_b))
            loss_g = adv_a + adv_b + self.hparams.cycle_weight * cycle
            if self.hparams.identity_weight:
                identity = F.l1_loss(self.g_a(domain_a), domain_a) + F.l1_loss(self.g_b(domain_b), domain_b)
                loss_g = loss_g + self.hparams.identity_weight * identity
                self.log("train/identity", identity, batch_size=len(x))
            opt_g.zero_grad()
            self.manual_backward(loss_g)
            opt_g.step()

        with self.toggled_optimizer(opt_d):
            fake_a, fake_b = fake_a.detach(), fake_b.detach()
            real_a, real_b = self.d_a(domain_a), self.d_b(domain_b)
            scored_a, scored_b = self.d_a(fake_a), self.d_b(fake_b)
            loss_d = lsgan_discriminator_loss(real_a, scored_a) + lsgan_discriminator_loss(real_b, scored_b)
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            opt_d.step()

        self.log_dict(
            {
                "train/loss_g": loss_g,
                "train/loss_d": loss_d,
                "train/adv_a": adv_a,
                "train/adv_b": adv_b,
                "train/d_a_real": real_a.mean(),
                "train/d_a_fake": scored_a.mean(),
                "train/d_b_real": real_b.mean(),
                "train/d_b_fake": scored_b.mean(),
            },
            on_step=True,
            prog_bar=False,
            batch_size=len(x),
        )
        self.log("train/cycle", cycle, prog_bar=True, batch_size=len(x))

    def on_train_epoch_end(self) -> None:
        for scheduler in self.lr_schedulers():
            scheduler.step()

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        x_in = self.training_inputs(x, y, train=False)
        cycle = self.domain_pass(x, x_in)[-1]
        self.log_eval(stage, {"recon": F.l1_loss(self.purify(x_in), x), "cycle": cycle}, x)

    def configure_optimizers(self):
        """Adam per side; constant lr, then a linear decay over the epochs after `decay_from` (CycleGAN)."""
        hp = self.hparams
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 0
        start = int(epochs * hp.decay_from)

        def factor(epoch: int) -> float:
            return 1.0 if epoch <= start or epochs <= start else 1.0 - (epoch - start) / (epochs - start)

        optimizers = [
            torch.optim.Adam(nets.parameters(), lr=hp.lr, betas=tuple(hp.betas))
            for nets in (self.generators, self.discriminators)
        ]
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in optimizers]
        return optimizers, schedulers
