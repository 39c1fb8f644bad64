"""The blockwise linear cross-entropy equals torch's cross-entropy of the full logits: loss and
every gradient, with ignored positions, label smoothing, a bias, sum and mean, blocks that do
not divide the rows, and without gradients."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.model.loss import linear_cross_entropy


def reference(h, w, y, b, eps, reduction):
    logits = F.linear(h, w, b).reshape(-1, w.shape[0])
    return F.cross_entropy(logits, y.reshape(-1), ignore_index=-100, label_smoothing=eps, reduction=reduction)


def leaves(seed, rows, d, vocab, with_bias, ignored_share):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(rows, d, generator=g, dtype=torch.float64)
    w = torch.randn(vocab, d, generator=g, dtype=torch.float64) * 0.5
    b = torch.randn(vocab, generator=g, dtype=torch.float64) if with_bias else None
    y = torch.randint(0, vocab, (rows,), generator=g)
    y[torch.rand(rows, generator=g) < ignored_share] = -100
    return h, w, b, y


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 300),
    vocab=st.integers(2, 40),
    with_bias=st.booleans(),
    eps=st.sampled_from([0.0, 0.1, 0.3]),
    reduction=st.sampled_from(["mean", "sum"]),
    ignored_share=st.sampled_from([0.0, 0.5]),
    block=st.integers(1, 70),
)
def test_loss_and_gradients_equal_full_cross_entropy(seed, rows, vocab, with_bias, eps, reduction, ignored_share,
                                                     block):
    h, w, b, y = leaves(seed, rows, 8, vocab, with_bias, ignored_share)
    if not (y != -100).any():
        y[0] = 0
    ours_leaves = [t.clone().requires_grad_() for t in (h, w) + ((b,) if with_bias else ())]
    ref_leaves = [t.clone().requires_grad_() for t in (h, w) + ((b,) if with_bias else ())]
    ours = linear_cross_entropy(ours_leaves[0], ours_leaves[1], y, ours_leaves[2] if with_bias else None,
                                label_smoothing=eps, reduction=reduction, block_rows=block)
    ref = reference(ref_leaves[0], ref_leaves[1], y, ref_leaves[2] if with_bias else None, eps, reduction)
    torch.testing.assert_close(ours, ref.to(ours.dtype), rtol=1e-6, atol=1e-6)
    (ours * 1.7).backward()  # a non-unit upstream gradient must scale the stored ones
    (ref * 1.7).backward()
    for a, r in zip(ours_leaves, ref_leaves):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-6, atol=1e-9)


def test_without_gradients_and_with_a_frozen_weight():
    h, w, b, y = leaves(0, 50, 8, 30, True, 0.3)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, y, b), reference(h, w, y, b, 0.0, "mean"))
    h_leaf = h.clone().requires_grad_()  # the head frozen (PEFT): only the hidden states get a gradient
    linear_cross_entropy(h_leaf, w, y, b).backward()
    h_ref = h.clone().requires_grad_()
    reference(h_ref, w, y, b, 0.0, "mean").backward()
    torch.testing.assert_close(h_leaf.grad, h_ref.grad)


def test_every_position_ignored_gives_nan_like_torch():
    h, w, _, _ = leaves(0, 4, 8, 10, False, 0.0)
    y = torch.full((4,), -100)
    assert torch.isnan(linear_cross_entropy(h, w, y)) and torch.isnan(reference(h, w, y, None, 0.0, "mean"))
    assert float(linear_cross_entropy(h, w, y, reduction="sum")) == 0.0


def test_bf16_autocast_matmuls_with_fp32_accumulation():
    """Under autocast the projection runs in bf16 and the gradients still reach fp32 leaves."""
    h, w, b, y = leaves(1, 64, 16, 50, False, 0.0)
    h, w = h.float().requires_grad_(), w.float().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy(h, w, y)
    ours.backward()
    h_ref, w_ref = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    reference(h_ref, w_ref, y, None, 0.0, "mean").backward()
    assert h.grad.dtype == w.grad.dtype == torch.float32
    torch.testing.assert_close(ours, reference(h_ref, w_ref, y, None, 0.0, "mean").detach(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(w.grad, w_ref.grad, rtol=5e-2, atol=5e-3)


def test_bad_reduction_is_a_clear_error():
    h, w, _, y = leaves(0, 4, 8, 10, False, 0.0)
    with pytest.raises(ValueError, match="reduction must be"):
        linear_cross_entropy(h, w, y, reduction="none")
