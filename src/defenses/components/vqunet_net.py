"""The hierarchical U-Net of VQUNet (SPEC 3.3): residual encoder, one quantizer per depth.

For a 32x32 input and width 64 the encoder gives 16x16x64, 8x8x128, 4x4x256 and 2x2x512
(the deepest latent of the spec). Each decoder block upsamples by 2 and its output is
concatenated with the quantized features of the next shallower depth, U-Net style.
"""

from __future__ import annotations

import torch
from torch import nn

from src.defenses.components.quantizer import Quantized, Quantizer


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()
    )


class ResidualBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(ch, ch), nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class EncoderBlock(nn.Sequential):
    """E_d: a strided conv block that halves the size, then residual blocks."""

    def __init__(self, in_ch: int, out_ch: int, res_blocks: int) -> None:
        super().__init__(
            conv_bn_relu(in_ch, out_ch, stride=2), *[ResidualBlock(out_ch) for _ in range(res_blocks)]
        )


class DecoderBlock(nn.Sequential):
    """D_d: a conv block, two residual blocks, then a stride-2 transposed conv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            conv_bn_relu(in_ch, out_ch),
            ResidualBlock(out_ch),
            ResidualBlock(out_ch),
            nn.ConvTranspose2d(out_ch, out_ch, 4, 2, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        )


class VQUNetNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        width: int = 64,
        depth: int = 4,
        res_blocks: int = 2,
        quantize: bool = True,
    ) -> None:
        super().__init__()
        widths = [width * 2**d for d in range(depth)]
        sizes = [image_size // 2 ** (d + 1) for d in range(depth)]
        self.encoders = nn.ModuleList(
            EncoderBlock(c_in, c_out, res_blocks)
            for c_in, c_out in zip([in_channels, *widths], widths, strict=False)
        )
        self.quantizers = (
            nn.ModuleList(Quantizer(num_classes, s * s, c) for s, c in zip(sizes, widths, strict=True))
            if quantize
            else None
        )
        # Decoders run deepest first; all but the deepest also take the skip's channels.
        ins = [widths[-1]] + [2 * c for c in reversed(widths[:-1])]
        outs = [*reversed(widths[:-1]), width]
        self.decoders = nn.ModuleList(DecoderBlock(i, o) for i, o in zip(ins, outs, strict=True))
        self.head = nn.Sequential(nn.Conv2d(width, in_channels, 3, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[Quantized] | list[torch.Tensor]]:
        """Reconstruction, and per depth (shallow first) the quantizer outputs or encoder features."""
        features, h = [], x
        for encoder in self.encoders:
            h = encoder(h)
            features.append(h)
        latents = (
            features
            if self.quantizers is None
            else [q(a) for q, a in zip(self.quantizers, features, strict=True)]
        )
        passed = features if self.quantizers is None else [z.q_st for z in latents]
        h = passed[-1]
        for i, decoder in enumerate(self.decoders):
            h = decoder(h)
            skip = len(passed) - 2 - i
            if skip >= 0:
                h = torch.cat([h, passed[skip]], 1)
        return self.head(h), latents
