"""Why vector quantization helps (SPEC 3.3, section 5.4.4): how much of an attack survives.

For clean images x and their adversarial versions x_adv, per depth d of the U-Net:
- `pre_vq_l1`: mean |a_d(x) - a_d(x_adv)| of the encoder features (any VQUNet, VQ or not);
- `post_vq_l1`: the same for the quantized features q_d (VQ only);
- `index_change_pct`: the percentage of spatial code indices that change (VQ only);
and for the image, `recon_l1`: the mean per-image sum of |x - purify(x_adv)| on the 0-255
scale (the units of Table 4.1), so VQ and non-VQ reconstructions can be compared.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from src.defenses.base import Analysis
from src.defenses.components.quantizer import Quantized


@torch.no_grad()
def vq_analysis(defense, classifier, x, x_adv, y, batch_size: int, seed: int) -> list[tuple[str, int, float]]:
    """(metric, depth, value) triples; depth 0 is the image."""
    sums: dict[tuple[str, int], float] = defaultdict(float)
    for xb, xb_adv in zip(x.split(batch_size), x_adv.split(batch_size), strict=True):
        _, clean = defense.net(xb)
        x_hat_adv, adv = defense.net(xb_adv)
        sums["recon_l1", 0] += 255 * (x_hat_adv - xb).abs().flatten(1).sum(1).sum().item()
        for depth, (c, a) in enumerate(zip(clean, adv, strict=True), start=1):
            if isinstance(c, Quantized):
                sums["pre_vq_l1", depth] += (c.a - a.a).abs().mean((1, 2, 3)).sum().item()
                sums["post_vq_l1", depth] += (c.q - a.q).abs().mean((1, 2, 3)).sum().item()
                changed = (c.indices != a.indices).float().mean((1, 2))
                sums["index_change_pct", depth] += 100 * changed.sum().item()
            else:
                sums["pre_vq_l1", depth] += (c - a).abs().mean((1, 2, 3)).sum().item()
    return [(metric, depth, total / len(x)) for (metric, depth), total in sorted(sums.items())]


VQ_ANALYSIS = Analysis(
    name="vq_analysis",
    columns=("metric", "depth"),
    measure=vq_analysis,
    axis="eps",
    lines=("defense", "depth"),
    line_label="{defense} d{depth}",
    title="VQ analysis",
    description="Section 5.4.4: feature and code changes per U-Net depth under attack (d0: the image).",
    adversarial_only=True,
)
