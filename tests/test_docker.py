"""docker/: what can be checked without a container engine (none here, docker/README.md).

The Dockerfiles parse (known instructions, FROM first), every path they COPY exists and is not left out
by .dockerignore, and the commands docker/README.md gives match the images' ENTRYPOINT/CMD: the deploy
image's arguments are launch arguments of bringup.launch.py, the training image's are refine-dp commands.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILES = ("deploy.Dockerfile", "train.Dockerfile")
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, backslash continuations joined."""
    out, pending = [], ""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        if keyword.upper() not in INSTRUCTIONS or keyword != keyword.upper():
            raise ValueError(f"{path.name}:{n}: unknown instruction {keyword!r}")
        out.append((keyword, args.strip()))
        pending = ""
    if pending:
        raise ValueError(f"{path.name}: ends inside a continued line")
    return out


def exec_form(instructions, keyword: str) -> list[str]:
    """The last ENTRYPOINT/CMD in exec (JSON) form."""
    args = [a for k, a in instructions if k == keyword][-1]
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{keyword} {args}"
    return value


def readme_commands() -> list[list[str]]:
    """The shell commands of docker/README.md's bash blocks, continuation lines joined."""
    text = (DOCKER / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        commands += [shlex.split(c) for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    return commands


def image_of(run: list[str]) -> tuple[str, list[str]]:
    """(image, arguments after it) of a `docker run` command line."""
    i = 2
    while run[i].startswith("-"):
        i += 1 if "=" in run[i] or run[i] in ("--rm",) else 2
    return run[i], run[i + 1:]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_parses_and_copies_existing_paths(name):
    instructions = parse_dockerfile(DOCKER / name)
    keywords = [k for k, _ in instructions]
    assert [k for k in keywords if k != "ARG"][0] == "FROM", "FROM must come first (only ARG may precede it)"
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    copies = [a for k, a in instructions if k in ("COPY", "ADD")]
    assert copies, "the image copies the repository's sources"
    for args in copies:
        parts = [p for p in args.split() if not p.startswith("--")]
        for src in parts[:-1]:
            assert (ROOT / src).exists(), f"{name}: COPY source {src} does not exist in the repository"
            assert src not in ignored, f"{name}: COPY source {src} is excluded by .dockerignore"
    assert exec_form(instructions, "ENTRYPOINT") and isinstance(exec_form(instructions, "CMD"), list)


def test_parser_rejects_a_broken_dockerfile(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text("FROM debian:12\nRUNN echo hi\n")
    with pytest.raises(ValueError, match="RUNN"):
        parse_dockerfile(path)


def test_readme_commands_match_the_images():
    commands = readme_commands()
    builds = {c[c.index("-t") + 1]: c[c.index("-f") + 1] for c in commands if c[:2] == ["docker", "build"]}
    assert set(builds.values()) == {f"docker/{n}" for n in DOCKERFILES}
    assert all(c[-1] == "." for c in commands if c[:2] == ["docker", "build"]), "build from the repository root"
    runs = [image_of(c) for c in commands if c[:2] == ["docker", "run"]]
    assert {image for image, _ in runs} == set(builds), "every image built is run in the README"

    deploy = parse_dockerfile(ROOT / builds["refine-dp:deploy"])
    entry = " ".join(exec_form(deploy, "ENTRYPOINT"))
    assert "ros2 launch refine_dp bringup.launch.py" in entry
    assert "`ros2 launch refine_dp bringup.launch.py`" in (DOCKER / "README.md").read_text()
    launch_args = set(re.findall(r'DeclareLaunchArgument\("(\w+)"',
                                 (ROOT / "ros2_ws/src/refine_dp/launch/bringup.launch.py").read_text()))
    for image, args in runs:
        if image == "refine-dp:deploy":
            for arg in args + exec_form(deploy, "CMD"):
                assert arg.split(":=")[0] in launch_args, f"{arg}: not a launch argument of bringup.launch.py"

    train = parse_dockerfile(ROOT / builds["refine-dp:train"])
    assert exec_form(train, "ENTRYPOINT") == [".venv/bin/refine-dp"]
    from refine_dp.cli import build_parser
    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for image, args in runs:
        if image == "refine-dp:train":
            assert args[0] in subcommands, f"{args[0]}: not a refine-dp command"
            assert "runs/" in args[args.index("--out") + 1], "results go to the mounted runs/"
    assert exec_form(train, "CMD")[0] == "--help"
