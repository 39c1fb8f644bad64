"""RLHF as InstructGPT does it (Ouyang et al. 2022 §3.5): reward model, then PPO(-ptx) against it.

Read top to bottom:

    pairwise / grouped losses   -log sigma(r_w - r_l), all C(K,2) pairs of one prompt in one element
    reward_model_from_lm        the SFT model with its unembedding replaced by a scalar head
    train_reward_model          grouped (the paper) or shuffled pairs (what the paper warns against)
    response_mask, ...          the bookkeeping of a sampled response (eos, padding, log-probs)
    kl_penalised_rewards, gae   per-token rewards r - beta log(pi/pi_SFT), advantages by GAE
    ppo_policy_loss, ...        the clipped surrogate and the clipped value loss
    rollout, ppo_train          the loop: sample, score, advantages, PPO epochs (+ ptx batches)

Shapes: a rollout batch is B prompts LEFT padded to width P followed by the R sampled tokens, so
every response token t sits at column P + t and is predicted by column P + t - 1. Tokens after a
row's first eos are padding: `response_mask` is 0 there and every loss ignores them.

Everything is deterministic for a seed: sampling draws from a private generator, minibatch order
from another; nothing reads the global RNG (dropout is off in these small models).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from repro.generate import GenerationConfig, generate
from repro.model.heads import LanguageModel, ScalarModel
from repro.train import TrainConfig, build_optimizer, lr_multiplier

# ----------------------------------------------------------------------------------------------
# Reward-model losses


def pairwise_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """-mean log sigma(r_w - r_l): the Bradley-Terry likelihood of the human's choice (Eq. 1)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def ranking_pairs(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(winner, loser) indices of all C(k,2) pairs of a ranking listed best first."""
    w, l = torch.triu_indices(k, k, offset=1)
    return w, l


def grouped_ranking_loss(rewards: torch.Tensor) -> torch.Tensor:
    """InstructGPT's RM loss: rewards (G, K), each row one prompt's K completions ranked best
    first. Every prompt is one batch element whose loss is the mean over its C(K,2) pairs, so a
    completion's K-1 comparisons share one forward pass and one gradient step (§3.5)."""
    w, l = ranking_pairs(rewards.shape[1])
    return -F.logsigmoid(rewards[:, w] - rewards[:, l]).mean(dim=1).mean()


def reward_model_from_lm(lm: LanguageModel) -> ScalarModel:
    """The SFT model with the unembedding replaced by a scalar head (zero-initialised, so every
    reward starts at 0); the Transformer body is copied."""
    rm = ScalarModel(lm.config)
    rm.body.load_state_dict(lm.body.state_dict())
    return rm


# ----------------------------------------------------------------------------------------------
# Batching token lists


def pad_right(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r, dtype=torch.long), 1
    return ids, mask


def pad_left(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts for generation: left padded, so every row's next token is the last column."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):], mask[i, width - len(r):] = torch.tensor(r, dtype=torch.long), 1
    return ids, mask


def score_sequences(rm: ScalarModel, rows: list[list[int]], pad_id: int, batch_size: int = 64) -> torch.Tensor:
    """The reward model's score of each token list (prompt + response), read at its last token."""
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            ids, mask = pad_right(rows[i : i + batch_size], pad_id)
            out.append(rm(ids, mask).reward.float())
    return torch.cat(out) if out else torch.empty(0)


# ----------------------------------------------------------------------------------------------
# Reward-model training: grouped (paper) or shuffled pairs


@dataclass
class RMConfig:
    epochs: int = 1  # the paper trains the RM for a single epoch (it over-fits after that)
    batch_size: int = 64  # batch elements: prompts (grouped) or single comparisons (shuffled); paper 64 prompts
    lr: float = 9e-6  # paper: 9e-6, cosine decay to 10% (App. C.2)
    weight_decay: float = 0.0
    grouped: bool = True  # False: every comparison is its own, independently shuffled, element
    seed: int = 0


def train_reward_model(rm: ScalarModel, groups: list[list[list[int]]], cfg: RMConfig, pad_id: int,
                       log: Callable[[dict], None] | None = None) -> dict:
    """Fit `rm` on rankings: each group is one prompt's K >= 2 token lists (prompt + completion),
    ranked best first. grouped=True: a batch element is a prompt and all its C(K,2) pairs (one
    forward pass per completion). grouped=False: the pairs are shuffled into one dataset and each
    is an element of its own, so a completion is seen K-1 times per epoch in separate steps."""
    if cfg.grouped:
        elements: list = list(range(len(groups)))
    else:
        elements = [(g, int(w), int(l)) for g, grp in enumerate(groups) for w, l in zip(*ranking_pairs(len(grp)))]
    steps_per_epoch = math.ceil(len(elements) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    tcfg = TrainConfig(steps=total, lr=cfg.lr, weight_decay=cfg.weight_decay, schedule="cosine",
                       warmup_steps=0, min_lr_ratio=0.1)
    opt = build_optimizer(rm, tcfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_multiplier(s, tcfg))
    g = torch.Generator().manual_seed(cfg.seed)
    rm.train()
    losses, forwards = [], 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(elements), generator=g).tolist()
        for start in range(0, len(order), cfg.batch_size):
            batch = [elements[i] for i in order[start : start + cfg.batch_size]]
            if cfg.grouped:
                # equal K inside one batch keeps the (G, K) reshape; groups of mixed K go one K at a time
                by_k: dict[int, list[int]] = {}
                for gi in batch:
                    by_k.setdefault(len(groups[gi]), []).append(gi)
                loss = 0.0
                for k, gis in by_k.items():
                    ids, mask = pad_right([seq for gi in gis for seq in groups[gi]], pad_id)
                    r = rm(ids, mask).reward.float().view(len(gis), k)
                    loss = loss + grouped_ranking_loss(r) * len(gis) / len(batch)
                    forwards += len(gis) * k
            else:
                rows = [groups[gi][w] for gi, w, _ in batch] + [groups[gi][l] for gi, _, l in batch]
                ids, mask = pad_right(rows, pad_id)
                r = rm(ids, mask).reward.float()
                loss = pairwise_loss(r[: len(batch)], r[len(batch):])
                forwards += 2 * len(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if log is not None:
                log({"step": len(losses), "epoch": epoch, "loss": float(loss)})
    rm.eval()
    return {"steps": len(losses), "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])), "forward_passes": forwards,
            "elements": len(elements)}


def pairwise_accuracy(rm: ScalarModel, pairs: list[tuple[list[int], list[int]]], pad_id: int) -> list[float]:
    """Per comparison: 1 if the RM scores the preferred sequence higher, 0.5 on a tie, else 0."""
    chosen = score_sequences(rm, [c for c, _ in pairs], pad_id)
    rejected = score_sequences(rm, [r for _, r in pairs], pad_id)
    return [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen.tolist(), rejected.tolist())]


# ----------------------------------------------------------------------------------------------
# Responses: masks and log-probabilities


def response_mask(response: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """1 for every sampled token up to and including the first eos, 0 after it (padding). Works
    when pad and eos share an id, as in GPT-2's vocabulary."""
    if eos_id is None:
        return torch.ones_like(response)
    is_eos = (response == eos_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0
    return (~after_eos).long()


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under `logits` (float32: small differences of log-probs feed the ratio)."""
    return torch.gather(logits.float().log_softmax(-1), -1, tokens.unsqueeze(-1)).squeeze(-1)


def response_logprobs(model: LanguageModel, ids: torch.Tensor, mask: torch.Tensor, prompt_width: int) -> torch.Tensor:
    """(B, R) log-probs of the response tokens (columns P..) given everything before them."""
    logits = model(ids, mask).logits[:, prompt_width - 1 : -1]
    return token_logprobs(logits, ids[:, prompt_width:])


def response_values(value_model: ScalarModel, ids: torch.Tensor, mask: torch.Tensor, prompt_width: int) -> torch.Tensor:
    """(B, R) value of the state before each response token: the value head at the column that
    predicts it, as for log-probs."""
    return value_model(ids, mask).logits[:, prompt_width - 1 : -1].float()


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last 1 (its last response token); 0 for an empty row."""
    positions = torch.arange(mask.shape[-1], device=mask.device)
    return (mask * (positions + 1)).argmax(-1)


# ----------------------------------------------------------------------------------------------
# Rewards and advantages


def kl_penalised_rewards(logp: torch.Tensor, ref_logp: torch.Tensor, score: torch.Tensor, mask: torch.Tensor,
                         beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards of Eq. 2: -beta (log pi(y_t) - log pi_SFT(y_t)) at every response token,
    plus the reward model's score at the last one. Returns (rewards, per-token KL estimate)."""
    kl = (logp - ref_logp) * mask
    rewards = -beta * kl
    rewards[torch.arange(len(score)), last_index(mask)] += score
    return rewards * mask, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), right to left over each response:
    delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t + gamma lam A_{t+1}; the state after the last
    real token is terminal (V = 0). Returns (advantages, returns = advantages + values)."""
    B, T = rewards.shape
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_adv = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        m = mask[:, t].to(rewards.dtype)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        # a padded step passes nothing back: the terminal state is after the last real token
        advantages[:, t] = adv * m
        next_value = values[:, t] * m
        next_adv = adv * m
    return advantages, (advantages + values) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the real tokens: the advantage scale no longer depends on the
    reward model's scale (as in OpenAI's lm-human-preferences)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


# ----------------------------------------------------------------------------------------------
# PPO losses


def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    clip: float = 0.2) -> tuple[torch.Tensor, dict]:
    """The clipped surrogate: -min(ratio A, clip(ratio, 1-eps, 1+eps) A), a mean over real tokens.
    Past the clip in the direction the advantage pushes, the min picks the constant branch, so the
    gradient is zero: one batch of samples cannot drag the policy far (Schulman et al. 2017)."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": float(masked_mean((clipped > unclipped).float(), mask)),
                 "approx_kl": float(masked_mean(0.5 * (logp - old_logp) ** 2, mask))}
    return loss, stats


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                   clip: float = 0.2) -> torch.Tensor:
    """0.5 max((V - R)^2, (clip(V, V_old +- eps) - R)^2): the value function, like the policy, may
    not move far from where it was when the batch was sampled."""
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


# ----------------------------------------------------------------------------------------------
# The PPO loop


@dataclass
class PPOConfig:
    iterations: int = 10  # rollout + update rounds; the paper: 256k episodes in total
    batch_size: int = 32  # episodes per rollout (paper 512)
    minibatch_size: int = 8  # paper 64
    ppo_epochs: int = 1  # inner epochs over a rollout (paper 1)
    lr: float = 1e-5  # policy learning rate
    value_lr: float = 1e-5  # value-function learning rate
    beta: float = 0.02  # KL reward coefficient (paper 0.02)
    ptx_coef: float = 0.0  # gamma of Eq. 2: 0 = "PPO", paper PPO-ptx 27.8
    clip: float = 0.2  # PPO clip (paper 0.2)
    value_clip: float = 0.2
    gamma: float = 1.0  # no discount (paper)
    lam: float = 0.95  # GAE lambda
    max_new_tokens: int = 24
    temperature: float = 1.0  # the paper samples at temperature 1
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class Rollout:
    ids: torch.Tensor  # (B, P + R) prompt (left padded) + response
    mask: torch.Tensor  # attention mask of ids
    prompt_width: int
    response_mask: torch.Tensor  # (B, R)
    logp: torch.Tensor
    ref_logp: torch.Tensor
    values: torch.Tensor
    score: torch.Tensor  # the training reward model's score
    rewards: torch.Tensor
    kl: torch.Tensor  # per-token log pi - log pi_SFT
    advantages: torch.Tensor
    returns: torch.Tensor


def sample_responses(policy: LanguageModel, prompts: list[list[int]], cfg: GenerationConfig,
                     generator: torch.Generator, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """(ids, attention mask, prompt width, response mask) of prompts + sampled responses."""
    p_ids, p_mask = pad_left(prompts, pad_id)
    response = generate(policy, p_ids, p_mask, cfg, generator=generator)
    if response.shape[1] < cfg.max_new_tokens:  # every row stopped early: keep R fixed
        fill = torch.full((len(prompts), cfg.max_new_tokens - response.shape[1]), pad_id, dtype=torch.long)
        response = torch.cat([response, fill], dim=1)
    r_mask = response_mask(response, cfg.eos_id)
    return torch.cat([p_ids, response], 1), torch.cat([p_mask, r_mask], 1), p_ids.shape[1], r_mask


@torch.no_grad()
def rollout(policy: LanguageModel, ref: LanguageModel, value_model: ScalarModel, reward_model: ScalarModel,
            prompts: list[list[int]], cfg: PPOConfig, generator: torch.Generator, eos_id: int | None,
            pad_id: int) -> Rollout:
    gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens, method="sample", temperature=cfg.temperature,
                           eos_id=eos_id, pad_id=pad_id)
    ids, mask, P, r_mask = sample_responses(policy, prompts, gen, generator, pad_id)
    policy.eval()
    logp = response_logprobs(policy, ids, mask, P)
    ref_logp = response_logprobs(ref, ids, mask, P)
    values = response_values(value_model, ids, mask, P)
    score = reward_model(ids, mask).reward.float()  # last real token = the response's last token
    rewards, kl = kl_penalised_rewards(logp, ref_logp, score, r_mask, cfg.beta)
    advantages, returns = gae(rewards, values * r_mask, r_mask, cfg.gamma, cfg.lam)
    return Rollout(ids, mask, P, r_mask, logp, ref_logp, values, score, rewards, kl, advantages, returns)


def ppo_train(policy: LanguageModel, ref: LanguageModel, value_model: ScalarModel, reward_model: ScalarModel,
              prompts: list[list[int]], cfg: PPOConfig, eos_id: int | None, pad_id: int,
              ptx_batch: Callable[[int], dict] | None = None,
              judge: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
              log: Callable[[dict], None] | None = None) -> list[dict]:
    """PPO (ptx_coef = 0) or PPO-ptx on `prompts` (token lists, cycled in a seeded order).

    Each iteration samples `batch_size` episodes, scores them with the training reward model,
    and takes `ppo_epochs` passes of minibatch updates. With ptx_coef > 0 every policy update
    also descends ptx_coef x the LM loss of `ptx_batch(step)` (pre-training text), the second
    term of Eq. 2. `judge(ids, mask)` (a held-apart gold reward model) scores the same episodes
    for the log only: it never touches a gradient. Returns one record per iteration."""
    ref.eval()
    reward_model.eval()
    pol_opt = build_optimizer(policy, TrainConfig(lr=cfg.lr, weight_decay=0.0))
    val_opt = build_optimizer(value_model, TrainConfig(lr=cfg.value_lr, weight_decay=0.0))
    sample_gen = torch.Generator().manual_seed(cfg.seed)
    order_gen = torch.Generator().manual_seed(cfg.seed + 1)
    queue: list[int] = []
    history, update = [], 0
    for it in range(cfg.iterations):
        while len(queue) < cfg.batch_size:
            queue += torch.randperm(len(prompts), generator=order_gen).tolist()
        batch_prompts, queue = [prompts[i] for i in queue[: cfg.batch_size]], queue[cfg.batch_size:]
        ro = rollout(policy, ref, value_model, reward_model, batch_prompts, cfg, sample_gen, eos_id, pad_id)
        record = {"iteration": it + 1, "episodes": (it + 1) * cfg.batch_size,
                  "score": float(ro.score.mean()), "kl": float(ro.kl.sum(-1).mean()),
                  "response_tokens": float(ro.response_mask.sum(-1).float().mean())}
        if judge is not None:
            with torch.no_grad():
                record["gold"] = float(judge(ro.ids, ro.mask).mean())
        adv = whiten(ro.advantages, ro.response_mask)
        stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "ptx_loss": [], "clipfrac": [], "approx_kl": []}
        policy.train()
        value_model.train()
        for _ in range(cfg.ppo_epochs):
            perm = torch.randperm(cfg.batch_size, generator=order_gen)
            for s in range(0, cfg.batch_size, cfg.minibatch_size):
                idx = perm[s : s + cfg.minibatch_size]
                ids, mask, m = ro.ids[idx], ro.mask[idx], ro.response_mask[idx]
                logp = response_logprobs(policy, ids, mask, ro.prompt_width)
                pl, st = ppo_policy_loss(logp, ro.logp[idx], adv[idx], m, cfg.clip)
                loss = pl
                if cfg.ptx_coef and ptx_batch is not None:
                    b = ptx_batch(update)
                    ptx = policy(b["input_ids"], labels=b["labels"]).loss
                    loss = loss + cfg.ptx_coef * ptx
                    stats["ptx_loss"].append(float(ptx.detach()))
                pol_opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
                pol_opt.step()
                values = response_values(value_model, ids, mask, ro.prompt_width)
                vl = ppo_value_loss(values, ro.values[idx], ro.returns[idx], m, cfg.value_clip)
                val_opt.zero_grad(set_to_none=True)
                vl.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(value_model.parameters(), cfg.grad_clip)
                val_opt.step()
                update += 1
                stats["policy_loss"].append(float(pl.detach()))
                stats["value_loss"].append(float(vl.detach()))
                stats["clipfrac"].append(st["clipfrac"])
                stats["approx_kl"].append(st["approx_kl"])
        policy.eval()
        value_model.eval()
        record.update({k: sum(v) / len(v) for k, v in stats.items() if v})
        history.append(record)
        if log is not None:
            log(record)
    return history


def config_dict(cfg) -> dict:
    return asdict(cfg)


def frozen(model: nn.Module) -> nn.Module:
    """The model in eval mode with gradients off: the SFT reference and the reward models."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


__all__ = [
    "PPOConfig",
    "RMConfig",
    "Rollout",
    "frozen",
    "gae",
    "grouped_ranking_loss",
    "kl_penalised_rewards",
    "pad_left",
    "pad_right",
    "pairwise_accuracy",
    "pairwise_loss",
    "ppo_policy_loss",
    "ppo_train",
    "ppo_value_loss",
    "ranking_pairs",
    "response_logprobs",
    "response_mask",
    "reward_model_from_lm",
    "rollout",
    "sample_responses",
    "score_sequences",
    "train_reward_model",
    "whiten",
]
