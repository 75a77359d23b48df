"""`refine-dp report t1-tasks`: the T1 studies of issue #16 (REFINE-DP's Fig. 4-7) as one README, from the runs.

    refine-dp report t1-tasks [--runs runs] [--manifest .../t1_tasks/studies.json] [--out .../t1_tasks]

The manifest (studies.json beside this file) is the report's whole recipe: per study its rows (which run
folders each reads: paths under --runs, or `shipped:NAME/...` for refine_dp_planner/shipped/NAME/), the
paper's figure printed beside ours, the columns, and the checks the study's verdict is derived from. A row
reads any of these sources:

    demos     `refine-dp collect`'s folder: summary.json (the heuristic's attempts and successes, wall_s)
    pretrain  `refine-dp pretrain`'s folder: summary.json (its final evaluation, train_wall_s), config.json
    eval      `refine-dp eval task`'s folder: summary.json (success, completion time, hand and footstep errors)
    finetune  `refine-dp finetune`'s folder: config.json, curve.jsonl (one evaluation per line)

A success comes from the row's eval if it has one, else from the last curve evaluation (finetune) or the
final evaluation (pretrain, demos). A row whose folders are all absent reads "not run yet" with the command
that makes it (the row's `command`, else one built from the source); a folder that exists but lacks a
file or holds a malformed one stops the report with an error naming the file and the fix (a half-written
run must not pass for a missing one). A fine-tuning run killed before its first evaluation (empty
curve.jsonl) is a row with "no evaluation yet".

Manifest fields. Top: tasks (one plot each), target_success (the "to 90 %" columns), min_episodes (a success
check passes only on this many evaluation episodes), physics_threads_default (core-hours), studies. A study:
id, title, paper (the paper's figure, one line), columns (names in COLUMNS), rows (a list, or "all": every
run folder the other studies read, for the cost table), checks. A row: id (unique over the manifest), task,
label, paper (the paper's figure for this row), method (a finetune row: checked against its config.json),
the sources above, command (a string, or source -> string, for what is not run yet). A check: claim, rule
(at_least | better | ratio_at_most | reached_within), row, than (the row compared with), metric (a row value:
success, completion_s, hand_rot_error_deg, iterations_to_target, core_hours, ...), target, fail_at.

Writes OUT/README.md and OUT/success_<task>.png (success against env steps of every fine-tuning run of
the task, band = the evaluations' Wilson 95 % intervals).
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ...evalstats import wilson_interval
from ..sweep import _steps as steps_label

HERE = Path(__file__).resolve().parent
SOURCES = ("demos", "pretrain", "eval", "finetune")
RESULTS = ("pass", "fail", "undecided", "missing")
VERDICT_RULE = (
    "Each check is pass, fail, undecided or missing (a row not run yet). A success check passes when the lower "
    "bound of the 95 % (Wilson) interval clears the target and the evaluation has at least `min_episodes` "
    "episodes, fails when the upper bound is below the target, and is undecided otherwise; `better` passes "
    "when the intervals are apart with ours above, fails when they are apart with ours below; a ratio check "
    "(ours / theirs) passes at or below its target and fails at or above `fail_at`; `reached_within` passes "
    "when the run reached the target success within the budget and fails when it spent the budget without. "
    "A study is **reproduced** when every check passes, **refuted** when at least one fails and none passes, "
    "**partly** when some pass and others do not, **undecided** when its measured checks are all undecided, "
    "and **not run** when every check is missing.")
CORE_HOURS_RULE = (
    "core-hours = the wall-clock the run records (a fine-tuning run's curve or summary, a pretraining's "
    "train_wall_s, a collection's wall_s) x cores, cores = the larger "
    "of the run config's torch_threads and its physics threads (env_kwargs nthread, else the task env's "
    "default, `physics_threads_default` in the manifest); pretraining: torch_threads; a demo collection: the "
    "physics default. The 2-core VM was shared with other jobs, so these are upper bounds of the compute used.")


class ReportError(SystemExit):
    """A malformed input: the message names the file and the fix."""


@dataclass
class Rate:
    successes: int
    episodes: int

    @property
    def value(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    def __str__(self) -> str:
        lo, hi = self.interval
        return f"{self.value:.2f} [{lo:.2f}, {hi:.2f}] ({self.successes}/{self.episodes})"


@dataclass
class Row:
    spec: dict
    values: dict = field(default_factory=dict)
    read: list[str] = field(default_factory=list)       # the folders it read
    missing: dict[str, str] = field(default_factory=dict)   # source -> the command that makes it
    note: str = ""

    @property
    def ran(self) -> bool:
        return bool(self.read)


# ---- reading ------------------------------------------------------------------------------------
def _json(path: Path, made_by: str) -> dict:
    if not path.is_file():
        raise ReportError(f"{path} is missing (its folder exists): rerun `{made_by}`, or remove the folder "
                          "or its row in the manifest")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{path} is not valid JSON ({e}): rerun `{made_by}` to rewrite it") from e


def _need(d: dict, keys: tuple[str, ...], path: Path, made_by: str) -> None:
    absent = [k for k in keys if k not in d]
    if absent:
        raise ReportError(f"{path} lacks {', '.join(absent)}: not a summary of `{made_by}`; rerun it or fix the "
                          "row's path in the manifest")


def read_curve(path: Path) -> list[dict]:
    """curve.jsonl: one evaluation per line; a malformed line is an error naming the file and line."""
    if not path.is_file():
        raise ReportError(f"{path} is missing: a finetune folder without its curve; rerun `refine-dp finetune "
                          f"--out {path.parent} --resume` or remove the folder")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReportError(f"{path}:{i} is not valid JSON ({e}): delete that line or rerun the run") from e
        if not isinstance(row, dict) or "env_steps" not in row or "success_mean" not in row:
            raise ReportError(f"{path}:{i} has no env_steps/success_mean: not a fine-tuning curve")
        rows.append(row)
    return rows


def _stat(d: dict, key: str) -> float | None:
    """The median of an `eval task` metric ({"median", "mean", "p90"}), None when it has none."""
    v = d.get(key)
    v = v.get("median") if isinstance(v, dict) else v
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _curve_rate(row: dict) -> Rate:
    n = int(row.get("episodes", 0))
    return Rate(int(row.get("successes", round(row["success_mean"] * n))), n)


def read_eval(path: Path) -> dict:
    made_by = "refine-dp eval task ... --out " + str(path)
    s = _json(path / "summary.json", made_by)
    _need(s, ("episodes", "successes"), path / "summary.json", made_by)
    out = {"success": Rate(int(s["successes"]), int(s["episodes"])), "falls": s.get("falls"),
           "eval_task": s.get("task"), "eval_start": s.get("start")}
    for key, name in (("completion_time_s", "completion_s"), ("hand_pos_error_m", "hand_pos_error_m"),
                      ("hand_rot_error_deg", "hand_rot_error_deg"), ("hand_speed_m_s", "hand_speed_m_s"),
                      ("footstep_error_m", "footstep_error_m")):
        out[name] = _stat(s, key)
    return out


def read_demos(path: Path, physics_threads: int) -> dict:
    made_by = "refine-dp collect ... --out " + str(path)
    s = _json(path / "summary.json", made_by)
    _need(s, ("attempts", "successes", "wall_s"), path / "summary.json", made_by)
    return {"success": Rate(int(s["successes"]), int(s["attempts"])), "completion_s": s.get("success_time_s_mean"),
            "wall_s": float(s["wall_s"]), "cores": physics_threads, "eval_task": s.get("task"),
            "demos": s.get("episodes_kept"), "env_steps": (s.get("dataset") or {}).get("steps")}


def read_pretrain(path: Path) -> dict:
    made_by = "refine-dp pretrain ... --out " + str(path)
    s = _json(path / "summary.json", made_by)
    _need(s, ("final", "train_wall_s"), path / "summary.json", made_by)
    cfg = _json(path / "config.json", made_by)
    final, out = s["final"], {"wall_s": float(s["train_wall_s"]), "cores": int(cfg.get("torch_threads", 1))}
    if final.get("eval_episodes"):
        out["success"] = Rate(int(final["eval_successes"]), int(final["eval_episodes"]))
    out["eval_task"] = (cfg.get("env") or "").removeprefix("t1-") or None
    return out


def read_finetune(path: Path, target: float, physics_threads: int) -> dict:
    made_by = f"refine-dp finetune ... --out {path}"
    cfg = _json(path / "config.json", made_by)
    _need(cfg, ("method", "env"), path / "config.json", made_by)
    curve = read_curve(path / "curve.jsonl")
    threads = int((cfg.get("env_kwargs") or {}).get("nthread", physics_threads))
    cores = max(int(cfg.get("torch_threads", 1)), threads)
    out = {"method": cfg["method"], "eval_task": cfg["env"].removeprefix("t1-"), "cores": cores, "curve": curve}
    if not curve:
        return out
    last, reached = curve[-1], next((r for r in curve if r["success_mean"] >= target), None)
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else {}
    out |= {"start_success": _curve_rate(curve[0]), "success": _curve_rate(last), "level": last.get("start_level"),
            "env_steps": max(int(last["env_steps"]), int(summary.get("env_steps", 0))),
            "wall_s": max(float(last.get("wall_s", 0.0)), float(summary.get("train_wall_s", 0.0)))}
    if reached:
        out |= {"iterations_to_target": reached.get("iteration"), "env_steps_to_target": reached["env_steps"],
                "core_hours_to_target": reached.get("wall_s", 0.0) * cores / 3600}
    return out


def _resolve(path: str, runs: Path) -> Path:
    if path.startswith("shipped:"):
        from refine_dp_planner.engines import SHIPPED_DIR
        return SHIPPED_DIR / path.removeprefix("shipped:")
    return runs / path


def _command(spec: dict, source: str, runs: Path) -> str:
    """The command that makes a missing source: the row's own, else one built from the source's kind."""
    given = spec.get("command")
    if isinstance(given, str):
        return given
    if isinstance(given, dict) and source in given:
        return given[source]
    task, method, path = spec.get("task", "TASK"), spec.get("method", "METHOD"), f"{runs}/{spec[source]}"
    if source == "finetune":
        return f"refine-dp finetune --task {task} --method {method} --out {path}"
    if source == "eval":
        planner = f"{runs}/{spec['finetune']}/policy.pt" if "finetune" in spec else "PLANNER"
        return f"refine-dp eval task --task {task} --planner {planner} --episodes 100 --out {path}"
    if source == "demos":
        return f"refine-dp collect --task {task} --episodes 100 --out {path}"
    return f"refine-dp pretrain --task {task} --out {path}"


def measure(spec: dict, runs: Path, manifest: dict) -> Row:
    """One row of the manifest, read from its sources (order: demos, pretrain, finetune, eval: later wins)."""
    row, target, physics = Row(spec), manifest.get("target_success", 0.9), manifest.get("physics_threads_default", 2)
    for source in ("demos", "pretrain", "finetune", "eval"):
        if source not in spec:
            continue
        path = _resolve(spec[source], runs)
        if not path.is_dir():
            row.missing[source] = _command(spec, source, runs)
            continue
        vals = {"demos": lambda: read_demos(path, physics), "pretrain": lambda: read_pretrain(path),
                "finetune": lambda: read_finetune(path, target, physics), "eval": lambda: read_eval(path)}[source]()
        task = vals.pop("eval_task", None)
        if task and spec.get("task") and task != spec["task"]:
            raise ReportError(f"{path} is a {task} run but the manifest's row {spec['id']!r} says {spec['task']}: "
                              "fix the row's path or task in the manifest")
        if source == "finetune" and spec.get("method") and vals["method"] != spec["method"]:
            raise ReportError(f"{path / 'config.json'} is method {vals['method']} but the manifest's row "
                              f"{spec['id']!r} says {spec['method']}: fix the row in the manifest")
        if source == "finetune" and not vals["curve"]:
            row.note = "no evaluation yet"
        row.values |= {k: v for k, v in vals.items() if v is not None}
        row.read.append(spec[source])
    if "wall_s" in row.values and "cores" in row.values:
        row.values["core_hours"] = row.values["wall_s"] * row.values["cores"] / 3600
        row.values["wall_h"] = row.values["wall_s"] / 3600
    return row


# ---- checks and verdicts ------------------------------------------------------------------------
def check(rule: dict, rows: dict[str, Row], manifest: dict) -> tuple[str, str]:
    """(result, what we measured) of one check of the manifest; see VERDICT_RULE."""
    for key in ("row", "than"):
        if key in rule and rule[key] not in rows:
            raise ReportError(f"manifest check {rule.get('claim')!r} names row {rule[key]!r}, which no study has")
    a, b = rows[rule["row"]], rows.get(rule.get("than"))
    metric, kind = rule.get("metric", "success"), rule["rule"]
    va, vb = a.values.get(metric), (b.values.get(metric) if b else None)
    if not a.ran or (b is not None and not b.ran):
        return "missing", "-"
    if kind == "at_least":
        if va is None:
            return "undecided", "no evaluation"
        lo, hi = va.interval
        enough = va.episodes >= rule.get("min_episodes", manifest.get("min_episodes", 100))
        return ("pass" if lo >= rule["target"] and enough else "fail" if hi < rule["target"] else "undecided"), str(va)
    if kind == "better":
        if va is None or vb is None:
            return "undecided", "no evaluation"
        (alo, ahi), (blo, bhi) = va.interval, vb.interval
        return ("pass" if alo > bhi else "fail" if ahi < blo else "undecided"), f"{va} vs {vb}"
    if kind == "ratio_at_most":
        if va is None or vb is None or not vb:
            return "undecided", f"{_fmt(metric, va)} vs {_fmt(metric, vb)}"
        r = va / vb
        return ("pass" if r <= rule["target"] else "fail" if r >= rule["fail_at"] else "undecided"), \
            f"{_fmt(metric, va)} / {_fmt(metric, vb)} = {r:.2f}"
    if kind == "reached_within":
        spent, reached = a.values.get(metric, 0.0), a.values.get(f"{metric}_to_target")
        if reached is not None:
            return ("pass" if reached <= rule["target"] else "fail"), f"reached after {reached:.2f}"
        return ("fail" if spent > rule["target"] else "undecided"), f"not reached in {spent:.2f}"
    raise ReportError(f"manifest check {rule.get('claim')!r}: unknown rule {kind!r} "
                      "(at_least | better | ratio_at_most | reached_within)")


def verdict(results: list[str]) -> str:
    """A study's statement from its checks' results (VERDICT_RULE)."""
    n = {r: results.count(r) for r in RESULTS}
    if n["missing"] == len(results):
        return "not run"
    if n["pass"] == len(results):
        return "reproduced"
    if n["pass"] == 0:
        return "refuted" if n["fail"] else "undecided"
    return "partly"


# ---- rendering ----------------------------------------------------------------------------------
COLUMNS = {  # name -> (header, format of a value)
    "success": ("success [95 % CI] (k/n)", str),
    "start_success": ("at the start of fine-tuning", str),
    "level": ("curriculum level", lambda v: f"{v:.2f}"),
    "env_steps": ("env steps", lambda v: f"{v:,}"),
    "iterations_to_target": ("iterations to 90 %", str),
    "env_steps_to_target": ("env steps to 90 %", steps_label),
    "hand_pos_error_m": ("hand position error [mm]", lambda v: f"{v * 1000:.0f}"),
    "hand_rot_error_deg": ("hand orientation error [deg]", lambda v: f"{v:.1f}"),
    "hand_speed_m_s": ("hand speed [m/s]", lambda v: f"{v:.3f}"),
    "footstep_error_m": ("footstep error [mm]", lambda v: f"{v * 1000:.0f}"),
    "completion_s": ("completion time of successes [s]", lambda v: f"{v:.1f}"),
    "wall_h": ("wall-clock [h]", lambda v: f"{v:.2f}"),
    "cores": ("cores", str),
    "core_hours": ("core-hours", lambda v: f"{v:.2f}"),
    "core_hours_to_target": ("core-hours to 90 %", lambda v: f"{v:.2f}"),
}


def _fmt(metric: str, v) -> str:
    return "-" if v is None else COLUMNS[metric][1](v)


def _table(rows: list[Row], columns: list[str]) -> list[str]:
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ReportError(f"manifest: unknown columns {unknown}; known: {', '.join(COLUMNS)}")
    out = ["| planner | task | paper | " + " | ".join(COLUMNS[c][0] for c in columns) + " | read from |",
           "|---|---|---|" + "---:|" * len(columns) + "---|"]
    for r in rows:
        label, task, paper = r.spec.get("label", r.spec["id"]), r.spec.get("task", "-"), r.spec.get("paper", "-")
        if not r.ran:
            cmds = "; ".join(f"`{c}`" for c in dict.fromkeys(r.missing.values()))
            dashes = " | ".join(["-"] * len(columns))
            out.append(f"| {label} | {task} | {paper} | {dashes} | not run yet: {cmds} |")
            continue
        where = ", ".join(f"`{p}`" for p in r.read)
        notes = [r.note] if r.note else []
        notes += [f"{s} not run yet: `{c}`" for s, c in r.missing.items()]
        out.append(f"| {label} | {task} | {paper} | " + " | ".join(_fmt(c, r.values.get(c)) for c in columns)
                   + f" | {where}{'; ' + '; '.join(notes) if notes else ''} |")
    return out


def _cost_rows(studies: list[dict], rows: dict[str, Row], runs: Path, manifest: dict) -> list[Row]:
    """Every run folder (demos, pretrain, finetune) that any study reads, once."""
    seen, out = {}, []
    for study in studies:
        if study["rows"] == "all":
            continue
        for spec in study["rows"]:
            for source in ("demos", "pretrain", "finetune"):
                if source in spec and spec[source] not in seen and rows[spec["id"]].ran:
                    seen[spec[source]] = True
                    sub = {"id": spec[source], "label": f"{source}: `{spec[source]}`", "task": spec.get("task"),
                           source: spec[source]} | ({"method": spec["method"]} if source == "finetune" else {})
                    row = measure(sub, runs, manifest)
                    if row.ran:
                        out.append(row)
    return out


def plot_task(task: str, runs_of_task: list[Row], path: Path) -> None:
    """Success against env steps of every fine-tuning run of one task (band: each evaluation's 95 % CI)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in runs_of_task:
        curve = r.values["curve"]
        x = [c["env_steps"] / 1000 for c in curve]
        y = [c["success_mean"] for c in curve]
        ci = [_curve_rate(c).interval for c in curve]
        line, = ax.plot(x, y, marker="o", ms=4, label=f"{r.spec.get('label', r.spec['id'])} ({r.read[0]})")
        ax.fill_between(x, [c[0] for c in ci], [c[1] for c in ci], color=line.get_color(), alpha=0.15)
    ax.axhline(0.9, color="k", lw=0.6, ls=":")
    ax.set(xlabel="environment steps [thousands]", ylabel="success (evaluation episodes)", ylim=(-0.02, 1.02),
           title=f"Fine-tuning on the T1 {task} task: success vs env steps (band: 95 % CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def load_manifest(path: Path) -> dict:
    if not path.is_file():
        raise ReportError(f"manifest {path} not found: pass --manifest, or restore it (git checkout -- {path})")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"manifest {path} is not valid JSON ({e}): fix it (its fields: report.py's docstring)") from e
    absent = [k for k in ("tasks", "studies") if k not in m]
    if absent:
        raise ReportError(f"manifest {path} lacks {', '.join(absent)} (its fields: report.py's docstring)")
    ids = [s["id"] for st in m["studies"] if st["rows"] != "all" for s in st["rows"]]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ReportError(f"{path}: row ids {dup} appear more than once; each row needs its own id")
    for st in m["studies"]:
        for spec in ([] if st["rows"] == "all" else st["rows"]):
            if not any(s in spec for s in SOURCES):
                raise ReportError(f"{path}: row {spec['id']!r} reads nothing; give it one of {', '.join(SOURCES)}")
    return m


def report(runs: Path, manifest_path: Path, out: Path) -> dict:
    """Read every row, decide every study, write OUT/README.md and the plots; returns the studies' results."""
    manifest = load_manifest(manifest_path)
    studies = manifest["studies"]
    rows = {spec["id"]: measure(spec, runs, manifest) for st in studies if st["rows"] != "all" for spec in st["rows"]}
    out.mkdir(parents=True, exist_ok=True)
    results, body = {}, []
    for st in studies:
        st_rows = (_cost_rows(studies, rows, runs, manifest) if st["rows"] == "all"
                   else [rows[s["id"]] for s in st["rows"]])
        checks = [(c, *check(c, rows, manifest)) for c in st.get("checks", [])]
        v = verdict([r for _, r, _ in checks])
        results[st["id"]] = {"verdict": v, "checks": [(c["claim"], r, ours) for c, r, ours in checks],
                             "rows": {r.spec["id"]: r for r in st_rows}}
        body += [f"## {st['title']}", "", f"Paper: {st['paper']}.", ""]
        body += _table(st_rows, st["columns"]) if st_rows else ["No run of this study exists yet."]
        body += ["", "| claim | ours | result |", "|---|---|---|"]
        body += [f"| {c['claim']} | {ours} | {r} |" for c, r, ours in checks]
        counts = ", ".join(f"{n} {k}" for k in RESULTS if (n := [r for _, r, _ in checks].count(k)))
        body += ["", f"**Verdict: {v}** ({counts or 'no checks'}).", ""]
    plots = []
    for task in manifest["tasks"]:
        ft = {r.read[0]: r for r in rows.values() if r.spec.get("task") == task and "finetune" in r.spec
              and r.spec["finetune"] in r.read and r.values.get("curve")}
        if ft:
            plot_task(task, list(ft.values()), out / f"success_{task}.png")
            plots.append(f"![{task}](success_{task}.png)")
        else:
            plots.append(f"- {task}: no fine-tuning run with an evaluation yet.")
    head = ["# T1 tasks: REFINE-DP's studies on our runs (issue #16)", "",
            f"Generated by `refine-dp report t1-tasks --runs {runs}` from the runs the manifest "
            f"`{manifest_path.name}` names; do not edit by hand (edit the manifest and run it again).", "",
            "| study | verdict |", "|---|---|"]
    head += [f"| [{st['title']}](#{_anchor(st['title'])}) | {results[st['id']]['verdict']} |" for st in studies]
    tail = ["## Success against env steps", "", *plots, "", "## Rules", "", VERDICT_RULE, "", CORE_HOURS_RULE,
            f" Target success for the \"to 90 %\" columns: {manifest.get('target_success', 0.9):.0%}; a success "
            f"check needs {manifest.get('min_episodes', 100)} evaluation episodes to pass.", ""]
    (out / "README.md").write_text("\n".join(head + [""] + body + tail))
    print(f"wrote {out / 'README.md'} ({len(plots)} tasks); " +
          ", ".join(f"{k}: {r['verdict']}" for k, r in results.items()))
    return results


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return "".join(c for c in title.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="refine-dp report t1-tasks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"), help="the runs folder the manifest's paths are under")
    p.add_argument("--manifest", type=Path, default=HERE / "studies.json")
    p.add_argument("--out", type=Path, default=HERE, help="where README.md and the plots go (default: this folder)")
    a = p.parse_args(argv)
    report(a.runs, a.manifest, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
