"""repro.rlhf: the reward-model losses, KL-penalised rewards, GAE and the PPO losses against
hand-written references and closed forms; the reward model and PPO loop on tiny models
(determinism, learning a planted preference); and the reward loss against trl's RewardTrainer."""

import itertools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from repro.model import build_model, scaled
from repro.rlhf import (
    PPOConfig,
    RMConfig,
    frozen,
    gae,
    grouped_ranking_loss,
    kl_penalised_rewards,
    pad_left,
    pairwise_accuracy,
    pairwise_loss,
    ppo_policy_loss,
    ppo_train,
    ppo_value_loss,
    ranking_pairs,
    response_logprobs,
    response_mask,
    reward_model_from_lm,
    train_reward_model,
)


def tiny_lm(seed=0, vocab=32):
    torch.manual_seed(seed)
    cfg = scaled("gpt2_small", n_layer=1, d_model=16, n_head=2, max_seq_len=32, dropout=0.0, vocab_size=vocab)
    return build_model(cfg, "lm").eval()


def test_pairwise_loss_is_mean_negative_log_sigmoid():
    rc, rr = torch.tensor([1.0, -0.5, 2.0]), torch.tensor([0.0, 0.5, 2.0])
    expected = sum(-math.log(1 / (1 + math.exp(-(c - r)))) for c, r in zip(rc.tolist(), rr.tolist())) / 3
    assert float(pairwise_loss(rc, rr)) == pytest.approx(expected, rel=1e-6)
    assert float(pairwise_loss(torch.zeros(4), torch.zeros(4))) == pytest.approx(math.log(2))


def test_grouped_loss_equals_the_enumerated_pairs():
    torch.manual_seed(0)
    rewards = torch.randn(5, 4)  # 5 prompts, K = 4 completions ranked best first
    per_group = []
    for row in rewards:
        pairs = [(row[i], row[j]) for i, j in itertools.combinations(range(4), 2)]
        assert len(pairs) == math.comb(4, 2)
        per_group.append(sum(-F.logsigmoid(w - l) for w, l in pairs) / len(pairs))
    assert float(grouped_ranking_loss(rewards)) == pytest.approx(float(sum(per_group) / 5), rel=1e-6)
    # K = 2: one pair per prompt, the plain pairwise loss
    two = torch.randn(6, 2)
    assert float(grouped_ranking_loss(two)) == pytest.approx(float(pairwise_loss(two[:, 0], two[:, 1])), rel=1e-6)
    w, l = ranking_pairs(4)
    assert sorted(zip(w.tolist(), l.tolist())) == list(itertools.combinations(range(4), 2))


def reference_gae(rewards, values, lengths, gamma, lam):
    """GAE written out per row as the paper's recursion over a row's real tokens only."""
    out = []
    for r, v, n in zip(rewards, values, lengths):
        adv = [0.0] * len(r)
        last = 0.0
        for t in reversed(range(n)):
            next_v = v[t + 1] if t + 1 < n else 0.0
            last = r[t] + gamma * next_v - v[t] + gamma * lam * last
            adv[t] = last
        out.append(adv)
    return out


def test_gae_matches_a_hand_rolled_reference():
    torch.manual_seed(1)
    rewards, values = torch.randn(3, 6), torch.randn(3, 6)
    lengths = [6, 4, 1]
    mask = torch.tensor([[1] * n + [0] * (6 - n) for n in lengths])
    adv, ret = gae(rewards * mask, values * mask, mask, gamma=0.9, lam=0.8)
    expected = torch.tensor(reference_gae((rewards * mask).tolist(), (values * mask).tolist(), lengths, 0.9, 0.8))
    torch.testing.assert_close(adv, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ret, (expected + values) * mask, rtol=1e-5, atol=1e-6)
    assert float(adv[1, 4:].abs().sum()) == 0.0  # padding gets nothing


def test_gae_with_lambda_one_and_no_discount_is_return_minus_value():
    torch.manual_seed(2)
    rewards, values = torch.randn(2, 5), torch.randn(2, 5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    rewards, values = rewards * mask, values * mask
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    future = rewards.flip(-1).cumsum(-1).flip(-1)  # sum_{t' >= t} r_t'
    torch.testing.assert_close(adv, (future - values) * mask, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ret, future * mask, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("log_ratio, advantage, clipped", [
    (math.log(1.5), 1.0, True),     # ratio above 1 + eps, advantage pushes it up: no more push
    (math.log(0.5), -1.0, True),    # ratio below 1 - eps, advantage pushes it down: no more push
    (math.log(1.1), 1.0, False),    # inside the trust region: the ordinary policy gradient
    (math.log(0.5), 1.0, False),    # outside, but the advantage pulls it back: not clipped
])
def test_ppo_clip_zeroes_the_gradient_past_the_clip(log_ratio, advantage, clipped):
    old = torch.tensor([[-1.0]])
    logp = (old + log_ratio).clone().requires_grad_(True)
    loss, _ = ppo_policy_loss(logp, old, torch.tensor([[advantage]]), torch.ones(1, 1), clip=0.2)
    loss.backward()
    if clipped:
        assert float(logp.grad) == 0.0
    else:  # d(-A ratio)/d logp = -A ratio
        assert float(logp.grad) == pytest.approx(-advantage * math.exp(log_ratio), rel=1e-5)


def test_value_loss_is_clipped_around_the_old_value():
    old, ret = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    v = torch.tensor([[0.5]], requires_grad=True)  # moved 0.5 > clip 0.2 towards the return
    loss = ppo_value_loss(v, old, ret, torch.ones(1, 1), clip=0.2)
    # max((0.5-1)^2, (0.2-1)^2) = 0.64: the clipped branch wins, and it is flat in v
    assert float(loss.detach()) == pytest.approx(0.5 * 0.64)
    loss.backward()
    assert float(v.grad) == 0.0


def test_kl_penalty_is_zero_when_the_policy_is_the_reference():
    lm = tiny_lm()
    ref = tiny_lm()
    ref.load_state_dict(lm.state_dict())
    ids, mask = pad_left([[3, 4, 5], [6, 7]], pad_id=0)
    full = torch.cat([ids, torch.tensor([[8, 9, 0], [10, 0, 0]])], 1)
    rmask = response_mask(full[:, 3:], eos_id=0)
    fmask = torch.cat([mask, rmask], 1)
    lp, ref_lp = response_logprobs(lm, full, fmask, 3), response_logprobs(ref, full, fmask, 3)
    score = torch.tensor([0.7, -0.3])
    rewards, kl = kl_penalised_rewards(lp, ref_lp, score, rmask, beta=0.5)
    assert float(kl.abs().sum()) == 0.0
    # only the score remains, at each row's last response token (the first eos)
    assert rmask.tolist() == [[1, 1, 1], [1, 1, 0]]
    torch.testing.assert_close(rewards, torch.tensor([[0.0, 0.0, 0.7], [0.0, -0.3, 0.0]]))
    # a different policy is penalised: -beta (log pi - log pi_ref) where they differ
    other = tiny_lm(seed=1)
    rewards2, kl2 = kl_penalised_rewards(response_logprobs(other, full, fmask, 3), ref_lp, score, rmask, beta=0.5)
    assert float(kl2.abs().sum()) > 0
    torch.testing.assert_close(rewards2 - rewards, -0.5 * kl2)


def test_response_mask_keeps_tokens_up_to_the_first_eos():
    resp = torch.tensor([[5, 6, 0, 0], [5, 0, 7, 0], [5, 6, 7, 8]])  # eos = pad = 0
    assert response_mask(resp, 0).tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]


def planted_pairs(n=24):
    """Chosen completions end in token 5, rejected ones in 6: a preference a reward model can learn."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        prompt = torch.randint(7, 30, (4,), generator=g).tolist()
        out.append([prompt + [5], prompt + [6]])
    return out


def test_reward_model_learns_a_planted_preference_and_is_deterministic():
    def fit(grouped):
        rm = reward_model_from_lm(tiny_lm())
        info = train_reward_model(rm, planted_pairs(), RMConfig(epochs=8, batch_size=8, lr=3e-3, grouped=grouped), pad_id=0)
        return rm, info

    rm, info = fit(True)
    assert info["forward_passes"] == 8 * 24 * 2
    acc = pairwise_accuracy(rm, [tuple(p) for p in planted_pairs()], pad_id=0)
    assert sum(acc) / len(acc) == 1.0
    rm2, _ = fit(True)
    for a, b in zip(rm.state_dict().values(), rm2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the reward model shares the SFT body and starts every reward at zero
    fresh = reward_model_from_lm(tiny_lm())
    assert float(fresh(torch.tensor([[3, 4, 5]])).reward.abs().sum()) == 0.0


def test_shuffled_and_grouped_see_the_same_comparisons_with_k_above_two():
    groups = [[[1, 2, 3], [1, 2, 4], [1, 2, 5]] for _ in range(4)]  # K = 3: 3 pairs per prompt
    grouped = train_reward_model(reward_model_from_lm(tiny_lm()), groups, RMConfig(batch_size=2), pad_id=0)
    shuffled = train_reward_model(reward_model_from_lm(tiny_lm()), groups, RMConfig(batch_size=2, grouped=False), pad_id=0)
    assert grouped["elements"] == 4 and shuffled["elements"] == 12
    assert grouped["forward_passes"] == 4 * 3 and shuffled["forward_passes"] == 12 * 2  # K vs 2 C(K,2) per prompt


def run_ppo(seed=0, ptx=0.0):
    policy = tiny_lm()
    ref = frozen(tiny_lm())
    ref.load_state_dict(policy.state_dict())
    rm = frozen(reward_model_from_lm(policy))
    with torch.no_grad():
        rm.scalar_head.bias.fill_(0.0)
        rm.scalar_head.weight.normal_(0, 1, generator=torch.Generator().manual_seed(3))
    value = reward_model_from_lm(policy)
    prompts = [[3, 4, 5], [6, 7], [8, 9, 10, 11], [12]]
    x = torch.randint(1, 32, (2, 8), generator=torch.Generator().manual_seed(4))
    cfg = PPOConfig(iterations=3, batch_size=4, minibatch_size=2, lr=1e-2, value_lr=1e-2, max_new_tokens=5,
                    ptx_coef=ptx, seed=seed)
    history = ppo_train(policy, ref, value, rm, prompts, cfg, eos_id=0, pad_id=0,
                        ptx_batch=(lambda step: {"input_ids": x, "labels": x}) if ptx else None,
                        judge=lambda ids, mask: rm(ids, mask).reward)
    return policy, history


def test_ppo_loop_is_deterministic_moves_the_policy_and_logs_gold():
    p1, h1 = run_ppo()
    p2, h2 = run_ppo()
    assert h1 == h2
    assert len(h1) == 3 and all("gold" in r and "kl" in r for r in h1)
    assert h1[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the first rollout comes from pi = pi_SFT
    assert any(not torch.equal(a, b) for a, b in zip(p1.state_dict().values(), tiny_lm().state_dict().values()))
    _, h_ptx = run_ppo(ptx=1.0)
    assert all("ptx_loss" in r for r in h_ptx) and h_ptx != h1


def test_reward_loss_matches_trl_reward_trainer():
    """trl 1.16's RewardTrainer.compute_loss (chosen rows first, then rejected) on our reward model's
    outputs gives our pairwise loss. trl has no PPO/GAE any more (PPOTrainer was removed), so the
    advantages are checked against the hand-rolled reference and the closed form above instead."""
    try:
        from trl import RewardTrainer
    except Exception as e:  # not installed, or a missing optional dependency (accelerate, psutil)
        pytest.skip(f"trl unavailable: {type(e).__name__}: {e}")
    from collections import defaultdict

    rm = reward_model_from_lm(tiny_lm())
    with torch.no_grad():
        rm.scalar_head.weight.normal_(0, 1, generator=torch.Generator().manual_seed(0))
    chosen = [[3, 4, 5, 6], [7, 8, 9, 0]]
    rejected = [[3, 4, 5, 7], [7, 8, 1, 2]]
    ids = torch.tensor(chosen + rejected)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]])

    class HFStyle(torch.nn.Module):  # what trl expects: logits of shape (B, 1)
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, **_):
            return SimpleNamespace(logits=self.inner(input_ids, attention_mask).reward[:, None])

    model = HFStyle(rm).eval()
    identity = SimpleNamespace(gather_for_metrics=lambda x: x, gather=lambda x: x)
    fake = SimpleNamespace(model=model, args=SimpleNamespace(center_rewards_coefficient=None), accelerator=identity,
                           _total_train_tokens=0, _tp_size=1, _metrics=defaultdict(lambda: defaultdict(list)))
    theirs = RewardTrainer.compute_loss(fake, model, {"input_ids": ids, "attention_mask": mask})
    r = rm(ids, mask).reward
    ours = pairwise_loss(r[:2], r[2:])
    assert float(theirs.detach()) == pytest.approx(float(ours.detach()), rel=1e-6)
    assert float(grouped_ranking_loss(torch.stack([r[:2], r[2:]], 1)).detach()) == pytest.approx(float(theirs.detach()), rel=1e-6)
