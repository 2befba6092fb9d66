"""The CLI's start-up cost per command on an empty database (issues 13.8, 18.4).

Each command runs in a fresh process under GNU time (``/usr/bin/time``): wall
seconds, CPU seconds (user + system) and peak RSS (MB). With ``--before DIR`` the
``triage`` package of another checkout (``git worktree add DIR COMMIT``) runs too,
alternating with this one, each on its own empty SQLite database made by ``triage
init`` from config.example.toml; each command runs ``--repeat`` times per system
and the run with the least CPU is kept (the machine is shared). Each checkout's
packages are byte-compiled first, as an installed package is (with
``PYTHONDONTWRITEBYTECODE`` set every run would otherwise compile triage's own
modules from source, about 0.2 s). Prints ``uptime``
before and after: report the figures with the load.

    python benchmarks/startup_bench.py [--before DIR] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["queue"], ["queue", "--json"], ["status"], ["outbox"], ["show", "1"])


def run_cpu(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float, float]:
    """Run ``argv`` in ``cwd``; return (wall s, CPU s (user + system), peak RSS MB)."""
    started = time.monotonic()
    with tempfile.NamedTemporaryFile() as out:
        subprocess.run(
            ["/usr/bin/time", "-q", "-f", "%M %U %S", "-o", out.name, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            check=False,
        )
        wall = time.monotonic() - started
        kib, user, system = Path(out.name).read_text().split()[-3:]
    return wall, float(user) + float(system), int(kib) / 1024


def main() -> None:
    """Measure and print one table row per command and system."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="", help="another checkout to run as 'before'")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    roots = {"before": args.before, "after": str(ROOT)} if args.before else {"after": str(ROOT)}
    print(subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        systems: dict[str, tuple[list[str], dict[str, str]]] = {}
        for name, root in roots.items():
            config = Path(tmp) / f"{name}.toml"
            shutil.copy(ROOT / "config.example.toml", config)
            env = {**os.environ, "PYTHONPATH": root}
            env.pop("TRIAGE_CONFIG", None)
            packages = [str(Path(root) / p) for p in ("triage", "rules", "classifiers")]
            subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)
            base = [sys.executable, "-P", "-m", "triage", "--config", str(config)]
            subprocess.run([*base, "init"], cwd=tmp, env=env, check=True, capture_output=True)
            systems[name] = (base, env)
        best: dict[tuple[str, str], tuple[float, float, float]] = {}
        for _ in range(args.repeat):
            for command in COMMANDS:
                for name, (base, env) in systems.items():
                    got = run_cpu([*base, *command], env, tmp)
                    key = (" ".join(command), name)
                    if key not in best or got[1] < best[key][1]:
                        best[key] = got
        for command in COMMANDS:
            cells = [
                "{:.2f} s / {:.2f} s / {:.0f} MB".format(*best[" ".join(command), name])
                for name in systems
            ]
            print(f"| `{' '.join(command)}` | " + " | ".join(cells) + " |")
    print(subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())


if __name__ == "__main__":
    main()
