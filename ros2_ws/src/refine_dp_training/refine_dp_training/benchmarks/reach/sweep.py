"""The sparse-reward benchmark's plan (`refine-dp sweep --benchmark reach`), see README.md here.

Budgets are in env steps (50-step episodes, 50 Hz); 20 evaluations per run of 20 fixed episodes,
so "env steps to 90 % success" (the DSRL-vs-DPPO question) is read at a resolution of budget / 20.
"""
from __future__ import annotations

from ..sweep import Benchmark

BENCHMARK = Benchmark(
    name="reach", env="SparseReach-v0", dp="runs/reach_dp/policy.pt", demos="runs/reach_demos",
    plan={
        "dppo": (100_000, ["--num-envs", "10", "--n-steps", "25"], "dp"),        # 500 env steps per iteration
        "ppo-gaussian": (100_000, ["--steps-per-iter", "64"], "dp"),
        "mlp-ft": (100_000, [], "mlp"),
        "residual": (100_000, [], "dp"),
        "dsrl-sac": (20_000, ["--num-envs", "4", "--learning-starts", "1000"], "dp"),
        "dsrl-na": (10_000, ["--num-envs", "4", "--learning-starts", "1000"], "dp"),  # 2 DDIM batches per update
    },
    metric="success_mean", reach=0.9, metric_label="success rate (deterministic, 20 episodes)",
    mlp_pretrain=["--preset", "reach"], eval_points=20, eval_episodes=20, compare_at=10_000,   # DSRL-NA's budget
    plots=(("success_mean", "success rate (deterministic, 20 episodes)"),
           ("length_mean", "episode length [steps] (50 = time limit)")),
    title="Fine-tuning one pretrained DP on SparseReach-v0 (sparse reward): mean over seeds, band = min..max")

