"""Planner engines: ONNX export (unrolled sampler and denoiser), ONNX Runtime parity with torch,
metadata checks, the TensorRT-missing error, and the benchmark's shape. Tiny random DiT, CPU only."""
import json
import shutil

import numpy as np
import pytest
import torch

from refine_dp_planner.bench import bench_planner
from refine_dp_planner.config import DiffusionPolicyConfig
from refine_dp_planner.engines import MetadataMismatchError, TensorRTNotInstalledError, make_engine
from refine_dp_planner.export import UnrolledSampler, export_policy
from refine_dp_planner.models import DiTConfig, MLPDenoiserConfig
from refine_dp_planner.policy import DiffusionPolicy

To, Do, Ta, Da = 4, 7, 6, 5


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: one torch thread avoids oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _policy(backbone="dit", seed=0, eta=0.0):
    torch.manual_seed(seed)
    cfg = DiffusionPolicyConfig(obs_dim=Do, action_dim=Da, obs_horizon=To, action_horizon=Ta, backbone=backbone,
                                ddim_steps=5, eta=eta, dit=DiTConfig(width=32, depth=2, heads=2),
                                mlp=MLPDenoiserConfig(hidden_dims=[32, 32]),
                                action_fields=[("base_vel", 3), ("grippers", 2)])
    policy = DiffusionPolicy(cfg)
    with torch.no_grad():
        for p in policy.denoiser.parameters():  # zero-init gates would make eps trivially 0
            p.normal_(0.0, 0.15)
    g = torch.Generator().manual_seed(seed)
    policy.fit_normalizers(torch.randn(64, Do, generator=g) * 2 + 3, torch.rand(64, Da, generator=g) * 6 - 2)
    return policy.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    policy = _policy()
    return policy, export_policy(policy, tmp_path_factory.mktemp("dit_export"))


def _inputs(B=3, seed=1):
    rng = np.random.default_rng(seed)
    obs = (rng.standard_normal((B, To, Do)) * 2 + 3).astype(np.float32)
    return obs, rng.standard_normal((B, Ta, Da)).astype(np.float32)


@pytest.mark.parametrize("variant", ["sampler", "denoiser"])
def test_onnxruntime_matches_torch(exported, variant):
    policy, folder = exported
    obs, noise = _inputs()
    ref = make_engine("torch", policy).sample(obs, noise)
    out = make_engine("onnxruntime", folder, variant=variant).sample(obs, noise)
    assert out.shape == (3, Ta, Da)
    assert np.abs(out - ref).max() < 1e-4
    # Not trivially equal: the output depends on the noise and on the observation.
    obs2, noise2 = _inputs(seed=2)
    assert np.abs(make_engine("onnxruntime", folder, variant=variant).sample(obs, noise2) - out).max() > 1e-2
    assert np.abs(make_engine("onnxruntime", folder, variant=variant).sample(obs2, noise) - out).max() > 1e-2
    assert np.abs(ref - policy.sample(torch.from_numpy(obs), torch.from_numpy(noise)).numpy()).max() == 0


def test_mlp_backbone_and_stochastic_export(tmp_path):
    policy = _policy("mlp", seed=3)
    folder = export_policy(policy, tmp_path / "mlp")
    obs, noise = _inputs()
    assert np.abs(make_engine("onnxruntime", folder).sample(obs, noise) - make_engine("torch", policy).sample(obs, noise)).max() < 1e-4
    # eta > 0: the unrolled graph takes the per-step noise as an input and matches its torch module.
    folder = export_policy(policy, tmp_path / "mlp_eta", eta=1.0)
    step_noise = np.random.default_rng(0).standard_normal((5, 3, Ta, Da)).astype(np.float32)
    engine = make_engine("onnxruntime", folder)
    got = engine.session.run(None, {"obs_history": obs, "noise": noise, "step_noise": step_noise})[0]
    with torch.no_grad():
        want = UnrolledSampler(policy, eta=1.0)(*(torch.from_numpy(a) for a in (obs, noise, step_noise))).numpy()
    assert np.abs(got - want).max() < 1e-4
    a, b = engine.sample(obs, noise), engine.sample(obs, noise)
    assert np.abs(a - b).max() > 1e-3  # fresh step noise on each call


def test_metadata_contents(exported):
    policy, folder = exported
    meta = json.loads((folder / "metadata.json").read_text())
    assert (meta["obs_horizon"], meta["obs_dim"], meta["action_horizon"], meta["action_dim"]) == (To, Do, Ta, Da)
    assert meta["rate_hz"] == 10.0 and meta["ddim_steps"] == 5 and meta["eta"] == 0.0
    assert meta["schedule"] == "cosine" and meta["prediction"] == "epsilon" and len(meta["timesteps"]) == 5
    assert meta["normalizer"]["action"]["scale"] == pytest.approx(policy.action_normalizer.scale.tolist())
    assert meta["action_fields"] == [["base_vel", 3], ["grippers", 2]]
    assert meta["git_revision"] and meta["inputs"]["sampler"]["noise"] == [None, Ta, Da]
    # the planner contract: the node reads these instead of having them retyped
    assert (meta["kind"], meta["act_steps"], meta["graphs"]) == ("diffusion", Ta, ["sampler", "denoiser"])
    engine = make_engine("onnxruntime", folder, expected={"obs_horizon": To, "action_dim": Da, "rate_hz": 10.0})
    assert engine.metadata["backbone"] == "dit"


def test_metadata_mismatch_is_refused_naming_the_field(exported, tmp_path):
    _, folder = exported
    with pytest.raises(MetadataMismatchError, match=r"rate_hz: caller expects 20.0, engine has 10.0"):
        make_engine("onnxruntime", folder, expected={"rate_hz": 20.0, "obs_horizon": To})
    with pytest.raises(MetadataMismatchError, match="obs_dim"):
        make_engine("torch", _policy(), expected={"obs_dim": Do + 1})
    # metadata.json edited (or copied from another export) so it no longer describes the graph.
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    meta = json.loads((bad / "metadata.json").read_text())
    meta["obs_horizon"] = To + 2
    (bad / "metadata.json").write_text(json.dumps(meta))
    for variant in ("sampler", "denoiser"):
        with pytest.raises(MetadataMismatchError, match=rf"obs_horizon: metadata.json says {To + 2}, .*onnx has {To}"):
            make_engine("onnxruntime", bad, variant=variant)
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        make_engine("onnxruntime", tmp_path)


def test_tensorrt_backend_reports_missing_install(exported):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(TensorRTNotInstalledError, match="TensorRT is not installed.*backend='onnxruntime'"):
        make_engine("tensorrt", exported[1])


def test_engine_input_checks_and_seeded_noise(exported, tmp_path):
    policy, folder = exported
    engine = make_engine("onnxruntime", folder, seed=7)
    obs, noise = _inputs()
    with pytest.raises(ValueError, match="obs_horizon"):
        engine.sample(obs[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        engine.sample(np.full_like(obs, np.nan))
    with pytest.raises(ValueError, match="action_horizon"):
        engine.sample(obs, noise[:, :2])
    a = engine.sample(obs)
    assert np.abs(make_engine("onnxruntime", folder, seed=7).sample(obs) - a).max() == 0
    assert np.abs(engine.sample(obs) - a).max() > 1e-3
    with pytest.raises(ValueError, match="unknown planner backend"):
        make_engine("tflite", folder)
    # torch engine from a checkpoint file
    policy.save(tmp_path / "dp.pt")
    ck = make_engine("torch", tmp_path / "dp.pt")
    assert np.abs(ck.sample(obs, noise) - make_engine("torch", policy).sample(obs, noise)).max() == 0


def test_bench_planner_reports_latency_and_parity():
    result = bench_planner(_policy(), backends=("torch", "onnxruntime", "tensorrt"), iters=5, warmup=1)
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
    for name in ("torch", "onnxruntime"):
        r = result["backends"][name]
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["max_abs_diff_vs_torch_normalized"] < 1e-4
    assert "error" in result["backends"]["tensorrt"] or "p50_ms" in result["backends"]["tensorrt"]


def test_act_steps_travels_from_the_config_into_the_metadata(tmp_path):
    policy = _policy("mlp", seed=4)
    policy.config.act_steps = 2
    policy.save(tmp_path / "dp.pt")
    from refine_dp_planner import export
    assert export.main(["--checkpoint", str(tmp_path / "dp.pt"), "--out", str(tmp_path / "e")]) == 0
    engine = make_engine("onnxruntime", tmp_path / "e")
    assert (engine.act_steps, engine.rate_hz, engine.action_shape) == (2, 10.0, (Ta, Da))
    with pytest.raises(ValueError, match=r"act_steps 7 must be in \[1, action_horizon=6\]"):
        DiffusionPolicyConfig(obs_dim=Do, action_dim=Da, obs_horizon=To, action_horizon=Ta, act_steps=7)
    meta = json.loads((tmp_path / "e" / "metadata.json").read_text())
    meta["format"] = "refine_dp_planner.engine/1"
    (tmp_path / "e" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(MetadataMismatchError, match="lack act_steps.*refine-dp export planner"):
        make_engine("onnxruntime", tmp_path / "e")


def test_two_denoiser_sampler_matches_a_step_by_step_dispatch(tmp_path):
    """DPPO's export on the DiT (per-step conditioning folded in): base denoiser for the first K - J
    steps, the tuned one for the last J, as DPPOActor._denoiser dispatches them."""
    from refine_dp_planner.deployable import DiffusionDeployable
    from refine_dp_planner.diffusion import sampler as diffusion_sampler

    policy = _policy(seed=5)
    tuned = policy.frozen_copy().denoiser
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.1 * torch.randn_like(p))
    K, J = 5, 2
    late = set(policy.timesteps(K)[K - J:])
    obs, noise = _inputs()
    with torch.no_grad():
        out = diffusion_sampler.sample(lambda x, t, o: (tuned if int(t[0]) in late else policy.denoiser)(x, t, o),
                                       policy.schedule, policy.obs_normalizer.normalize(torch.from_numpy(obs)),
                                       policy.timesteps(K), noise=torch.from_numpy(noise))
        want = policy.action_normalizer.unnormalize(out.actions.clamp(-1, 1)).numpy()
    planner = DiffusionDeployable(policy, K, 0.0, tuned, J)
    folder = export_policy(planner, tmp_path / "dppo")
    got = make_engine("onnxruntime", folder).sample(obs, noise)
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(got - make_engine("torch", policy).sample(obs, noise)).max() > 1e-3  # the tuned steps count
