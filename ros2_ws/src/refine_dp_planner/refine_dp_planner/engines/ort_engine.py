"""ONNX Runtime backend (CPU): the planner graph (sampler.onnx), or, for a plain diffusion policy, the
denoiser graph in a Python loop."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from refine_dp_planner.diffusion.sampler import sample as diffusion_sample
from refine_dp_planner.diffusion.schedule import DiffusionSchedule
from refine_dp_planner.engines.base import Engine
from refine_dp_planner.engines.metadata import MetadataMismatchError, load_metadata
from refine_dp_planner.normalizer import Normalizer

VARIANTS = ("sampler", "denoiser")


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError(f"onnxruntime is not installed ({e}): pip install onnxruntime (see requirements.txt)") from e
    return ort


def make_session_options(intra_op_threads: int | None = None, allow_spinning: bool = False):
    """Session options tuned for a small graph at batch 1 on a few CPU cores.

    intra_op_threads defaults to 1: the GEMMs are [12 x 128] x [128 x 512] for the shipped DiT, so
    more threads only add synchronisation (measured on the 2-core VM, width 128: 1 thread p50 5.2 /
    p99 6.4 ms, 2 threads 9.3 / 9.9 ms); one inter-op thread and sequential execution because
    the graph is a chain. Spinning is off by default: the planner shares its cores with the 50 Hz
    controller (and, here, with other processes), and spinning workers measured slower p99 on the
    shared 2-core machine; turn it on for a dedicated core. Full graph optimization fuses
    LayerNorm/GELU/attention and folds the constant step embeddings.
    """
    ort = _import_ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(intra_op_threads or 1)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return opts


_OBS_AXES = {1: "obs_horizon", 2: "obs_dim"}
_ACT_AXES = {1: "action_horizon", 2: "action_dim"}
GRAPH_AXES = {"obs_history": _OBS_AXES, "obs": _OBS_AXES, "noise": _ACT_AXES, "x_t": _ACT_AXES, "actions": _ACT_AXES,
              "eps": _ACT_AXES, "step_noise": {0: "ddim_steps", 2: "action_horizon", 3: "action_dim"}}


class OrtEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, export_dir: str | Path, *, variant: str = "sampler", intra_op_threads: int | None = None,
                 allow_spinning: bool = False, seed: int | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"unknown ONNX variant {variant!r}: use one of {VARIANTS}")
        metadata, folder = load_metadata(export_dir)
        super().__init__(metadata, seed)
        ort = _import_ort()
        self.variant = variant
        if variant not in metadata["files"]:
            raise MetadataMismatchError(f"{folder} holds a {metadata['kind']} planner, which has no {variant} graph "
                                        f"(graphs: {metadata['graphs']}): use variant='sampler'")
        path = folder / metadata["files"][variant]
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing: re-export the planner into {folder}")
        self.session = ort.InferenceSession(str(path), make_session_options(intra_op_threads, allow_spinning),
                                            providers=["CPUExecutionProvider"])
        self._check_graph(path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.eta = float(metadata["eta"])
        if variant == "denoiser":
            self.obs_normalizer = Normalizer.from_stats(metadata["normalizer"]["obs"])
            self.action_normalizer = Normalizer.from_stats(metadata["normalizer"]["action"])
            self.schedule = DiffusionSchedule(metadata["num_train_timesteps"], metadata["clip_x0"])
            self.timesteps = list(metadata["timesteps"])
            self.generator = torch.Generator().manual_seed(int(self.rng.integers(2**31)))

    def _check_graph(self, path: Path) -> None:
        """Every graph axis must agree with the metadata field that names it (obs_horizon, action_dim...)."""
        m = self.metadata
        problems = []
        if len(m["timesteps"]) != m["ddim_steps"]:
            problems.append(f"ddim_steps: metadata says {m['ddim_steps']} but lists {len(m['timesteps'])} timesteps")
        for value in [*self.session.get_inputs(), *self.session.get_outputs()]:
            for axis, field in GRAPH_AXES.get(value.name, {}).items():
                dim = value.shape[axis] if axis < len(value.shape) else None
                if isinstance(dim, int) and dim != m.get(field):
                    problems.append(f"{field}: metadata.json says {m.get(field)}, {path.name} has {dim} "
                                    f"(axis {axis} of {value.name})")
        if problems:
            raise MetadataMismatchError(f"{path.parent / 'metadata.json'} does not match {path.name}: "
                                        + "; ".join(dict.fromkeys(problems))
                                        + ". Re-export the planner so graph and metadata agree")

    def _ort_denoiser(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        eps = self.session.run(None, {"x_t": x.numpy(), "t": t.numpy().astype(np.int64), "obs": obs.numpy()})[0]
        return torch.from_numpy(eps)

    def _sample(self, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
        if self.variant == "sampler":
            # planners that ignore the noise (metadata uses_noise false) have no such input
            feeds = {"obs_history": obs, "noise": noise} if "noise" in self.input_names else {"obs_history": obs}
            if "step_noise" in self.input_names:
                feeds["step_noise"] = self.rng.standard_normal((len(self.metadata["timesteps"]), *noise.shape),
                                                               dtype=np.float32)
            return self.session.run(None, feeds)[0]
        with torch.inference_mode():
            obs_n = self.obs_normalizer.normalize(torch.from_numpy(obs))
            out = diffusion_sample(self._ort_denoiser, self.schedule, obs_n, self.timesteps, eta=self.eta,
                                   noise=torch.from_numpy(noise), generator=self.generator)
            return self.action_normalizer.unnormalize(out.actions.clamp(-1.0, 1.0)).numpy()
