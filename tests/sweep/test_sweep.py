"""Sweeps on a real journal storage: spaces, budgets, local workers, a killed worker, tables, dashboard."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from kws_hpc.cli import main
from kws_hpc.errors import KwsError
from kws_hpc import launch as L
from kws_hpc import sweep as S

from conftest import event_scalars

ROOT = Path(__file__).resolve().parents[2]
optuna.logging.get_logger("optuna")  # bind optuna's log handler now, not to one test's captured stderr
TINY_SPACE = """
[params]
hidden = [8, 12, 16]
lr = { type = "float", low = 3e-3, high = 3e-2, log = true }
dropout = { type = "float", low = 0.0, high = 0.2 }
head = ["last", "mean"]

[fixed]
layers = 1
batch_size = 32
epochs = {epochs}

[sampler]
n_startup_trials = 3

[pruner]
type = "{pruner}"
"""


def space_file(tmp_path: Path, epochs: int = 1, pruner: str = "median", name: str = "space.toml") -> str:
    path = tmp_path / name
    path.write_text(TINY_SPACE.replace("{epochs}", str(epochs)).replace("{pruner}", pruner))
    return str(path)


def make_spec(store, tmp_path, trials=2, epochs=1, pruner="none", model="gru", **kw) -> S.SweepSpec:
    space = S.load_space(space_file(tmp_path, epochs, pruner))
    return S.SweepSpec(store=str(store), model=model, space=space, out=str(tmp_path / "runs"), trials=trials,
                       device="cpu", **kw)


def states(url: str, name: str) -> dict:
    storage = L.open_storage(url)
    return S.counts(storage.get_all_trials(S.study_id(storage, name), deepcopy=False))


# --- spaces and storage ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["default", "tiny"])
def test_shipped_spaces_load_and_map_onto_configs(name):
    space = S.load_space(name, epochs=3)
    assert space["fixed"]["epochs"] == 3
    spec = S.SweepSpec(store="x", model="lstm", space=space, out="runs")
    params = {k: (p["choices"][0] if p["type"] == "categorical" else p["low"]) for k, p in space["params"].items()}
    cfg = S.run_config(spec, params, seed=2)
    assert cfg.model.cell == "lstm" and cfg.train.seed == 2 and cfg.train.epochs == 3
    for k, v in params.items():
        assert getattr(cfg.model, k, getattr(cfg.train, k, None)) == v


def test_the_default_space_lists_what_it_searches_and_trains_as_train_does_otherwise():
    import tomllib

    from kws_hpc.config import ModelConfig, TrainConfig

    raw = tomllib.loads(S.find_space("default").read_text())
    assert set(raw) == {"params", "sampler", "pruner"}  # no [fixed] table: nothing is pinned away from train
    space = S.load_space("default")
    spec = S.SweepSpec(store="x", model="gru", space=space, out="runs")
    params = {k: (p["choices"][-1] if p["type"] == "categorical" else p["high"]) for k, p in space["params"].items()}
    cfg = S.run_config(spec, params)
    searched = set(params)
    for f in TrainConfig.__dataclass_fields__:
        if f not in searched | {"device"}:
            assert getattr(cfg.train, f) == getattr(TrainConfig(), f), f
    for f in ModelConfig.__dataclass_fields__:
        if f not in searched:
            assert getattr(cfg.model, f) == getattr(ModelConfig(), f), f
    assert (cfg.train.epochs, cfg.train.schedule, cfg.train.patience) == \
        (TrainConfig().epochs, TrainConfig().schedule, TrainConfig().patience)
    assert S.run_config(S.SweepSpec(store="x", model="gru", space=S.load_space("default", epochs=3), out="runs"),
                        params).train.epochs == 3  # sweep run --epochs still sets it


def test_the_bench_space_gives_every_trial_the_default_recipe_but_its_weight_decay():
    space = S.load_space("bench", epochs=3)
    spec = S.SweepSpec(store="x", model="gru", space=space, out="runs")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cfgs = [S.run_config(spec, S.suggest(study.ask(), space)) for _ in range(5)]
    assert space["pruner"] == {"type": "none"} and len({c.signature("x") for c in cfgs}) == 5  # 5 runs
    default = S.run_config(spec, {}, epochs=3)
    for c in cfgs:
        assert c.model == default.model and replace(c.train, weight_decay=1e-4) == default.train


def test_bad_space_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[params]\nhiden = [8, 16]\n")
    with pytest.raises(KwsError, match="hiden not a model or training option"):
        S.load_space(str(bad))
    bad.write_text("[params]\nlr = { type = \"float\", low = 1.0, high = 0.1 }\n")
    with pytest.raises(KwsError, match="'lr' needs"):
        S.load_space(str(bad))
    with pytest.raises(KwsError, match="no search space 'nope'"):
        S.load_space("nope")


def test_storage_urls(tmp_path):
    assert L.storage_url(None, tmp_path) == str(tmp_path.resolve() / "studies.journal")
    assert L.storage_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path.resolve() / 'a.db'}"
    assert L.storage_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert L.storage_url(str(tmp_path / "s.log")).endswith("s.log")
    with pytest.raises(KwsError, match="is a folder"):
        L.open_storage(str(tmp_path))


def test_existing_study_with_other_space_is_refused(tiny_store, tmp_path):
    url = L.storage_url(None, tmp_path)
    storage = L.open_storage(url)
    S.create_sweep(storage, "s", make_spec(tiny_store, tmp_path, epochs=1))
    S.create_sweep(storage, "s", make_spec(tiny_store, tmp_path, epochs=1, trials=5))  # more trials: fine
    assert S.read_spec(storage, "s").trials == 5
    with pytest.raises(KwsError, match="exists with a different space"):
        S.create_sweep(storage, "s", make_spec(tiny_store, tmp_path, epochs=2))


def test_trial_past_the_budget_is_refused(tiny_store, tmp_path):
    import optuna

    url = L.storage_url(None, tmp_path)
    storage = L.open_storage(url)
    spec = make_spec(tiny_store, tmp_path, trials=2)
    S.create_sweep(storage, "s", spec)
    study = optuna.load_study(study_name="s", storage=storage)
    study.ask(), study.ask()  # two running trials (other workers) take the whole budget
    with pytest.raises(S.OverBudget):
        S.objective(study.ask(), spec)


def test_worker_seeds_differ():
    spec = S.SweepSpec(store="x", model="gru", space={}, out="runs", seed=7)
    seeds = {S.worker_seed(spec, i, n) for i in range(4) for n in (0, 5)}
    assert len(seeds) == 8


# --- acceptance: 8 trials, 2 local workers; tables -----------------------------------------------

def test_sweep_8_trials_2_local_workers_then_ls_show_best(tiny_store, tmp_path, capsys):
    out = tmp_path / "runs"
    t0 = time.perf_counter()
    code = main(["sweep", "run", "--store", str(tiny_store), "--model", "gru", "--trials", "8", "--workers", "2",
                 "--space", space_file(tmp_path, epochs=2), "--out", str(out), "--device", "cpu"])
    seconds = time.perf_counter() - t0
    assert code == 0
    text = capsys.readouterr().out
    name = S.study_name("gru", tiny_store)
    storage = L.open_storage(L.default_storage(out))
    trials = storage.get_all_trials(S.study_id(storage, name))
    c = S.counts(trials)
    assert c["COMPLETE"] + c["PRUNED"] == 8 and c["RUNNING"] == c["WAITING"] == 0, c
    assert c["COMPLETE"] >= 3  # the median pruner never prunes its 3 startup trials
    jobs = {p.name.split("_")[0] for p in (out / "jobs").glob("*_log.out")}
    assert len(jobs) == 2, "two local worker jobs"
    for t in trials:
        if t.state.name in ("COMPLETE", "PRUNED"):
            run = Path(t.user_attrs["run"])
            assert (run / "config.json").is_file() and (run / "last.pt").is_file()
            assert (run / "result.json").is_file() == (t.state.name == "COMPLETE")
            assert t.intermediate_values, "val accuracy reported per epoch"
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert json.loads((Path(best.user_attrs["run"]) / "result.json").read_text())["best_val_acc"] == \
        pytest.approx(best.value)
    assert f"{name}  gru" in text and "8/8 finished" in text
    print(f"\n8 trials, 2 local workers: {seconds:.1f} s ({8 / seconds * 3600:.0f} trials/h)", file=sys.stderr)

    study = optuna.load_study(study_name=name, storage=storage)
    assert study.metric_names == ["val_accuracy"]  # what the dashboard calls the objective
    for t in trials:  # `tensorboard --logdir OUT` shows every trial's curves, grouped under the study
        if t.state.name in ("COMPLETE", "PRUNED"):
            scalars = event_scalars(out / "tensorboard" / name / Path(t.user_attrs["run"]).name)
            assert [(step, pytest.approx(v)) for step, v in scalars["accuracy/val"]] == \
                sorted(t.intermediate_values.items())
    threads = max(1, len(os.sched_getaffinity(0)) // 2)  # two local workers share the cores
    assert {json.loads((Path(t.user_attrs["run"]) / "result.json").read_text())["threads"]
            for t in trials if t.state.name == "COMPLETE"} == {threads}

    assert main(["sweep", "ls", "--out", str(out), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["study"], d["model"], d["target"], d["best_trial"]) for d in listed] == [(name, "gru", 8, best.number)]
    assert listed[0]["trials"]["COMPLETE"] == c["COMPLETE"] and listed[0]["best_value"] == pytest.approx(best.value)

    assert main(["sweep", "ls", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["STUDY", "MODEL", "TARGET", "COMPLETE"]
    row = lines[1].split()
    assert row[:5] == [name, "gru", "8", str(c["COMPLETE"]), str(c["PRUNED"])] and row[8] == f"{best.value:.4f}"

    assert main(["sweep", "show", name, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["#", "STATE", "VALUE", "SECONDS"] and "RUN" in lines[1]
    assert len(lines) == 2 + len(trials)
    assert str(best.user_attrs["run"]) in lines[2 + best.number]

    assert main(["sweep", "show", name, "--out", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [t["number"] for t in shown] == [t.number for t in trials]

    assert main(["sweep", "best", name, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"best trial {best.number}, val accuracy {best.value:.4f}" in text and best.user_attrs["run"] in text
    assert not list(out.glob("best-*.json"))  # without --retrain nothing is written, as its help says

    assert main(["sweep", "best", name, "--out", str(out), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [(f["study"], f["best_trial"], f["run"]) for f in found] == [(name, best.number, best.user_attrs["run"])]
    assert found[0]["params"] == best.params and found[0]["value"] == pytest.approx(best.value)


# --- faults: kill -9 of a worker mid-trial --------------------------------------------------------

def test_killed_worker_trial_fails_and_is_retried(tiny_store, tmp_path):
    url = L.storage_url(None, tmp_path)
    spec = make_spec(tiny_store, tmp_path, trials=1, epochs=15, heartbeat=1, grace=3, workers=2)
    S.create_sweep(L.open_storage(url), "kill", spec)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "kws_hpc", "sweep", "worker", "kill", "--storage", url],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    storage = L.open_storage(url)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # wait until the trial is RUNNING and has finished two epochs
            trials = storage.get_all_trials(S.study_id(storage, "kill"))
            if trials and trials[0].state.name == "RUNNING" and len(trials[0].intermediate_values) >= 2:
                break
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.1)
        else:
            pytest.fail("the worker never got two epochs into its trial")
        time.sleep(0.3)  # into the next epoch's compute, away from the journal's short write lock
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert states(url, "kill")["RUNNING"] == 1  # nobody has noticed yet

    lines = []
    S.run_worker(url, "kill", index=1, log=lines.append)
    trials = storage.get_all_trials(S.study_id(storage, "kill"))
    killed, retry = trials[0], trials[-1]
    assert killed.state.name == "FAIL" and retry.state.name == "COMPLETE", [t.state for t in trials]
    assert retry.system_attrs["failed_trial"] == killed.number and retry.params == killed.params
    assert retry.user_attrs["run"] == killed.user_attrs["run"]
    assert any("resuming run" in line for line in lines), "the retry resumes the killed trial's last.pt"
    history = json.loads((Path(retry.user_attrs["run"]) / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1)) and len(history) > 2
    c = states(url, "kill")
    assert c["COMPLETE"] + c["PRUNED"] == 1 and c["FAIL"] == 1 and c["RUNNING"] == 0


# --- best --retrain and matched budgets -----------------------------------------------------------

def test_best_retrain_per_family_with_matched_budget(tiny_store, tmp_path, capsys):
    out = tmp_path / "runs"
    base = ["sweep", "run", "--store", str(tiny_store), "--trials", "2", "--workers", "1", "--executor", "debug",
            "--space", space_file(tmp_path, epochs=1, pruner="none"), "--out", str(out), "--device", "cpu"]
    assert main(base + ["--model", "gru", "lstm"]) == 0
    capsys.readouterr()
    assert main(["sweep", "best", "--out", str(out), "--retrain", "--seeds", "2", "--epochs", "1", "--json"]) == 0
    captured = capsys.readouterr()
    found = json.loads(captured.out)  # stdout is the JSON alone; the retrain's log went to stderr
    assert [f["retrain"]["model"] for f in found] == ["gru", "lstm"] and "test accuracy" in captured.err
    text = captured.err
    for model in ("gru", "lstm"):
        name = S.study_name(model, tiny_store)
        record = json.loads((out / f"best-{name}.json").read_text())
        assert record["model"] == model and record["budget"] == {"finished_trials": 2, "trial_epochs": 1}
        assert [r["seed"] for r in record["retrain"]] == [0, 1]
        for r in record["retrain"]:
            assert Path(r["run"], "result.json").is_file() and r["run"] in text
        assert f"{model} test accuracy" in text

    assert main(base + ["--model", "lstm", "--trials", "3"]) == 0  # the LSTM study now had more trials
    capsys.readouterr()
    assert main(["sweep", "best", "--out", str(out), "--retrain", "--seeds", "1", "--epochs", "1"]) == 2
    assert "budgets differ" in capsys.readouterr().err


def test_inspecting_a_missing_storage_or_study_is_a_clear_error(tmp_path, capsys):
    assert main(["sweep", "ls", "--out", str(tmp_path)]) == 2
    assert "no storage at" in capsys.readouterr().err
    L.open_storage(L.default_storage(tmp_path))
    assert main(["sweep", "ls", "--out", str(tmp_path)]) == 0
    assert "no studies" in capsys.readouterr().out
    assert main(["sweep", "show", "nope", "--out", str(tmp_path)]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


# --- dashboard ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_on_localhost(tiny_store, tmp_path):
    url = L.storage_url(None, tmp_path)
    S.create_sweep(L.open_storage(url), "dash", make_spec(tiny_store, tmp_path))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kws_hpc", "sweep", "dashboard", "dash", "--storage", url,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT)
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/dashboard/studies/0" in first, first
        deadline, body = time.time() + 60, None
        while time.time() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    body = json.loads(r.read())
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.3)
        assert body is not None, "dashboard did not answer"
        studies = body.get("studies", body.get("study_summaries"))
        assert [s["study_name"] for s in studies] == ["dash"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/studies/0", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_trial_declared_stale_while_alive_does_not_stop_its_worker(tiny_store, tmp_path):
    """Another worker fails a slow trial (its heartbeat looked stale); the owner carries on, the retry
    finishes the run, and the study still counts exactly its target."""
    import threading

    url = L.storage_url(None, tmp_path)
    spec = make_spec(tiny_store, tmp_path, trials=1, epochs=8, heartbeat=1, grace=60, workers=2)
    S.create_sweep(L.open_storage(url), "stale", spec)
    other = L.open_storage(url, heartbeat=1, grace=60)

    def declare_stale() -> None:  # what fail_stale_trials does in another worker
        deadline = time.time() + 60
        while time.time() < deadline:
            running = S.trials_of(other, "stale", states=(optuna.trial.TrialState.RUNNING,))
            if running and running[0].intermediate_values:
                other.set_trial_state_values(running[0]._trial_id, optuna.trial.TrialState.FAIL)
                study = optuna.load_study(study_name="stale", storage=other)
                other.get_heartbeat_stale_trial_callback()(study, other.get_trial(running[0]._trial_id))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=declare_stale)
    thread.start()
    lines = []
    S.run_worker(url, "stale", log=lines.append)
    thread.join()
    trials = S.trials_of(L.open_storage(url), "stale")
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].user_attrs["run"] == trials[0].user_attrs["run"]
    assert any("its retry carries it on" in line for line in lines), lines
