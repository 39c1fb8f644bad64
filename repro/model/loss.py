"""Cross-entropy of a linear output layer, a block of rows at a time.

For a small model the (tokens, vocab) logits are the largest activation of a training step: a
GPT-2-shaped model of 4 layers, d_model 256 and an 8k vocabulary writes 32 MB of logits per 1,024
tokens, then as much again for their log-softmax and their gradient. `linear_cross_entropy`
never holds them. It scores only the rows that have a label, projects a block of rows, and turns
the block's softmax straight into its gradient (softmax − one-hot), which it multiplies back into
the gradients of the hidden states and of the weight before the next block. Each block stays in
cache instead of streaming through memory three times.

The forward therefore does the backward's matmuls; the backward only scales the stored gradients
by the incoming one. Same FLOPs, no (tokens, vocab) tensor. The loss and the gradients equal
`F.cross_entropy(F.linear(h, W, b), y, ignore_index=-100, label_smoothing=eps)` to float
rounding (tests/test_loss.py checks both against it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
BLOCK_ELEMENTS = 2**21  # logits per block: 8 MB in fp32 (256 rows of an 8k vocabulary), measured best on CPU


def _row_losses(lse: torch.Tensor, target: torch.Tensor, mean_logit: torch.Tensor | None,
                label_smoothing: float) -> torch.Tensor:
    """Per-row loss from the log-sum-exp, the label's logit and (with smoothing) the mean logit.
    With smoothing eps the target is (1 − eps)·one-hot + eps/V, so the loss is
    (1 − eps)·NLL + eps·(lse − mean logit)."""
    loss = lse - target
    if label_smoothing:
        loss = (1 - label_smoothing) * loss + label_smoothing * (lse - mean_logit)
    return loss


def _block_losses(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Per-row loss of one block of fp32 logits (the no-gradient path)."""
    mean_logit = logits.mean(dim=-1) if label_smoothing else None
    return _row_losses(torch.logsumexp(logits, dim=-1), logits.gather(1, labels[:, None]).squeeze(1), mean_logit,
                       label_smoothing)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, label_smoothing, compute_dtype, rows):
        # Autocast is off in here and the casts are explicit: the matmuls run in compute_dtype
        # (bf16 under CUDA autocast), the softmax and every accumulation in fp32.
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute_dtype)
            acc = torch.promote_types(compute_dtype, torch.float32)  # softmax and sums: fp32 at least
            needs_hidden, needs_weight, needs_bias = ctx.needs_input_grad[:3]
            grad_hidden = torch.empty_like(hidden) if needs_hidden else None
            grad_weight = torch.zeros_like(weight) if needs_weight else None
            grad_bias = torch.zeros_like(bias) if bias is not None and needs_bias else None
            total = torch.zeros((), dtype=acc, device=hidden.device)
            for start in range(0, hidden.shape[0], rows):
                h = hidden[start : start + rows].to(compute_dtype)
                y = labels[start : start + rows]
                logits = (h @ w.t()).to(acc)
                if bias is not None:
                    logits += bias.to(acc)
                # One exp per logit, in place: the softmax's numerator serves the loss (through
                # its sum) and becomes the gradient. Four passes over the block instead of seven
                # (logsumexp, then exp(logits − lse)); the exps were ~15% of a small LM's step.
                target = logits.gather(1, y[:, None]).squeeze(1)
                mean_logit = logits.mean(dim=-1) if label_smoothing else None
                peak = logits.amax(dim=-1, keepdim=True)
                grad = logits.sub_(peak).exp_()
                norm = grad.sum(dim=-1, keepdim=True)
                lse = (peak + norm.log()).squeeze(1)
                total += _row_losses(lse, target, mean_logit, label_smoothing).sum()
                # d loss / d logits = softmax − (1 − eps)·one-hot − eps/V, built in place
                grad.div_(norm)
                grad[torch.arange(len(y), device=y.device), y] -= 1 - label_smoothing
                if label_smoothing:
                    grad -= label_smoothing / weight.shape[0]
                if grad_bias is not None:
                    grad_bias += grad.sum(0).to(grad_bias.dtype)
                grad = grad.to(compute_dtype)
                if grad_hidden is not None:
                    grad_hidden[start : start + rows] = grad @ w
                if grad_weight is not None:
                    if grad_weight.dtype == compute_dtype:
                        grad_weight.addmm_(grad.t(), h)
                    else:
                        grad_weight += grad.t() @ h
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grads = tuple(None if g is None else g * grad_total.to(g.dtype) for g in ctx.saved_tensors)
        return (*grads, None, None, None, None)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    block_rows: int | None = None,
) -> torch.Tensor:
    """Cross-entropy of `hidden @ weight.T + bias` against `labels` (-100: no loss), 'mean' over
    the labelled positions (NaN when there are none, as `F.cross_entropy`) or 'sum'. A block is
    `block_rows` rows (default: ~2^21 logits, at least 64 rows)."""
    rows = block_rows or max(64, BLOCK_ELEMENTS // weight.shape[0])
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    hidden, labels = hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1)
    keep = labels != IGNORE_INDEX
    if not bool(keep.all()):  # unlabelled positions cost nothing: not even their logits
        hidden, labels = hidden[keep], labels[keep]
    device = hidden.device.type
    compute_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        total = _LinearCrossEntropy.apply(hidden, weight, bias, labels, label_smoothing, compute_dtype, rows)
    else:
        acc = torch.promote_types(compute_dtype, torch.float32)
        total = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, hidden.shape[0], rows):
            logits = F.linear(hidden[start : start + rows], weight, bias).to(acc)
            total += _block_losses(logits, labels[start : start + rows], label_smoothing).sum()
    return total if reduction == "sum" else total / len(labels)
