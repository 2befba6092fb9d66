"""Where the time of several workers goes: per-process CPU and PostgreSQL waits, sampled.

Runs a command (normally ``benchmarks/backlog_bench.py ... --workers 1,2``) and,
while it runs, samples:

- every ``--cpu-interval`` seconds (default 1): the CPU time of each ``triage``
  worker the command started (its descendants whose command line says ``poll``),
  of the PostgreSQL backends serving them (matched by the workers' TCP client
  ports in ``pg_stat_activity``), of the other PostgreSQL processes (WAL writer,
  checkpointer, other clients: ``postgres-other``), of the command's own Dovecot
  (``dovecot``: its master and ``imap`` processes) and of the whole machine
  (``/proc/stat``; the rest is ``other``: other users of the shared machine);
- every ``--wait-interval`` seconds (default 0.1): the state and wait event of
  each of those backends (``pg_stat_activity.state``, ``wait_event_type``,
  ``wait_event``) and every lock not granted (``pg_locks``), with the blocking
  pids.

Samples go to ``--out`` (JSON lines); a summary is printed at the end: per phase
(how many workers ran at once), the CPU of each kind of process in cores, and how
often the workers' backends were seen in each state / wait (``active`` without a
wait is PostgreSQL working; ``idle in transaction`` and ``idle`` wait for the
worker; ``Lock:*`` is contention; ``IO:WALSync`` / ``LWLock:WALWrite`` are
commit flushes).

    .venv/bin/python benchmarks/workers_probe.py --out probe.jsonl -- \\
        .venv/bin/python benchmarks/backlog_bench.py --count 3000 \\
        --databases postgresql --workers 1,2 --folders 2 --no-peer
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import psycopg

TICK = os.sysconf("SC_CLK_TCK")

WAITS = """
SELECT a.pid, a.state, coalesce(a.wait_event_type, ''), coalesce(a.wait_event, ''),
       a.client_port, left(coalesce(a.query, ''), 60)
FROM pg_stat_activity a WHERE a.client_port = ANY(%s)
"""
LOCKS = """
SELECT l.pid, l.locktype, coalesce(l.relation::regclass::text, ''), l.mode,
       pg_blocking_pids(l.pid)
FROM pg_locks l WHERE NOT l.granted
"""
PIDS = "SELECT pid, client_port FROM pg_stat_activity WHERE client_port = ANY(%s)"


def children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process."""
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):  # noqa: PTH208 - pids as names
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree[ppid].append(int(entry))
    return tree


def descendants(root: int) -> list[int]:
    tree = children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in tree.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy() -> float:
    """Seconds of CPU spent busy on all cores since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICK


def client_ports(pid: int) -> set[int]:
    """Local TCP ports of ``pid``'s sockets (its connections to PostgreSQL among them)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):  # noqa: PTH208 - fd numbers as names
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")  # noqa: PTH115 - a str is wanted
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def postgres_pids() -> list[int]:
    return [
        int(p)
        for p in os.listdir("/proc")  # noqa: PTH208 - pids as names
        if p.isdigit() and cmdline(int(p)).startswith("postgres")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cpu-interval", type=float, default=1.0)
    parser.add_argument("--wait-interval", type=float, default=0.1)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    proc = subprocess.Popen(command)
    conn = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", autocommit=True)
    out = Path(args.out).open("w", encoding="utf-8")  # noqa: SIM115 - closed in finally
    last_cpu: dict[int, float] = {}
    last_busy = machine_busy()
    last_tick = time.monotonic()
    worker_ports: dict[int, set[int]] = {}
    backend_of: dict[int, int] = {}  # backend pid -> worker pid
    # per phase (workers at once): kind -> CPU seconds; wall seconds; waits
    cpu: dict[int, Counter[str]] = defaultdict(Counter)
    wall: Counter[int] = Counter()
    waits: dict[int, Counter[str]] = defaultdict(Counter)
    locks: dict[int, Counter[str]] = defaultdict(Counter)
    try:
        while proc.poll() is None:
            now = time.monotonic()
            mine = descendants(proc.pid)
            workers = [
                p for p in mine if " poll " in f"{cmdline(p)} " and "py-spy" not in cmdline(p)
            ]
            workers = [p for p in workers if not any(p in descendants(w) for w in workers)]
            for w in workers:
                worker_ports[w] = client_ports(w) or worker_ports.get(w, set())
            ports = sorted(set().union(*worker_ports.values()) if worker_ports else set())
            phase = len(workers)
            if ports:
                port_worker = {p: w for w, ps in worker_ports.items() for p in ps}
                rows = conn.execute(WAITS, (ports,)).fetchall()
                for pid, state, wtype, wevent, port, query in rows:
                    backend_of[pid] = port_worker.get(port, 0)
                    if state == "active":
                        key = f"active {wtype}:{wevent}" if wtype else "active (working)"
                    else:
                        key = f"{state}"
                    waits[phase][key] += 1
                    out.write(
                        json.dumps(
                            {
                                "t": now,
                                "phase": phase,
                                "pid": pid,
                                "state": state,
                                "wait": f"{wtype}:{wevent}",
                                "query": query,
                            }
                        )
                        + "\n"
                    )
                ours = set(backend_of)
                for pid, locktype, relation, mode, blockers in conn.execute(LOCKS).fetchall():
                    if pid in ours:
                        blocked_by = "worker" if set(blockers) & ours else "other"
                        locks[phase][f"{locktype} {relation} {mode} by {blocked_by}"] += 1
                        out.write(
                            json.dumps(
                                {
                                    "t": now,
                                    "phase": phase,
                                    "lock": locktype,
                                    "relation": relation,
                                    "mode": mode,
                                    "blockers": blockers,
                                }
                            )
                            + "\n"
                        )
            if now - last_tick >= args.cpu_interval:
                dt = now - last_tick
                busy = machine_busy()
                kinds: Counter[str] = Counter()
                dovecot = [
                    p for p in mine if "dovecot" in cmdline(p) or cmdline(p).startswith("imap")
                ]
                pg = postgres_pids()
                groups = [("worker", workers), ("dovecot", dovecot)]
                groups.append(("pg-backend", [p for p in pg if p in backend_of]))
                groups.append(("postgres-other", [p for p in pg if p not in backend_of]))
                seen = 0.0
                for kind, pids in groups:
                    for pid in pids:
                        now_cpu = cpu_seconds(pid)
                        if now_cpu is None:
                            continue
                        spent = now_cpu - last_cpu.get(
                            pid, now_cpu if kind == "postgres-other" else 0.0
                        )
                        last_cpu[pid] = now_cpu
                        kinds[kind] += spent
                        seen += spent
                kinds["machine"] = busy - last_busy
                kinds["other"] = max(0.0, kinds["machine"] - seen)
                for kind, spent in kinds.items():
                    cpu[phase][kind] += spent
                wall[phase] += dt
                out.write(
                    json.dumps(
                        {
                            "t": now,
                            "phase": phase,
                            "dt": dt,
                            "load": os.getloadavg()[0],
                            "cpu": {k: round(v / dt, 3) for k, v in kinds.items()},
                        }
                    )
                    + "\n"
                )
                out.flush()
                last_busy, last_tick = busy, now
                for w in list(worker_ports):
                    if w not in workers:
                        worker_ports.pop(w)
            time.sleep(args.wait_interval)
    finally:
        if proc.poll() is None:
            proc.wait()
        out.close()
        conn.close()
    print("\nPROBE SUMMARY (CPU in cores = CPU seconds / wall seconds; 2 cores in all)")
    for phase in sorted(wall):
        if phase == 0:
            continue
        seconds = wall[phase]
        shares = ", ".join(f"{k} {v / seconds:.2f}" for k, v in sorted(cpu[phase].items()))
        print(f"{phase} worker(s), {seconds:.0f} s sampled: {shares}")
        total = sum(waits[phase].values()) or 1
        states = ", ".join(f"{k} {100 * n / total:.1f}%" for k, n in waits[phase].most_common())
        print(f"  backends seen ({total} samples): {states}")
        if locks[phase]:
            print(
                "  locks not granted: "
                + ", ".join(f"{k} x{n}" for k, n in locks[phase].most_common())
            )
        else:
            print("  locks not granted: none seen")
    return proc.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
