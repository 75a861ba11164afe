"""Benchmark: the agent-side CPU of a session tool call, ``iteratr tool`` (a process per call) against ``iteratr mcp``
(one server per iteration, a message per call).

Usage::

    python bench/bench_mcp.py [--tasks 50] [--cli-runs 15] [--mcp-runs 200] [--starts 5]

In a temporary git repository it makes a session of ``--tasks`` tasks, then measures, for each call of a typical
iteration (``ITERATION``: task_next, task_status in_progress, task_list, note_add, task_status back, and
iteration_summary):

* CLI: ``iteratr tool SUBCOMMAND FLAGS``, ``--cli-runs`` times, each a fresh process; its CPU (user + system) is
  the child's, from ``getrusage``;
* MCP: the same call over one running ``iteratr mcp``, ``--mcp-runs`` times; its CPU is the server process's
  (``/proc/PID/stat``, all its threads), read before and after the runs and divided by their number.

It also measures the server's start-up (``--starts`` times): the CPU it has used once it has answered
``initialize`` and ``tools/list``, which the agent pays once per iteration. Then per iteration: CLI is the sum of the
six calls; MCP is a start-up plus the six calls. The client here is the MCP SDK's Python client; its own CPU per call
(in this process) is printed too, as a bound on what the agent's side of the connection costs.

Target (issue 16): an MCP call costs at most 1/10 of a CLI call's CPU. Exit status 1 if the median call misses it.
Measure with a regular install, not an editable one (bench/README.md says how); iteratr runs as the console
script next to this interpreter if there is one, else as this checkout's ``iteratr.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from iteratr.mcp import tools  # noqa: E402  (the checkout's, as the measured iteratr)

SESSION = "bench"
TICKS = os.sysconf("SC_CLK_TCK")
ITERATION: list[tuple[str, dict[str, Any]]] = [
    ("task_next", {}),
    ("task_status", {"id": "TAS-1", "status": "in_progress"}),
    ("task_list", {}),
    ("note_add", {"type": "learning", "content": "Learned: run the tests with -x"}),
    ("task_status", {"id": "TAS-1", "status": "remaining"}),
    ("iteration_summary", {"summary": "Worked on TAS-1"}),
]


def iteratr_command() -> list[str]:
    script = Path(sys.executable).parent / "iteratr"
    return [str(script)] if script.exists() else [sys.executable, str(REPO_ROOT / "iteratr.py")]


def cli_args(name: str, arguments: dict[str, Any]) -> list[str]:
    args = ["tool", tools.subcommand(name)]
    for flag, value in tools.options(arguments).items():
        args += [flag, json.dumps(value) if flag == "--tasks" else str(value)]
    return args


def make_session(root: Path, n_tasks: int, env: dict[str, str]) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    batch = [{"content": f"Implement part {i} of the spec and its tests", "priority": i % 5} for i in range(n_tasks)]
    for name, arguments in [("task_batch_add", {"tasks": batch}), *ITERATION]:
        subprocess.run(
            [*iteratr_command(), *cli_args(name, arguments)], cwd=root, env=env, check=True, capture_output=True
        )


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_call(root: Path, env: dict[str, str], name: str, arguments: dict[str, Any]) -> tuple[float, float]:
    """(CPU, wall) of one ``iteratr tool`` process."""
    cpu, wall = children_cpu(), time.perf_counter()
    subprocess.run([*iteratr_command(), *cli_args(name, arguments)], cwd=root, env=env, check=True, capture_output=True)
    return children_cpu() - cpu, time.perf_counter() - wall


def process_cpu(pid: int) -> float:
    """CPU seconds a live process has used, all its threads, dead ones included (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def mcp_children() -> list[int]:
    """The ``iteratr mcp`` children of this process (a relay or a server the client started), not the listener."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and b"mcp" in argv and b"--listen" not in argv:
            found.append(int(entry.name))
    if len(found) != 1:
        raise RuntimeError(f"expected one iteratr mcp child, found {found}")
    return found


def cpu(pids: list[int]) -> float:
    return sum(process_cpu(pid) for pid in pids)


async def measure_mcp(root: Path, env: dict[str, str], runs: int, starts: int, listener: int | None) -> dict[str, Any]:
    """Start-ups and calls through ``iteratr mcp``; with ``listener`` (its pid), the relay and the listener both
    count: the relay's process, and what the listener spends on the connection."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    command = iteratr_command()
    params = StdioServerParameters(command=command[0], args=[*command[1:], "mcp"], env=env, cwd=str(root))
    shared = [listener] if listener is not None else []
    startup: list[float] = []
    for _ in range(starts + 1):  # the first start compiles byte-code into the cache (and loads the listener)
        before = cpu(shared)
        async with Client(params) as client:
            await client.list_tools()
            startup.append(cpu([*mcp_children(), *shared]) - before)
    first, startup = startup[0], startup[1:]  # with a listener, the first includes its start-up
    per_call: dict[str, float] = {}
    client_cpu: list[float] = []
    walls: dict[str, float] = {}
    async with Client(params) as client:
        await client.list_tools()
        pids = [*mcp_children(), *shared]
        for name, arguments in ITERATION:
            await client.call_tool(name, arguments)  # warm: the first call of a kind imports what it needs
        for index, (name, arguments) in enumerate(ITERATION):
            key = f"{index}:{name}"
            before, mine, wall = cpu(pids), time.process_time(), time.perf_counter()
            for _ in range(runs):
                result = await client.call_tool(name, arguments)
                assert not result.is_error, result
            per_call[key] = (cpu(pids) - before) / runs
            client_cpu.append((time.process_time() - mine) / runs)
            walls[key] = (time.perf_counter() - wall) / runs
    return {"first": first, "startup": startup, "per_call": per_call, "client": client_cpu, "wall": walls}


def start_listener(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``iteratr mcp --listen``, as the build starts it with the agent; stopped by closing its stdin."""
    path = str(root / "listener" / "socket")
    Path(path).parent.mkdir()
    proc = subprocess.Popen([*iteratr_command(), "mcp", "--listen", path], cwd=root, env=env, stdin=subprocess.PIPE)
    return proc, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--cli-runs", type=int, default=15)
    parser.add_argument("--mcp-runs", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args(argv)
    import anyio

    with tempfile.TemporaryDirectory(prefix="iteratr-bench-mcp-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "ITERATR_SESSION": SESSION, "PYTHONPYCACHEPREFIX": str(root / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        make_session(root, args.tasks, env)
        cli: dict[str, list[tuple[float, float]]] = {f"{i}:{n}": [] for i, (n, _) in enumerate(ITERATION)}
        for _ in range(args.cli_runs):  # round-robin, so that load spreads over every kind of call
            for index, (name, arguments) in enumerate(ITERATION):
                cli[f"{index}:{name}"].append(cli_call(root, env, name, arguments))
        direct = anyio.run(measure_mcp, root, env, args.mcp_runs, args.starts, None)
        listener, path = start_listener(root, env)
        try:
            relayed = anyio.run(
                measure_mcp, root, {**env, "ITERATR_MCP_SOCKET": path}, args.mcp_runs, args.starts, listener.pid
            )
            listener_startup = relayed["first"] - statistics.median(relayed["startup"])
        finally:
            assert listener.stdin is not None
            listener.stdin.close()
            listener.wait(30)

    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]}, iteratr {' '.join(iteratr_command())}, load average {load:.2f}")
    print(f"session: {args.tasks} tasks, in git; CLI {args.cli_runs} runs per call, MCP {args.mcp_runs} per call")
    print("MCP as a build runs it: a relay per iteration to the run's listener; MCP direct: a server per iteration")
    print()
    print("| call | CLI | MCP (relay + listener) | MCP direct | relayed / CLI |")
    print("|---|---|---|---|---|")
    ratios = []
    totals = {"cli": 0.0, "relayed": 0.0, "direct": 0.0}
    for key, samples in cli.items():
        by_cli = statistics.median(s[0] for s in samples)
        by_relay, by_direct = relayed["per_call"][key], direct["per_call"][key]
        ratios.append(by_relay / by_cli)
        totals["cli"] += by_cli
        totals["relayed"] += by_relay
        totals["direct"] += by_direct
        name = key.split(":", 1)[1]
        print(
            f"| `{name}` | {by_cli * 1000:.1f} ms | {by_relay * 1000:.2f} ms | {by_direct * 1000:.2f} ms "
            f"| 1/{by_cli / by_relay:.0f} |"
        )
    relay_start = statistics.median(relayed["startup"])
    direct_start = statistics.median(direct["startup"])
    n = len(ITERATION)
    print()
    print(f"start-up per iteration: relay {relay_start * 1000:.0f} ms CPU; direct server {direct_start * 1000:.0f} ms")
    print(f"start-up per run: the listener, {listener_startup * 1000:.0f} ms CPU")
    print(f"the MCP SDK client (this process) per call: {statistics.median(relayed['client']) * 1000:.2f} ms CPU")
    print(
        f"per iteration of {n} calls: CLI {totals['cli'] * 1000:.0f} ms CPU; "
        f"MCP relayed {(relay_start + totals['relayed']) * 1000:.0f} ms; "
        f"MCP direct {(direct_start + totals['direct']) * 1000:.0f} ms"
    )
    median_ratio = statistics.median(ratios)
    verdict = "met" if median_ratio <= 0.1 else "MISSED"
    print(f"target: an MCP call <= 1/10 of a CLI call's CPU: median 1/{1 / median_ratio:.0f}, {verdict}")
    return 0 if median_ratio <= 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
