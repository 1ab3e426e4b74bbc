"""Execution backends: in-process, local processes and Dask give the same rows; an unreachable
cluster is an error before any point runs; a dying worker costs one point, not the sweep."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from simulator.cli import main
from simulator.dse.backends import DaskBackend, InlineBackend, ProcessBackend, make_backend
from simulator.dse.evaluate import evaluate
from simulator.dse.study import load_study
from simulator.dse.sweep import run_sweep
from workloads.errors import ConfigError

EXP = """\
# backends test sweep (tessera run)
name: backends_test
architecture:
  preset: scalesim_32x32
workload:
  gemm: {M: 128, K: 64, N: 96}
mapper: {fidelity: layer}
engine: analytical
sweep:
  grid:
    architecture.rows: [8, 16, 24, 32]
    mapper.dataflow: [os, ws]
"""


@pytest.fixture
def study(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXP)
    return load_study(p)


def rows_of(folder):
    out = []
    for line in (folder / "sweep.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.pop("wall_s")
        out.append(row)
    return out


def crash_on_rows_24(ctx, task):
    """A point evaluator whose worker dies on one design (module level: workers import it)."""
    if task[2].get("architecture.rows") == 24 and task[2].get("mapper.dataflow") == "ws":
        os._exit(3)
    return evaluate(ctx, task)


SEARCH = EXP.split("sweep:")[0] + """\
search:
  objectives: [min latency_s, min area_mm2]
  constraints: ["area_mm2 <= 3"]
  space:
    architecture.rows: {low: 8, high: 64, step: 8}
    mapper.dataflow: [os, ws, is]
  budget: 12
  batch: 4
"""


def test_processes_and_dask_local_give_identical_rows(study, tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("optuna")
    from simulator.dse.search import run_search

    (tmp_path / "search.yaml").write_text(SEARCH)
    search = load_study(tmp_path / "search.yaml")
    run_sweep(study, tmp_path / "inline", backend=InlineBackend())
    run_search(search, tmp_path / "search_inline", backend=InlineBackend())
    with ProcessBackend(2) as b:
        run_sweep(study, tmp_path / "procs", backend=b)
        run_search(search, tmp_path / "search_procs", backend=b)
    import logging

    import distributed

    # a local cluster reached by its address, as a remote scheduler would be (--cluster tcp://...)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        with DaskBackend(cluster.scheduler_address) as b:
            assert b.workers == 2
            run_sweep(study, tmp_path / "dask", backend=b)
            run_search(search, tmp_path / "search_dask", backend=b)
    trials = (tmp_path / "search_inline" / "search.csv").read_text()
    assert trials.count("\n") == 13
    assert (tmp_path / "search_procs" / "search.csv").read_text() == trials
    assert (tmp_path / "search_dask" / "search.csv").read_text() == trials
    expected = rows_of(tmp_path / "inline")
    assert len(expected) == 8 and all(r["status"] == "ok" for r in expected)
    assert rows_of(tmp_path / "procs") == expected
    assert rows_of(tmp_path / "dask") == expected
    csv_text = (tmp_path / "inline" / "sweep.csv").read_text()
    assert (tmp_path / "procs" / "sweep.csv").read_text() == csv_text
    assert (tmp_path / "dask" / "sweep.csv").read_text() == csv_text


def test_the_pool_is_kept_between_maps(study):
    with ProcessBackend(1) as b:
        ctx = study.context()
        tasks = [(p.index, p.id, p.values) for p in study.points()[0]]
        first = list(b.map(evaluate, ctx, tasks[:2]))
        pool = b._pool
        second = list(b.map(evaluate, ctx, tasks[2:4]))
        assert b._pool is pool and len(first) == len(second) == 2


def test_a_dying_worker_costs_only_its_point_and_resume_reruns_it(study, tmp_path):
    with ProcessBackend(2) as b:
        out = run_sweep(study, tmp_path / "out", backend=b, fn=crash_on_rows_24)
    assert out.by_status == {"ok": 7, "lost": 1}
    lost = next(r for r in out.rows if r["status"] == "lost")
    assert lost["params"] == {"architecture.rows": 24, "mapper.dataflow": "ws"}
    assert "died" in lost["error"]
    again = run_sweep(study, tmp_path / "out", backend=InlineBackend(), resume=True)
    assert again.ran == 1 and again.by_status == {"ok": 8}
    run_sweep(study, tmp_path / "ref", backend=InlineBackend())
    assert rows_of(tmp_path / "out") == rows_of(tmp_path / "ref")


def raise_on_rows_24(ctx, task):
    """A point evaluator that breaks its contract (raises) on one design."""
    if task[2].get("architecture.rows") == 24 and task[2].get("mapper.dataflow") == "ws":
        raise RuntimeError("boom")
    return evaluate(ctx, task)


def test_dask_retries_a_task_whose_worker_died_then_records_it_lost(study, tmp_path):
    pytest.importorskip("distributed")
    big = tmp_path / "big.yaml"
    big.write_text(EXP.replace("[8, 16, 24, 32]", "[8, 16, 24, 32, 40, 48, 56, 64]"))
    with DaskBackend("local", 2) as b:
        # 16 points go in chunks of 2; the chunk that fails is split and only its bad point is lost
        chunked = run_sweep(load_study(big), tmp_path / "chunked", backend=b, fn=raise_on_rows_24)
        out = run_sweep(study, tmp_path / "out", backend=b, fn=crash_on_rows_24)
    assert chunked.by_status == {"ok": 15, "lost": 1}
    assert "boom" in next(r["error"] for r in chunked.rows if r["status"] == "lost")
    crasher = {"architecture.rows": 24, "mapper.dataflow": "ws"}
    lost = [r for r in out.rows if r["status"] != "ok"]
    # the crasher is lost; a task queued on a dying worker may die with it often enough to be
    # reported lost too (Dask counts it), never as a wrong result
    assert crasher in [r["params"] for r in lost] and out.by_status.get("ok", 0) >= 4
    assert all(r["status"] == "lost" and "KilledWorker" in r["error"] and "--resume" in r["error"]
               for r in lost)
    again = run_sweep(study, tmp_path / "out", backend=InlineBackend(), resume=True)
    assert again.ran == len(lost) and again.by_status == {"ok": 8}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_cluster_is_a_clear_error_before_any_point_runs(tmp_path, capsys):
    pytest.importorskip("distributed")
    p = tmp_path / "exp.yaml"
    p.write_text(EXP)
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--cluster", address]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at {address}" in err and "--cluster local" in err
    assert not (tmp_path / "out" / "sweep.jsonl").exists()
    with pytest.raises(ConfigError, match="not a Dask scheduler address"):
        make_backend(cluster="http://example.org:8786")


class _Listener:
    """A TCP listener on a free port that answers each connection with ``behaviour(conn)``."""

    def __init__(self, behaviour):
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.behaviour = behaviour
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            try:
                self.behaviour(conn)
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def _http(conn):
    """What an HTTP server (the Dask dashboard, ``python -m http.server``) does: wait for a request."""
    conn.settimeout(10)
    if conn.recv(1024):
        conn.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def _silent(conn):
    pass  # accepts and never says anything


def _greets_then_stalls(conn):
    conn.sendall((10).to_bytes(8, "little"))  # a Dask-like frame length, then nothing


@pytest.mark.parametrize("behaviour, found", [
    (_http, "it is an HTTP server: 'HTTP/1.0 400 Bad Request'"),
    (_silent, "accepted the connection but sent no Dask greeting"),
])
def test_a_listener_that_is_not_a_dask_scheduler_is_a_clear_error_fast(tmp_path, capsys, monkeypatch,
                                                                       behaviour, found):
    pytest.importorskip("distributed")
    import simulator.dse.backends as backends

    monkeypatch.setattr(backends, "CONNECT_TIMEOUT_S", 1.0)
    p = tmp_path / "exp.yaml"
    p.write_text(EXP)
    listener = _Listener(behaviour)
    try:
        t0 = time.perf_counter()
        code = main(["run", str(p), "--out", str(tmp_path / "out"), "--cluster", f"127.0.0.1:{listener.port}"])
        took = time.perf_counter() - t0
    finally:
        listener.close()
    err = capsys.readouterr().err
    assert code == 2, err
    assert took < 10
    assert err.startswith("tessera: --cluster:") and found in err and "expected the address of a Dask scheduler" in err
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "out" / "sweep.jsonl").exists()


@pytest.mark.parametrize("address, message", [
    ("tcp://127.0.0.1:99999", "port '99999' is not a port number (1..65535)"),
    ("tcp://127.0.0.1:0", "port 0 is not a port"),
    ("127.0.0.1:http", "port 'http' is not a port number"),
    ("tcp://127.0.0.1:8786/status", "has a path or query"),
    ("http://example.org:8786", "not a Dask scheduler address"),
])
def test_bad_cluster_addresses_are_refused_before_connecting(tmp_path, capsys, address, message):
    pytest.importorskip("distributed")
    p = tmp_path / "exp.yaml"
    p.write_text(EXP)
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--cluster", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tessera: --cluster:") and message in err and "tcp://HOST:PORT" in err


def test_a_client_that_never_finishes_connecting_is_abandoned_and_the_process_exits(tmp_path):
    """Past the greeting the client hangs in the handshake: the hard limit reports it, and the
    abandoned connection thread does not keep the interpreter alive."""
    pytest.importorskip("distributed")
    import subprocess
    import sys

    listener = _Listener(_greets_then_stalls)
    script = ("from simulator.dse.backends import DaskBackend\n"
              "from workloads.errors import ConfigError\n"
              "try:\n"
              f"    DaskBackend('tcp://127.0.0.1:{listener.port}', connect_timeout_s=0.5)\n"
              "except ConfigError as exc:\n"
              "    print(exc)\n")
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        took = time.perf_counter() - t0
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stderr
    assert "greeted like a Dask server but the client did not finish connecting within 2.5 s" in proc.stdout
    assert took < 60  # the interpreter's start and distributed's import included


def test_a_scheduler_without_workers_is_a_clear_error(tmp_path):
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(n_workers=0, dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        with pytest.raises(ConfigError, match="has no workers .* start some with 'dask worker"):
            DaskBackend(cluster.scheduler_address, connect_timeout_s=0.5)


def test_dask_local_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    p = tmp_path / "exp.yaml"
    p.write_text(EXP)
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--cluster", "local", "--workers", "2"]) == 0
    assert "dask local cluster (2 workers)" in capsys.readouterr().out
    assert len(rows_of(tmp_path / "out")) == 8


def test_make_backend_choices():
    assert isinstance(make_backend(0), InlineBackend)
    b = make_backend(3)
    assert isinstance(b, ProcessBackend) and b.workers == 3
    assert make_backend(None).workers == (os.cpu_count() or 1)
