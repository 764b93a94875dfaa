"""The quantizer and its EMA codebook update behave as SPEC 3.3 says."""

from __future__ import annotations

import torch

from src.defenses.components.ema_codebook import EmaCodebookUpdate, ema_update
from src.defenses.components.quantizer import Quantized, Quantizer


def quantizer_and_input(classes=3, side=2, dim=4, n=5):
    torch.manual_seed(0)
    quantizer = Quantizer(classes, side * side, dim)
    a = torch.randn(n, dim, side, side, requires_grad=True)
    return quantizer, a


def test_output_is_the_nearest_codebook_vector():
    quantizer, a = quantizer_and_input()
    z = quantizer(a)
    vectors = a.detach().permute(0, 2, 3, 1).reshape(-1, a.shape[1])
    nearest = ((vectors[:, None] - quantizer.codebook[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(z.indices.flatten(), nearest)
    expected = quantizer.codebook[nearest].view(5, 2, 2, 4).permute(0, 3, 1, 2)
    assert torch.allclose(z.q_st, expected) and torch.equal(z.q, expected)


def test_codebook_rows_are_class_major():
    quantizer = Quantizer(num_classes=10, positions=16, dim=8)
    assert quantizer.codebook.shape == (160, 8)  # K = C * M, row c*M + m


def test_straight_through_passes_the_gradient_to_the_encoder():
    quantizer, a = quantizer_and_input()
    (quantizer(a).q_st * 3).sum().backward()
    assert torch.equal(a.grad, torch.full_like(a, 3.0))
    assert quantizer.codebook.grad is None


def test_loss_e_moves_only_the_encoder():
    quantizer, a = quantizer_and_input()
    quantizer(a).loss_e.backward()
    assert a.grad.abs().sum() > 0
    assert quantizer.codebook.grad is None


def test_loss_q_moves_only_the_codebook():
    quantizer, a = quantizer_and_input()
    quantizer(a).loss_q.backward()
    assert a.grad is None
    assert quantizer.codebook.grad.abs().sum() > 0


def test_usage_reports_a_dead_codebook():
    quantizer = Quantizer(2, 4, 3)
    perplexity, used = quantizer.usage(torch.zeros(10, 2, 2, dtype=torch.long))
    assert perplexity.item() == 1.0 and used.item() == 1 / 8
    perplexity, used = quantizer.usage(torch.arange(8).view(2, 2, 2))
    assert abs(perplexity.item() - 8) < 1e-4 and used.item() == 1.0


def test_ema_moves_present_classes_by_exactly_omega_and_leaves_absent_ones():
    quantizer, a = quantizer_and_input()
    vectors = a.detach()
    labels = torch.tensor([0, 0, 2, 2, 2])  # class 1 absent
    before = quantizer.codebook.detach().clone().view(3, 4, 4)  # C x M x G
    ema_update(quantizer, vectors, labels, omega=0.2)
    after = quantizer.codebook.detach().view(3, 4, 4)
    per_position = vectors.flatten(2).transpose(1, 2)  # N x M x G
    for c in (0, 2):
        average = per_position[labels == c].mean(0)
        assert torch.allclose(after[c], 0.8 * before[c] + 0.2 * average, atol=1e-6)
    assert torch.equal(after[1], before[1])


def test_callback_reads_the_step_outputs_and_the_batch_labels():
    quantizer, a = quantizer_and_input()
    module = torch.nn.Module()
    module.quantizers = torch.nn.ModuleList([quantizer])
    z = quantizer(a)
    outputs = {"loss": z.loss_q, "latents": [Quantized(None, z.q.detach(), z.a.detach(), z.indices)]}
    labels = torch.tensor([1, 1, 1, 1, 1])
    before = quantizer.codebook.detach().clone().view(3, 4, 4)
    EmaCodebookUpdate(omega=0.5, source="encoder").on_train_batch_end(None, module, outputs, (a, labels), 0)
    after = quantizer.codebook.detach().view(3, 4, 4)
    average = a.detach().flatten(2).transpose(1, 2).mean(0)
    assert torch.allclose(after[1], 0.5 * before[1] + 0.5 * average, atol=1e-6)
    assert torch.equal(after[0], before[0]) and torch.equal(after[2], before[2])
