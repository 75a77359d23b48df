"""TensorRT backend: builds (and caches) an engine from the exported sampler.onnx.

TensorRT is not on any registry this project can reach and is installed only in the deployment
image, so everything TensorRT-specific is imported lazily and a missing install is a clear error
that points to the onnxruntime backend (same graph, same metadata).
Needs a CUDA build of torch for the device buffers. Untested off the deployment image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from refine_dp_planner.engines.base import Engine
from refine_dp_planner.engines.metadata import load_metadata


class TensorRTNotInstalledError(ImportError):
    pass


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTNotInstalledError(
            f"TensorRT is not installed (import tensorrt failed: {e}). Use backend='onnxruntime' with the same "
            f"export folder, or run on the deployment image (docker/) that ships TensorRT") from e
    return trt


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, export_dir: str | Path, *, max_batch: int = 8, fp16: bool = False, seed: int | None = None):
        trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("TensorRT backend needs a CUDA GPU and a CUDA build of torch; use backend='onnxruntime'")
        metadata, folder = load_metadata(export_dir)
        super().__init__(metadata, seed)
        if metadata["eta"] > 0:
            raise ValueError("TensorRT backend runs the deterministic unrolled sampler only (eta == 0); re-export with eta=0")
        self.trt, self.torch = trt, torch
        onnx_path = folder / metadata["files"]["sampler"]
        plan = folder / f"sampler.trt{trt.__version__}.b{max_batch}{'.fp16' if fp16 else ''}.plan"
        logger = trt.Logger(trt.Logger.WARNING)
        if not plan.is_file() or plan.stat().st_mtime < onnx_path.stat().st_mtime:
            plan.write_bytes(self._build(trt, logger, onnx_path, max_batch, fp16))
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(plan.read_bytes())
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.max_batch = max_batch

    def _build(self, trt, logger, onnx_path: Path, max_batch: int, fp16: bool) -> bytes:
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        To, Do = self.obs_shape
        Ta, Da = self.action_shape
        inputs = {network.get_input(i).name for i in range(network.num_inputs)}
        for name, (a, b) in (("obs_history", (To, Do)), ("noise", (Ta, Da))):
            if name in inputs:  # planners that ignore the noise have no such input
                profile.set_shape(name, (1, a, b), (1, a, b), (max_batch, a, b))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
        return bytes(serialized)

    def _sample(self, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
        torch = self.torch
        if obs.shape[0] > self.max_batch:
            raise ValueError(f"batch {obs.shape[0]} exceeds the TensorRT profile's max_batch {self.max_batch}")
        tensors = {"obs_history": torch.from_numpy(obs).cuda()}
        if self.metadata["uses_noise"]:
            tensors["noise"] = torch.from_numpy(noise).cuda()
        for name in list(tensors):
            self.context.set_input_shape(name, tuple(tensors[name].shape))
        tensors["actions"] = torch.empty((obs.shape[0], *self.action_shape), device="cuda")
        for name, tensor in tensors.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return tensors["actions"].cpu().numpy()
