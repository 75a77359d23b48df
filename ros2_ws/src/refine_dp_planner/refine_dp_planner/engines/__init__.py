"""Planner inference engines behind one interface (see base.Engine) and `make_engine`."""
from __future__ import annotations

import tempfile
from pathlib import Path

from refine_dp_planner.engines.base import Engine
from refine_dp_planner.engines.metadata import MetadataMismatchError, check_metadata, load_metadata
from refine_dp_planner.engines.trt_engine import TensorRTNotInstalledError

BACKENDS = ("torch", "onnxruntime", "tensorrt")
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "shipped"  # engines this package ships (package data)


def shipped_engines() -> list[str]:
    """Names of the engines in SHIPPED_DIR (folders with a metadata.json)."""
    return sorted(p.parent.name for p in SHIPPED_DIR.glob("*/metadata.json")) if SHIPPED_DIR.is_dir() else []


def resolve_engine_dir(value: str | Path) -> Path:
    """An engine_dir parameter -> an existing export folder: a path as given, else the name of an
    engine shipped in SHIPPED_DIR (`pickup_dit` -> shipped/pickup_dit/)."""
    path = Path(value).expanduser()
    if (path / "metadata.json").is_file():
        return path
    shipped = SHIPPED_DIR / path.name
    if not path.is_absolute() and len(path.parts) == 1 and (shipped / "metadata.json").is_file():
        return shipped
    where = "has no metadata.json" if path.is_dir() else "does not exist"
    raise FileNotFoundError(f"planner engine {str(value)!r} not found: as a path it {where}, and {SHIPPED_DIR} "
                            f"ships {shipped_engines() or 'no engines'}; export one with `refine-dp export planner`")


def make_engine(backend: str, path_or_policy, *, expected: dict | None = None, **options) -> Engine:
    """Build a planner engine.

    backend: "torch" (a DiffusionPolicy, a deployable.Deployable or any planner policy.pt), "onnxruntime"
    or "tensorrt" (an export folder with metadata.json; a DiffusionPolicy or Deployable is exported to a
    temporary folder first).
    expected: metadata fields the caller relies on (e.g. {"obs_dim": 42, "obs_horizon": 8,
    "action_horizon": 12, "rate_hz": 10.0}); any difference raises MetadataMismatchError naming both values.
    options: backend-specific (ddim_steps/eta/use_ema for torch; variant="sampler"|"denoiser",
    intra_op_threads, allow_spinning for onnxruntime; max_batch, fp16 for tensorrt; seed for all).
    """
    from refine_dp_planner.deployable import Deployable
    from refine_dp_planner.policy import DiffusionPolicy

    if backend not in BACKENDS:
        raise ValueError(f"unknown planner backend {backend!r}: use one of {BACKENDS}")
    if backend == "torch":
        from refine_dp_planner.engines.torch_engine import TorchEngine

        engine = TorchEngine(path_or_policy, **options)
    else:
        if backend == "tensorrt":
            from refine_dp_planner.engines.trt_engine import import_tensorrt

            import_tensorrt()  # fail before exporting anything
        if isinstance(path_or_policy, (DiffusionPolicy, Deployable)):
            from refine_dp_planner.export import export_policy

            export_kwargs = {k: options.pop(k) for k in ("ddim_steps", "eta") if k in options}
            path_or_policy = export_policy(path_or_policy, tempfile.mkdtemp(prefix="refine_dp_export_"), **export_kwargs)
        if backend == "onnxruntime":
            from refine_dp_planner.engines.ort_engine import OrtEngine

            engine = OrtEngine(Path(path_or_policy), **options)
        else:
            from refine_dp_planner.engines.trt_engine import TensorRTEngine

            engine = TensorRTEngine(Path(path_or_policy), **options)
    check_metadata(engine.metadata, expected, source=f"{backend} engine")
    return engine


__all__ = ["BACKENDS", "SHIPPED_DIR", "Engine", "resolve_engine_dir", "shipped_engines", "MetadataMismatchError", "TensorRTNotInstalledError", "check_metadata",
           "load_metadata", "make_engine"]
