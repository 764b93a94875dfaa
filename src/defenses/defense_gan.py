"""Defense-GAN (Samangouei et al. 2018; SPEC 3.4 baseline): project the input onto the range
of a generator trained on clean data.

Training is WGAN-GP (Gulrajani et al. 2017) with manual optimization: a critic step every
batch, a generator step every `n_critic` batches. Purification searches the latent space:
R = `restarts` random z per image, L = `steps` Adam steps on ||G(z) - x||^2, and returns
G(z*) for the restart that ends closest to x. All R x batch searches run as one batch on
the device; each z gets its own Adam state, so the searches do not interact.

The search is not differentiable and starts at random: the defense declares identity BPDA
(Athalye et al. 2018 broke it this way) and is stochastic, so pipeline attacks use EOT.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from src.defenses.base import TrainedPurifier
from src.defenses.components.wgan import Critic, Generator, gradient_penalty
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import COUNT, NON_NEGATIVE, POSITIVE


class DefenseGAN(TrainedPurifier):
    gradient = "identity"
    stochastic = True
    export_refusal = "its purify is a gradient-descent search over z, which tracing cannot capture"
    test_time_hparams = ("restarts", "steps", "search_lr")

    rules = {
        **dict.fromkeys(("z_dim", "width", "critic_width", "n_critic"), COUNT),
        **dict.fromkeys(("restarts", "steps", "val_restarts", "val_steps"), COUNT),
        **dict.fromkeys(("lr", "search_lr"), POSITIVE),
        "gp_weight": NON_NEGATIVE,
    }

    def __init__(
        self,
        *,
        z_dim: int = 128,
        width: int = 64,
        critic_width: int = 64,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        lr: float = 1e-4,
        betas: Sequence[float] = (0.5, 0.9),
        restarts: int = 10,
        steps: int = 200,
        search_lr: float = 0.05,
        val_restarts: int = 2,
        val_steps: int = 50,
        **common,
    ) -> None:
        super().__init__(**common)
        self.automatic_optimization = False
        self.generator = Generator(self.channels, self.size, z_dim, width)
        self.critic = Critic(self.channels, self.size, critic_width)

    def search_errors(self, x: torch.Tensor, restarts: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """G(z*), and ||G(z) - x||^2 of the best restart before each step and at the end: (steps+1) x N."""
        if restarts < 1 or steps < 1:
            raise AdvPurifyError(
                f"Defense-GAN's search needs restarts and steps >= 1, got {restarts}, {steps}"
            )
        n = len(x)
        with torch.inference_mode(False), torch.enable_grad():
            x = x.detach().clone().repeat_interleave(restarts, 0)
            z = torch.randn(n * restarts, self.hparams.z_dim, device=x.device, requires_grad=True)
            optimizer = torch.optim.Adam([z], lr=self.hparams.search_lr)
            history = []
            for _ in range(steps):
                error = (self.generator(z) - x).pow(2).flatten(1).sum(1)
                (grad,) = torch.autograd.grad(error.sum(), z)
                z.grad = grad
                optimizer.step()
                history.append(error.detach().view(n, restarts).min(1).values)
            with torch.no_grad():
                final = self.generator(z)
                error = (final - x).pow(2).flatten(1).sum(1).view(n, restarts)
                best = error.argmin(1) + torch.arange(n, device=x.device) * restarts
        history.append(error.min(1).values)
        return final[best].detach(), torch.stack(history)

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return self.search_errors(x, self.hparams.restarts, self.hparams.steps)[0]

    def sample(self, n: int) -> torch.Tensor:
        return self.generator(torch.randn(n, self.hparams.z_dim, device=self.device))

    def training_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        opt_g, opt_c = self.optimizers()
        with self.toggled_optimizer(opt_c):
            fake = self.sample(len(x)).detach()
            wasserstein = self.critic(x).mean() - self.critic(fake).mean()
            penalty = gradient_penalty(self.critic, x, fake)
            opt_c.zero_grad()
            self.manual_backward(-wasserstein + self.hparams.gp_weight * penalty)
            opt_c.step()
        logs = {"train/wasserstein": wasserstein, "train/gp": penalty}
        if batch_idx % self.hparams.n_critic == 0:
            with self.toggled_optimizer(opt_g):
                loss_g = -self.critic(self.sample(len(x))).mean()
                opt_g.zero_grad()
                self.manual_backward(loss_g)
                opt_g.step()
            logs["train/loss_g"] = loss_g
        self.log_dict(logs, prog_bar=True, batch_size=len(x))

    def _eval_step(self, batch, stage: str) -> None:
        x, _ = batch
        x_hat, _ = self.search_errors(x, self.hparams.val_restarts, self.hparams.val_steps)
        self.log(f"{stage}/recon", F.mse_loss(x_hat, x), prog_bar=stage == "val", batch_size=len(x))

    def configure_optimizers(self):
        betas = tuple(self.hparams.betas)
        return (
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
            torch.optim.Adam(self.critic.parameters(), lr=self.hparams.lr, betas=betas),
        )
