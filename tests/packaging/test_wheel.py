"""The built wheel, installed into a fresh virtualenv, runs ``textexplain demo`` away from the checkout.

The fresh venv has no access to the checkout: it sees the dev venv's installed distributions only through a
directory of links that leaves out the editable install of this project (its finder, its .pth and its
dist-info), so every first-party module it imports comes from the wheel. pip installs with --no-index: the
dependencies the wheel declares must already be there, and nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# what a source distribution of the project holds (the wheel must be buildable from these alone)
SOURCES = ["pyproject.toml", "textexplain", "infra", "container/fasttext_server", "lambda/explain_workflow"]
OURS = ("__editable__", "clarify_text_explanations", "textexplain", "fasttext_server", "explain_workflow", "infra")


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, src / name)
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)])
    (wheel,) = dist.glob("*.whl")
    return wheel


def site_packages(python: Path) -> Path:
    return Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())


def fresh_venv(tmp: Path) -> Path:
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    deps = tmp / "dependencies"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(OURS) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    # a plain path entry: the .pth files inside it (the editable finder's among them) never run
    (site_packages(venv / "bin" / "python") / "dev-dependencies.pth").write_text(f"{deps}\n", encoding="utf-8")
    return venv


def isolated_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


WHERE = """
import json, sys, fasttext_server, textexplain, explain_workflow, infra.constructs, textexplain.explainer
from textexplain.serving import SERVE_COMMAND
print(json.dumps({"files": [m.__file__ for m in (fasttext_server, textexplain, explain_workflow, infra.constructs,
                  textexplain.explainer)], "path": sys.path, "serve": list(SERVE_COMMAND)}))
"""

SERVE = """
import json, sys, tarfile, tempfile, urllib.request
from textexplain.serving import ServeProcess
model_dir = tempfile.mkdtemp()
with tarfile.open(sys.argv[1]) as tar:
    tar.extractall(model_dir, filter="data")
with ServeProcess(model_dir, workers=1) as server:
    headers = {"Content-Type": "text/csv"}
    req = urllib.request.Request(server.url + "/invocations", data=b"a short text", headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        print(json.dumps({"status": resp.status, "body": resp.read().decode()}))
"""


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = fresh_venv(tmp_path)
    python, env = venv / "bin" / "python", isolated_env(venv)
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
         "--find-links", str(wheel.parent), "clarify-text-explanations"], env=env)  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()

    where = json.loads(run([str(python), "-c", WHERE], cwd=work, env=env).stdout)
    site = site_packages(python)
    for file in where["files"]:
        assert Path(file).resolve().is_relative_to(site.resolve()), f"{file} is not the installed wheel's"
    checkout = {ROOT, ROOT / "container", ROOT / "lambda"}
    assert not checkout & {Path(p).resolve() for p in where["path"] if p}, where["path"]
    assert where["serve"] == [str(python), "-m", "fasttext_server"]

    demo = run(["textexplain", "demo"], cwd=work, env=env)  # exactly as the README shows it
    assert "explained 24 records" in demo.stdout, demo.stdout
    report = next(line.split(None, 1)[1] for line in demo.stdout.splitlines() if line.startswith("report:"))
    assert (work / report).is_file()

    # the image's server, from the installed package: `python -m fasttext_server` as ServeProcess starts it
    tarball = work / "demo-output" / "model.tar.gz"
    with tarfile.open(tarball) as tar:
        assert "model.bin" in tar.getnames()
    served = json.loads(run([str(python), "-c", SERVE, str(tarball)], cwd=work, env=env).stdout)
    assert served["status"] == 200
    assert json.loads(served["body"])["label"], served
