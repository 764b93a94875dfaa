"""The U-Net generator of Defense-CycleGAN (SPEC 3.2, dissertation Figure 4.6).

Encoder: Conv(k4, s2) + ReLU blocks. Decoder: ConvTranspose(k4, s2) blocks whose outputs are
cropped to the matching encoder feature and concatenated with it (a "skip"). Convs pad like
Keras' 'same' (output = ceil(input / 2)), so 28x28 Fashion-MNIST runs unpadded:
28 -> 14 -> 7 -> 4 -> 2 -> 1, and the decoder's 8x8 is cropped to 7x7 before its skip.

Skip d joins encoder depth d, 1 being the shallowest (full detail). Figure 4.6's ablation
(Cyc_1..Cyc_4) removes skips 1, 1-2, 1-3, 1-4 and doubles the filters of the layer feeding a
removed skip, so every later layer keeps its input shape (`drop_skips`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from src.runtime.errors import AdvPurifyError


def same_padding(size: int) -> tuple[int, int]:
    """(before, after) zero padding that makes a k4 s2 conv output ceil(size / 2), as Keras' 'same'."""
    total = max(2 * (-(-size // 2) - 1) + 4 - size, 0)
    return total // 2, total - total // 2


class Down(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, size: int) -> None:
        before, after = same_padding(size)
        super().__init__(
            nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(in_ch, out_ch, 4, 2), nn.ReLU()
        )


class UNetGenerator(nn.Module):
    """Pixels in [0, 1] to pixels in [0, 1] of the same shape."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        width: int = 64,
        depth: int = 5,
        max_width: int = 512,
        drop_skips: Sequence[int] = (),
    ) -> None:
        super().__init__()
        skips = range(1, depth)
        unknown = sorted(set(drop_skips) - set(skips))
        if unknown:
            raise AdvPurifyError(
                f"drop_skips={list(drop_skips)}: a depth-{depth} U-Net has skips {list(skips)}"
            )
        sizes = [image_size]
        for _ in range(depth):
            sizes.append(-(-sizes[-1] // 2))
        if sizes[-1] < 1 or sizes[-2] < 2:
            raise AdvPurifyError(f"a depth-{depth} U-Net cannot downsample {image_size}x{image_size}")
        widths = [min(width * 2**d, max_width) for d in range(depth)]
        self.sizes = sizes
        self.kept = [d not in drop_skips for d in skips]  # kept[d - 1]: is skip d there
        self.down = nn.ModuleList(
            Down(c_in, c_out, size)
            for c_in, c_out, size in zip([in_channels, *widths], widths, sizes, strict=False)
        )
        # up[i] runs deepest first and feeds skip d = depth - 1 - i; it outputs that depth's
        # width, twice that when the skip is dropped, so the next layer's input is unchanged.
        self.up = nn.ModuleList()
        c_in = widths[-1]
        for d in reversed(skips):
            c_out = widths[d - 1] * (1 if self.kept[d - 1] else 2)
            self.up.append(nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ReLU()))
            c_in = 2 * widths[d - 1]
        self.head = nn.Sequential(nn.ConvTranspose2d(c_in, in_channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, h = [], x
        for down in self.down:
            h = down(h)
            features.append(h)
        h = features[-1]
        for up, d in zip(self.up, reversed(range(1, len(self.down))), strict=True):
            size = self.sizes[d]
            h = up(h)[..., :size, :size]  # crop: 'same' padding put the extra row/col at the end
            if self.kept[d - 1]:
                h = torch.cat([h, features[d - 1]], 1)
        size = self.sizes[0]
        return self.head(h)[..., :size, :size]


class PatchDiscriminator(nn.Sequential):
    """D(x): a least-squares score per image patch (mean taken by the loss).

    The spec gives no discriminator architecture; this is CycleGAN's PatchGAN, shortened for
    small images: strided k4 convs with LeakyReLU, a linear output (LSGAN, Mao et al. 2017).
    """

    def __init__(self, in_channels: int, width: int = 64, layers: int = 3) -> None:
        blocks: list[nn.Module] = []
        c_in = in_channels
        for i in range(layers):
            c_out = width * 2**i
            blocks += [nn.Conv2d(c_in, c_out, 4, 2 if i < layers - 1 else 1, 1), nn.LeakyReLU(0.2)]
            c_in = c_out
        super().__init__(*blocks, nn.Conv2d(c_in, 1, 3, 1, 1))
