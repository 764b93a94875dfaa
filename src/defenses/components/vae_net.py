"""The convolutional VAE of SFL-VAE and Defense-VAE (SPEC 3.1, dissertation Table A.1).

Encoder: four [Conv(k4, s2) BN ReLU Dropout(0.2)] blocks (64, 128, 256, 512 channels),
flatten, Dense(1024) to the mean and Dense(1024) to the log-variance of q(z|x). Decoder:
Dense(16 * decoder_width) ReLU, reshape to decoder_width x 4 x 4 (SPEC 3.1 reads 4096, 256), transposed
convs (k4, s2) with ReLU halving the channels until the image size is reached (decoder_width 512
gives Table A.1's 512/256/128/64 at 32x32), a last conv to the image channels and a sigmoid (SPEC 3.1
decision). For 28x28 the decoder reaches 32x32 and keeps the centre 28x28, the inverse of the
padding chapter 5 uses ("the decoder is adjusted for the dimension difference").
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


def encoder_block(in_ch: int, out_ch: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 4, 2, 1), nn.BatchNorm2d(out_ch), nn.ReLU(), nn.Dropout(dropout)
    )


class VAENet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        image_size: int,
        latent_dim: int = 1024,
        dropout: float = 0.2,
        decoder_width: int = 256,
    ) -> None:
        super().__init__()
        widths = [64, 128, 256, 512]
        self.encoder = nn.Sequential(
            *(encoder_block(i, o, dropout) for i, o in zip([in_channels, *widths], widths, strict=False)),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.encoder.eval()(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)
        ups = max(0, math.ceil(math.log2(image_size / 4)))
        chans = [max(1, decoder_width // 2**i) for i in range(ups + 1)]
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, decoder_width * 4 * 4),
            nn.ReLU(),
            nn.Unflatten(1, (decoder_width, 4, 4)),
            *(
                layer
                for i, o in itertools.pairwise(chans)
                for layer in (nn.ConvTranspose2d(i, o, 4, 2, 1), nn.ReLU())
            ),
            nn.Conv2d(chans[-1], in_channels, 3, 1, 1),
            nn.Sigmoid(),
        )
        self.crop = (4 * 2**ups - image_size) // 2
        self.image_size = image_size

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x_hat = self.decoder(z)
        c, s = self.crop, self.image_size
        return x_hat[..., c : c + s, c : c + s]
