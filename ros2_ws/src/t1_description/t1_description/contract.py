"""One check of an exported policy's metadata against what its runner expects (controller and planner).

A policy file is its own contract: the nodes build themselves from its metadata, and anything the
caller brings (the code's observation layout, the joint table, a node parameter) must agree with
it. `check_metadata` compares the fields the caller names and raises one error that names every
field that differs, with both values, so the fix can be read off the message.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

FLOAT_RTOL = 1e-6  # JSON round trips and float32 graphs: equal within this (relative, at least absolute 1e-6)


class ContractMismatchError(ValueError):
    """A policy's metadata contradicts what the code or a parameter expects."""


def metadata_differences(metadata: Mapping, expected: Mapping, path: str = "") -> list[str]:
    """'field: caller expects X, metadata has Y' for every field of `expected` that `metadata` contradicts.

    Dicts compare over the keys of `expected` (recursively; keys only the metadata has are not
    checked), lists element by element (an element dict with a "name" is named by it), numbers
    within FLOAT_RTOL, tuples equal to lists (JSON has no tuples). A missing field is a difference.
    """
    out: list[str] = []
    for key, want in expected.items():
        name = f"{path}.{key}" if path else str(key)
        if not isinstance(metadata, Mapping) or key not in metadata:
            out.append(f"{name}: caller expects {want!r}, metadata has nothing")
            continue
        out += _differences(want, metadata[key], name)
    return out


def _differences(want, got, name: str) -> list[str]:
    if isinstance(want, Mapping):
        if not isinstance(got, Mapping):
            return [f"{name}: caller expects {dict(want)!r}, metadata has {got!r}"]
        return metadata_differences(got, want, name)
    if _is_list(want) and _is_list(got):
        if len(want) != len(got):
            return [f"{name}: caller expects {_short(want)} ({len(want)} entries), metadata has {_short(got)} "
                    f"({len(got)} entries)"]
        out = []
        for i, (w, g) in enumerate(zip(want, got)):
            label = w.get("name") if isinstance(w, Mapping) and "name" in w else i
            out += _differences(w, g, f"{name}[{label}]")
        return out
    if _equal(want, got):
        return []
    return [f"{name}: caller expects {want!r}, metadata has {got!r}"]


def _is_list(x) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, (str, bytes))


def _equal(want, got) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got or want == got and type(want) is type(got)
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return abs(float(want) - float(got)) <= FLOAT_RTOL * max(1.0, abs(float(want)))
    return want == got


def _short(x) -> str:
    text = repr(list(x))
    return text if len(text) <= 120 else text[:117] + "..."


def check_metadata(metadata: Mapping, expected: Mapping | None, source: str = "policy", *,
                   holder: str = "metadata", fix: str = "", error: type[ContractMismatchError] = ContractMismatchError
                   ) -> None:
    """Raise `error` naming every field of `expected` that `metadata` contradicts, with both values.

    expected: only the fields the caller cares about, e.g. {"control_hz": 50.0} or
    {"footstep_planner": {"step_period": 0.6}}; nested dicts compare recursively (see
    metadata_differences). holder names the metadata's owner in the message ("engine", "policy");
    fix is appended (what to do about it).
    """
    if not expected:
        return
    diffs = metadata_differences(metadata, expected)
    if diffs:
        text = "; ".join(d.replace("metadata has", f"{holder} has") for d in diffs)
        raise error(f"{source} metadata does not match what is expected: {text}" + (f". {fix}" if fix else ""))
