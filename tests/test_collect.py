"""`refine-dp collect`: the dataset names the controller that was in the loop, and a resumed collection
refuses to mix demos of two controllers (the legs change what a planner's command does)."""
from __future__ import annotations

import hashlib
import json

import pytest

from loco_manip_controller.policy_runtime import resolve_model
from refine_dp_training.tasks.collect import _Appender, collect


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def test_collect_records_the_controller_and_refuses_another(tmp_path):
    out = tmp_path / "demos"
    summary = collect("door", episodes=1, out=out, num_envs=2, videos=0, max_attempts=1, progress=False)
    assert summary["attempts"] >= 1 and summary["dataset"]["episodes"] == summary["episodes_kept"]
    meta = json.loads((out / "metadata.json").read_text())
    controller = meta["info"]["controller"]
    assert controller["legs"]["sha256"] == _sha(resolve_model("legs.onnx"))
    assert controller["arms"]["sha256"] == _sha(resolve_model("arms.onnx"))
    assert "legs" not in meta["info"]["env_kwargs"]  # the shipped legs: the evaluation env takes the same default

    other = json.loads(json.dumps(controller))
    other["legs"]["sha256"] = "0" * 16
    with pytest.raises(ValueError, match="another controller"):
        _Appender.open(out, obs_dim=meta["obs_dim"], act_dim=meta["act_dim"], info={"controller": other})
    same = _Appender.open(out, obs_dim=meta["obs_dim"], act_dim=meta["act_dim"], info={"controller": controller})
    assert same.meta["num_episodes"] == meta["num_episodes"]
