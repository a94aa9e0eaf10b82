"""Stream Framework 1.4.0 for the baseline: its own virtualenv, a Redis broker, a Celery worker.

Everything lives under ``benchmarks/.work/`` (ignored by git) and nothing touches the project's
virtualenv:

* ``sf-venv/``: Celery 5 with its Redis transport, cassandra-driver and the PyPI sdist of
  ``stream-framework==1.4.0``, whose ``async`` parameter (a SyntaxError since Python 3.7) is
  renamed ``async_`` at install time; ``sf_bench.py`` holds the rest of the shim.
* Redis (Debian's ``redis-server``, installed with apt-get when missing and run as root) is
  started on a free loopback port, without persistence, and stopped by its pid.
* The Celery worker runs in its own session (process group) and is stopped by that group id.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tokenize
from pathlib import Path
from typing import Any

from .context import WORK, Context
from .errors import StreamFrameworkUnavailable
from .processes import stop_process, wait_ready
from .workload import Workload

SHIM_DIR = Path(__file__).resolve().parent  # where sf_bench.py is, imported by name in that venv

SF_VENV = WORK / "sf-venv"
SF_STAMP = SF_VENV / ".installed-v1"
SF_REQUIREMENTS = [
    "celery[redis]>=5.3,<5.6",  # kombu's Redis transport needs redis-py >= 4 (not the redis<3 SF's
    "six",                      # own Redis storage wants: that storage is not used here)
    "cassandra-driver>=3.29,<3.31",
    "setuptools<72",  # its setup.py imports setuptools.command.test (removed in 72)
    "wheel",
]
WORKER_CONCURRENCY = 2


def _run(cmd: list[str], log: Path, **kwargs: Any) -> None:
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, **kwargs)
    if done.returncode != 0:
        raise StreamFrameworkUnavailable(f"`{' '.join(cmd[:4])} ...` failed (exit {done.returncode}); see {log}")


def _rename_async(path: Path) -> int:
    """Rename the NAME token ``async`` to ``async_`` (a keyword since 3.7); returns how many."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    hits = [
        tok.start
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.NAME and tok.string == "async"
    ]
    for row, col in reversed(hits):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + "async_" + line[col + len("async"):]
    if hits:
        path.write_text("".join(lines), encoding="utf-8")
    return len(hits)


def _tokenizes(path: Path) -> bool:
    try:
        list(tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline))
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        return False
    return True


def ensure_venv(ctx: Context) -> Path:
    """The Stream Framework virtualenv's python (built once, ~1 minute)."""
    python = SF_VENV / "bin" / "python"
    if SF_STAMP.exists() and python.exists():
        return python
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "sf-install.log"
    ctx.log(f"Stream Framework: building its virtualenv in {SF_VENV} (log: {log})")
    shutil.rmtree(SF_VENV, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(SF_VENV)], log)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", *SF_REQUIREMENTS], log)
    src = WORK / "sf-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    _run([*pip, "download", "--no-deps", "--no-binary", ":all:", "stream-framework==1.4.0", "-d", str(src)], log)
    sdist = next(src.glob("stream_framework-1.4.0.tar.gz"))
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(src, filter="data")
        else:  # Python < 3.11.4: check the member names ourselves
            unsafe = [m.name for m in tar.getmembers() if m.name.startswith("/") or ".." in Path(m.name).parts
                      or not (m.isfile() or m.isdir())]
            if unsafe:
                raise StreamFrameworkUnavailable(f"unexpected entries in the stream-framework sdist: {unsafe[:3]}")
            tar.extractall(src)
    tree = src / "stream_framework-1.4.0"
    renamed = 0
    for path in sorted(tree.rglob("*.py")):
        if "async" in path.read_text(encoding="utf-8") and _tokenizes(path):
            renamed += _rename_async(path)
    with log.open("a") as fh:
        fh.write(f"renamed {renamed} `async` tokens to `async_`\n")
    _run([*pip, "install", "--no-build-isolation", "--no-deps", str(tree)], log)
    # the shim imports it all (memory store: no connection)
    _run([str(python), "-c", "import sf_bench"], log, cwd=SHIM_DIR,
         env={**os.environ, "SF_BENCH_STORE": "memory", "PYTHONPATH": str(SHIM_DIR)})
    SF_STAMP.write_text("stream-framework 1.4.0, async renamed to async_\n")
    return python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_server(ctx: Context) -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StreamFrameworkUnavailable("redis-server is not installed (Debian: apt-get install -y redis-server)")
    ctx.log("case 7: installing Debian's redis-server for the Celery broker")
    log = WORK / "sf-install.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "install", "-y", "-qq", "redis-server"], log, env=env)
    except StreamFrameworkUnavailable:
        _run(["apt-get", "update", "-qq"], log, env=env)
        _run(["apt-get", "install", "-y", "-qq", "redis-server"], log, env=env)
    found = shutil.which("redis-server")
    if not found:
        raise StreamFrameworkUnavailable("redis-server is still missing after apt-get install")
    return found


class _Redis:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Redis:
        binary = _redis_server(self.ctx)
        data = self.ctx.work / "redis"
        data.mkdir(exist_ok=True)
        with (self.ctx.work / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(data), "--protected-mode", "yes"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        if wait_ready(self.proc, self._pong, timeout=15, interval=0.1):
            return self
        self.__exit__()
        raise StreamFrameworkUnavailable(f"redis-server did not answer on port {self.port}")

    def _pong(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)


class _Worker:
    """``celery -A sf_bench worker`` (prefork) in its own process group."""

    def __init__(self, ctx: Context, python: Path, env: dict[str, str]) -> None:
        self.ctx = ctx
        self.python = python
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = ctx.work / "sf-worker.log"

    def __enter__(self) -> _Worker:
        # Celery refuses to run a pickle-accepting worker as root unless told to.
        env = {**self.env, "C_FORCE_ROOT": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.python), "-m", "celery", "-A", "sf_bench", "worker", "--pool", "prefork",
                 "--concurrency", str(WORKER_CONCURRENCY), "--loglevel", "INFO", "--without-gossip",
                 "--without-mingle", "--without-heartbeat"],
                cwd=SHIM_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        if wait_ready(self.proc, lambda: " ready." in self.log.read_text(errors="replace"), timeout=60, interval=0.2):
            return self
        self.__exit__()
        raise StreamFrameworkUnavailable(f"the Celery worker did not become ready; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # its own session: the group id is its pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()


async def run_sf(ctx: Context, wl: Workload, *, store: str, repeats: int, worker: bool = False) -> dict[str, Any]:
    """Run ``sf_bench.py`` on ``wl``; return its JSON (``runs``: seconds, deliveries, rate)."""
    python = await asyncio.to_thread(ensure_venv, ctx)
    label = f"{store}-{'worker' if worker else 'eager'}"
    path = wl.sf_json(ctx.work / f"sf-workload-{label}.json")
    keyspace = f"sf_{ctx.run_id}_{'w' if worker else 'e'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SF_BENCH_")},
        "SF_BENCH_STORE": store,
        "SF_BENCH_EAGER": "0" if worker else "1",
        "SF_BENCH_KEYSPACE": keyspace,
        "SF_BENCH_CASSANDRA_HOST": ctx.settings.cassandra_hosts[0],
        "SF_BENCH_CASSANDRA_PORT": str(ctx.settings.cassandra_port),
        "SF_BENCH_CHUNK_SIZE": str(wl.chunk_size),
        "SF_BENCH_MAX_LENGTH": str(ctx.settings.max_length),
        "PYTHONPATH": str(SHIM_DIR),
    }
    if store == "cassandra":
        ctx.keyspaces.append(keyspace)  # dropped by the driver; again at the end if it failed
    cmd = [str(python), "-c", "import sf_bench, sys; sys.exit(sf_bench.main())", "run", "--workload", str(path),
           "--repeats", str(repeats), "--drop"]
    with contextlib.ExitStack() as stack:
        if worker:
            redis = stack.enter_context(_Redis(ctx))
            env["SF_BENCH_BROKER"] = f"{redis.url}/0"
            env["SF_BENCH_BACKEND"] = f"{redis.url}/1"
            stack.enter_context(_Worker(ctx, python, env))
        ctx.log(f"case {'2' if store == 'memory' else '7'}: Stream Framework {label}, {repeats} runs of "
                f"{wl.deliveries():,} deliveries")
        log = ctx.work / f"sf-{label}.log"
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *cmd, cwd=SHIM_DIR, env=env, stdout=asyncio.subprocess.PIPE, stderr=err
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout=1200)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise StreamFrameworkUnavailable(f"Stream Framework {label} timed out; see {log}") from None
        if proc.returncode != 0:
            raise StreamFrameworkUnavailable(f"Stream Framework {label} failed (exit {proc.returncode}); see {log}")
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if not lines:
        raise StreamFrameworkUnavailable(f"Stream Framework {label} printed no result; see {log}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
