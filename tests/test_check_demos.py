"""tasks/check_demos.py: demos whose task object jumped (a box the physics shot away) are flagged and --clean drops
them, so that the min-max normalizer is fitted on the episodes that are what the task is."""
from __future__ import annotations

import json

import numpy as np

from refine_dp_training.data.episodes import EpisodeDataset, EpisodeWriter
from refine_dp_training.tasks import check_demos


def test_an_episode_whose_box_jumps_is_flagged_and_cleaned_away(tmp_path, capsys):
    rng = np.random.default_rng(0)
    fields = [("hands", 4), ("box", 10)]
    with EpisodeWriter(tmp_path / "ds", 14, 2, obs_fields=fields, control_rate_hz=10.0) as w:
        for k in range(4):
            obs = np.zeros((30, 14), np.float32)
            obs[:, 4:7] = [0.5, 0.0, 0.1] + np.cumsum(rng.normal(0, 0.005, (30, 3)), 0)  # the box, walked up to
            obs[:, 13] = 1.0                                                            # tracked
            if k == 2:
                obs[-3:, 4:7] += [[2.0, 0.0, 2.0], [4.0, 0.0, 4.0], [6.0, 0.0, 6.0]]   # shot away: 20+ m/s
            w.add_episode(obs, rng.uniform(-1, 1, (30, 2)), np.zeros(30), success=True)
    (tmp_path / "ds" / "summary.json").write_text('{"task": "pickup", "episodes_kept": 4, "attempts": 9}')
    check_demos.main([str(tmp_path / "ds"), "--clean", str(tmp_path / "clean")])
    out = capsys.readouterr().out
    assert "1 episodes with an object faster than 3.0 m/s: [2]" in out and "box[0]" in out
    clean = EpisodeDataset(tmp_path / "clean")
    assert len(clean) == 3 and clean.meta["info"]["dropped_episodes"] == [2]
    assert np.abs(np.concatenate([e["obs"] for e in clean.episodes])[:, 4:7]).max() < 1.0
    summary = json.loads((tmp_path / "clean" / "summary.json").read_text())  # the collection's, saying what was dropped
    assert summary["attempts"] == 9 and summary["episodes_kept"] == 3 and summary["dropped_episodes"] == [2]
