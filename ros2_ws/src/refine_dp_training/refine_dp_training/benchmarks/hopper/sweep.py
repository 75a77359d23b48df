"""The Hopper fine-tuning benchmark's plan (`refine-dp sweep --benchmark hopper`, or `refine-dp hopper-sweep`).

Budgets keep each run well under 60 CPU-minutes on the 2-core VM; raising a budget and running
again extends finished runs. Success on Hopper = reaching the 1000-step limit without falling;
the table is about return (2800: ~80 % of the expert's best, 3484). See ../sweep.py for the commands.
"""
from __future__ import annotations

from ..sweep import Benchmark

BENCHMARK = Benchmark(
    name="hopper", env="Hopper-v5", dp="runs/hopper_dp/policy.pt", demos="runs/hopper_demos",
    plan={
        "dppo": (400_000, ["--num-envs", "10"], "dp"),  # 120k was too short to lift (2309 -> 2091 +- 331)
        "ppo-gaussian": (150_000, [], "dp"),
        "mlp-ft": (150_000, [], "mlp"),
        "residual": (150_000, [], "dp"),
        "dsrl-sac": (20_000, ["--num-envs", "4", "--learning-starts", "2000"], "dp"),
        "dsrl-na": (20_000, ["--num-envs", "4", "--learning-starts", "2000"], "dp"),
    },
    metric="return_mean", reach=2800, metric_label="deterministic return (Hopper-v5)",
    mlp_pretrain=["--preset", "hopper"], eval_points=6, eval_episodes=5,
    plots=(("return_mean", "deterministic return (Hopper-v5)"),
           ("success_mean", "success (reaches the 1000-step limit)")),
    title="Fine-tuning one pretrained DP on Hopper-v5: mean over seeds, band = min..max")

