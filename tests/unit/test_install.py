"""Issue 17 item 6: the README's run command installs payhook's runtime only (the test command
the development tools), and the runtime install is enough for payhook and the sample shop; the
sample subscriber's extra package is installed by its own quickstart line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from tests.e2e.test_quickstart import quickstart_terminals

ROOT = Path(__file__).resolve().parents[2]
RUN = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e . && "
    ".venv/bin/payhook serve --config samples/payhook.toml"
)
TEST = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/python -m pytest"


def _name(requirement: Requirement) -> str:
    return requirement.name.lower().replace("_", "-")


def _closure(roots: list[Requirement], extras: tuple[str, ...] = ()) -> set[str]:
    """The distributions ``roots`` pull in, transitively (as installed here)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = _name(req)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            sub = Requirement(line)
            wanted = set(req.extras) | set(extras if name == "payhook" else ())
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": extra}) for extra in (wanted or {""})
            ):
                todo.append(sub)
    return seen


def test_readme_commands() -> None:
    """The first line serves on the runtime install, the second tests on the dev one, and
    CI runs the second verbatim."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert block[:2] == [RUN, TEST]
    assert (ROOT / ".ci" / "run").read_text().rstrip("\n").splitlines()[-1] == TEST
    subscriber = quickstart_terminals(readme)[1]
    assert subscriber == [
        ".venv/bin/pip install -q standardwebhooks && .venv/bin/python samples/subscriber/app.py"
    ]


def test_runtime_install_runs_payhook_and_the_shop(tmp_path: Path) -> None:
    """With every package that only the dev extra brings made unimportable, all of payhook's
    modules and the sample shop import; the sample subscriber needs standardwebhooks."""
    runtime = _closure([Requirement("payhook")])
    dev = _closure([Requirement("payhook[dev]")])
    dev_only = dev - runtime
    assert {"pytest", "standardwebhooks", "mypy"} <= dev_only
    assert {"uvicorn", "starlette"} <= runtime
    blocked = sorted(
        {
            top
            for top, dists in metadata.packages_distributions().items()
            if dists and all(d.lower().replace("_", "-") in dev_only for d in dists)
        }
    )
    script = f"""
import importlib, pkgutil, runpy, sys
BLOCKED = set({json.dumps(blocked)})
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (dev only)", name=name)
        return None
sys.meta_path.insert(0, Block())
import payhook
for info in pkgutil.walk_packages(payhook.__path__, "payhook."):
    if ".migrations" not in info.name and info.name != "payhook.__main__":
        importlib.import_module(info.name)
runpy.run_path({str(ROOT / "samples" / "shop" / "app.py")!r}, run_name="shop")
try:
    runpy.run_path({str(ROOT / "samples" / "subscriber" / "app.py")!r}, run_name="subscriber")
except ModuleNotFoundError as exc:
    print("subscriber:", exc.name)
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    env.update(
        PAYHOOK_CONFIG=str(ROOT / "samples" / "shop" / "payhook.toml"),
        PAYHOOK_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}",
        SHOP_DB=str(tmp_path / "shop.db"),
        SUBSCRIBER_DB=str(tmp_path / "subscriber.db"),
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["subscriber: standardwebhooks", "ok"], done.stdout
