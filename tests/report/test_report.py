"""The report job on real runs: tiny GRU and LSTM runs trained on the tiny store, a second GRU seed, an
unfinished run, a real Optuna sweep; every file and figure, the numbers, McNemar, and the page in Chromium."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kws_hpc.cli import main
from kws_hpc.config import ModelConfig, RunConfig, TrainConfig
from kws_hpc.errors import KwsError
from kws_hpc.report.build import make_report, paired_test
from kws_hpc.report.runs import load_run
from kws_hpc.report.compare import mcnemar, mcnemar_counts, mean_std

CHROMIUM = Path("/usr/bin/chromium")
DET_MINUTES = (0.5, 1.0)  # the DET section's keyword and negative test streams, short for the tests


class Stop(Exception):
    pass


def tiny_run(store: Path, cell: str, seed: int = 0, epochs: int = 2) -> RunConfig:
    return RunConfig(store=str(store), model=ModelConfig(cell=cell, hidden=16, layers=1),
                     train=TrainConfig(epochs=epochs, batch_size=32, lr=1e-2, seed=seed, device="cpu"))


@pytest.fixture(scope="session")
def trained(tiny_store, tmp_path_factory) -> dict:
    """GRU (seeds 0 and 1) and LSTM runs, an LSTM run stopped after one epoch, a 3-trial GRU sweep."""
    import torch

    from kws_hpc import sweep
    from kws_hpc.launch.storage import open_storage, storage_url
    from kws_hpc.train.loop import train

    runs = tmp_path_factory.mktemp("runs")
    quiet = dict(out=runs, log=lambda m: None, progress=False)
    threads = torch.get_num_threads()
    # one thread, as on a one-core Slurm allocation: these tiny models train fastest that way, and
    # intra-op threads slow down by orders of magnitude when the machine's cores are busy elsewhere
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CPUS_PER_TASK", "1")
            dirs = {name: train(tiny_run(tiny_store, cell, seed), **quiet)
                    for name, cell, seed in [("gru", "gru", 0), ("gru_seed1", "gru", 1), ("lstm", "lstm", 0)]}

            def stop(epoch, entry):
                raise Stop

            with pytest.raises(Stop):
                train(tiny_run(tiny_store, "lstm", epochs=3), on_epoch=stop, **quiet)
            url = storage_url(None, runs)
            spec = sweep.SweepSpec(store=str(tiny_store), model="gru", space=sweep.load_space("tiny"),
                                   out=str(runs), trials=3, device="cpu")
            name = f"kws-gru-{Path(tiny_store).name}"
            sweep.create_sweep(open_storage(url), name, spec)
            sweep.run_worker(url, name, log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    return {"runs": runs, "dirs": dirs, "study": name}


@pytest.fixture(scope="session")
def report(trained, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("report")
    logs: list = []
    index = make_report(trained["runs"], out, log=logs.append, det_minutes=DET_MINUTES)
    return {"out": out, "index": index, "logs": logs, "json": json.loads((out / "results.json").read_text())}


def test_report_writes_every_file_and_figure(report, trained):
    out = report["out"]
    assert report["index"] == out / "index.html"
    for name in ("index.html", "report.md", "results.csv", "results.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    figs = {p.name for p in (out / "figures").glob("*.png")}
    gru, lstm = trained["dirs"]["gru"].name, trained["dirs"]["lstm"].name
    expected = ["learning_curves.png", "per_class_f1.png", "tradeoff.png", "det.png", f"confusion_lstm_{lstm}.png",
                f"pca_lstm_{lstm}.png", f"true_vs_pred_lstm_{lstm}.png"]
    assert set(expected) <= figs
    for kind in ("confusion_gru_", "pca_gru_", "true_vs_pred_gru_", "splits_", "study0_"):
        assert any(f.startswith(kind) for f in figs), kind
    assert any(f.endswith("_history.png") for f in figs) and any(f.endswith("_importance.png") for f in figs)
    html, md = (out / "index.html").read_text(), (out / "report.md").read_text()
    for f in figs:
        assert f'src="figures/{f}"' in html and f"(figures/{f})" in md, f
        assert (out / "figures" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<style>" in html and "http://" not in html and "https://" not in html and "<script" not in html
    for title in ("GRU vs LSTM", "Per-class metrics", "Data splits", "Optuna studies", "McNemar",
                  "Live detection: misses vs false alarms per hour"):
        assert title in html and title in md
    assert gru in html or any(r["run_signature"] in html for r in report["json"]["runs"])


def test_results_hold_the_numbers_of_each_run(report, trained):
    doc = report["json"]
    rows = {r["run_signature"]: r for r in doc["runs"]}
    for run_dir in trained["dirs"].values():
        result = json.loads((run_dir / "result.json").read_text())
        row = rows[run_dir.name]
        assert row["status"] == "complete" and row["result"] == result
        for key in ("test_accuracy", "macro_f1", "params", "seconds_per_epoch", "best_epoch",
                    "inference_ms_per_clip", "best_val_acc"):
            assert row[key] == result[key], key
    with open(report["out"] / "results.csv", newline="") as fh:
        csv_rows = {r["run_signature"]: r for r in csv.DictReader(fh)}
    assert set(csv_rows) == set(rows)
    for sig, row in rows.items():
        if row["status"] == "complete":
            assert float(csv_rows[sig]["test_accuracy"]) == row["test_accuracy"]
            assert float(csv_rows[sig]["macro_f1"]) == row["macro_f1"]
    # the two GRU seeds are one configuration: mean and sample std over both
    seeds = [json.loads((trained["dirs"][k] / "result.json").read_text()) for k in ("gru", "gru_seed1")]
    group = next(g for g in doc["groups"] if trained["dirs"]["gru"].name in g["runs"])
    assert sorted(group["seeds"]) == [0, 1] and len(group["runs"]) == 2
    acc = group["metrics"]["test_accuracy"]
    vals = [r["test_accuracy"] for r in seeds]
    assert acc["mean"] == pytest.approx(np.mean(vals)) and acc["std"] == pytest.approx(np.std(vals, ddof=1))
    html = (report["out"] / "index.html").read_text()
    assert f"{acc['mean']:.4f}\u00a0±\u00a0{acc['std']:.4f}" in html


def test_each_run_links_its_log(report, trained):
    import os

    out, html, md = report["out"], (report["out"] / "index.html").read_text(), (report["out"] / "report.md").read_text()
    rows = report["json"]["runs"]
    trials = [r for r in rows if r["study"] == trained["study"]]
    assert len(trials) == 3 and len(rows) == 4 + 3
    for r in rows:
        csv_link = Path(os.path.relpath(r["metrics_csv"], out)).as_posix()
        assert csv_link.endswith(f"{r['run_signature']}/metrics.csv")
        assert f'<a href="{csv_link}">metrics.csv</a>' in html and f"[metrics.csv](<{csv_link}>)" in md
        if r in trials:  # a sweep's trials write TensorBoard event files, grouped under the study
            board = Path(r["tensorboard"])
            assert board == trained["runs"] / "tensorboard" / trained["study"] / r["run_signature"]
            assert f'<a href="{Path(os.path.relpath(board, out)).as_posix()}">tensorboard</a>' in html
        else:
            assert r["tensorboard"] is None
    assert f"tensorboard --logdir {trained['runs']} (" in html


def test_unfinished_and_pruned_runs_are_listed_not_dropped(report):
    doc = report["json"]
    unfinished = [r for r in doc["runs"] if r["status"] == "incomplete"]
    assert len(unfinished) == 1 and unfinished[0]["family"] == "lstm" and unfinished[0]["last_epoch"] == 1
    assert unfinished[0]["test_accuracy"] is None
    assert any("incomplete: 1 of 3 epochs done" in m for m in doc["missing"])
    assert "incomplete: 1 of 3 epochs done, no result.json; resumable from last.pt" in \
        (report["out"] / "index.html").read_text()
    trials = [r for r in doc["runs"] if r["study"]]
    assert len(trials) == 3 and all(r["trial"] is not None for r in trials)


def test_study_summary_and_best_trial(report, trained):
    (study,) = report["json"]["studies"]
    assert study["name"] == trained["study"] and study["trials"] == 3
    best = study["best"]
    assert best is not None and set(best["params"]) >= {"hidden", "lr"}
    assert Path(best["run_dir"]).name in {r["run_signature"] for r in report["json"]["runs"]}


def test_paired_test_matches_hand_count(report, trained):
    test = report["json"]["paired_test"]
    assert "skipped" not in test, test
    best = report["json"]["best"]
    runs = {r["family"]: r for r in report["json"]["runs"] if r["run_signature"] == best.get(r["family"])}
    za = np.load(Path(runs["gru"]["dir"]) / "predictions.npz")
    zb = np.load(Path(runs["lstm"]["dir"]) / "predictions.npz")
    order = [list(zb["paths"]).index(p) for p in za["paths"]]
    a_ok, b_ok = za["y_pred"] == za["y_true"], zb["y_pred"][order] == zb["y_true"][order]
    m = test["mcnemar"]
    assert m["a_only"] == int((a_ok & ~b_ok).sum()) and m["b_only"] == int((b_ok & ~a_ok).sum())
    assert m["n"] == len(za["paths"]) and m["both"] + m["a_only"] + m["b_only"] + m["neither"] == m["n"]


def test_mcnemar_hand_computed():
    # 3 vs 9 discordant: exact two-sided binomial, 2 * P(X <= 3 | n=12, p=1/2) = 2 * 299 / 4096
    res = mcnemar_counts(3, 9)
    assert res["method"] == "exact" and res["p_value"] == pytest.approx(598 / 4096, abs=1e-15)
    # 30 vs 10: chi-square with continuity correction, (|30 - 10| - 1)^2 / 40 = 9.025
    res = mcnemar_counts(30, 10)
    assert res["method"] == "chi2" and res["statistic"] == pytest.approx(9.025)
    assert res["p_value"] == pytest.approx(0.00266312, rel=1e-5)  # scipy.stats.chi2.sf(9.025, 1)
    assert mcnemar_counts(0, 0)["p_value"] == 1.0 and mcnemar_counts(5, 5)["p_value"] == 1.0
    a = [1, 1, 1, 0, 0, 1, 0]
    b = [1, 0, 0, 1, 0, 1, 0]
    t = mcnemar(a, b)
    assert (t["both"], t["a_only"], t["b_only"], t["neither"]) == (2, 2, 1, 2)
    assert t["p_value"] == pytest.approx(1.0)  # 2 * P(X <= 1 | n=3) = 2 * 4/8
    assert mean_std([1.0])["std"] is None and mean_std([1, 3])["std"] == pytest.approx(math.sqrt(2))


def test_paired_test_refuses_other_stores_and_test_sets(trained, tmp_path):
    gru = load_run(trained["dirs"]["gru"])
    other = load_run(trained["dirs"]["lstm"])
    other.config["store_signature"] = "0123456789ab"
    assert "store" in paired_test({"gru": gru, "lstm": other})["skipped"]
    copy = tmp_path / trained["dirs"]["lstm"].name
    shutil.copytree(trained["dirs"]["lstm"], copy)
    z = dict(np.load(copy / "predictions.npz"))
    z["paths"] = np.array([f"other/{p}" for p in z["paths"]])
    np.savez(copy / "predictions.npz", **z)
    assert "test sets differ" in paired_test({"gru": gru, "lstm": load_run(copy)})["skipped"]
    assert "LSTM" in paired_test({"gru": gru})["skipped"]


def test_one_family_with_a_database_storage(trained, tmp_path, capsys):
    """Only GRU runs and a one-trial study in SQLite: every missing piece says why; the CLI works."""
    import optuna

    runs = tmp_path / "runs"
    for key in ("gru", "gru_seed1"):
        shutil.copytree(trained["dirs"][key], runs / trained["dirs"][key].name)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="kws-gru-one", storage=url, direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        params={"hidden": 16}, distributions={"hidden": optuna.distributions.IntDistribution(8, 32)},
        value=0.5, user_attrs={"run": str(runs / trained["dirs"]["gru"].name)}))
    assert main(["report", "--runs", str(runs), "--storage", url, "--out", str(tmp_path / "rep"),
                 "--det-minutes", "0", "0"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "rep" / "index.html")
    doc = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert set(doc["best"]) == {"gru"} and "LSTM" in doc["paired_test"]["skipped"]
    assert doc["studies"][0]["best"]["params"] == {"hidden": 16}
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "No paired significance test" in html and "needs at least 2 complete trial(s)" in html
    assert "No complete LSTM run" in html
    assert "No DET curves: no streams asked (report --det-minutes 0 0)." in html


def test_without_studies_says_so(trained, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(trained["dirs"]["lstm"], runs / trained["dirs"]["lstm"].name)
    index = make_report(runs, tmp_path / "rep", log=lambda m: None, det_minutes=(0, 0))
    html = index.read_text()
    assert "No Optuna studies: no storage given" in html and "No complete GRU run" in html
    assert json.loads((tmp_path / "rep" / "results.json").read_text())["studies"] == []


def test_a_run_with_an_unreadable_result_is_named_with_why(trained, tmp_path):
    runs = tmp_path / "runs"
    for key in ("lstm", "gru"):
        shutil.copytree(trained["dirs"][key], runs / trained["dirs"][key].name)
    broken = runs / trained["dirs"]["gru"].name
    (broken / "result.json").write_text("{cut sho")
    index = make_report(runs, tmp_path / "rep", log=lambda m: None, det_minutes=(0, 0))
    html = index.read_text()
    sig = json.loads((broken / "config.json").read_text())["run_signature"]
    assert f"Run {sig} (gru, {broken}) is unusable: its result.json is unreadable." in html


def test_det_curves_and_table_of_the_best_gru_and_lstm(report, trained):
    from kws_hpc.evaluate.scoring import DetPoint, miss_at

    det = report["json"]["det"]
    assert det["split"] == "test" and det["per_false_alarm"] == pytest.approx(60.0)
    assert det["streams"]["positive"]["minutes"] == 0.5 and det["streams"]["negative"]["events"]["keyword"] == 0
    models = det["models"]
    assert sorted(m["family"] for m in models.values()) == ["gru", "gru+lstm", "lstm"]
    best = set(report["json"]["best"].values())  # the best run of each family, by validation accuracy
    dirs = {r["family"]: r["dir"] for r in report["json"]["runs"] if r["run_signature"] in best}
    by_family = {m["family"]: m for m in models.values()}
    assert by_family["gru"]["run"] == dirs["gru"] and by_family["lstm"]["run"] == dirs["lstm"]
    assert by_family["gru+lstm"]["run"] == f"{dirs['gru']} + {dirs['lstm']}"  # the two averaged, its own curve
    assert by_family["gru+lstm"]["curve"] not in (by_family["gru"]["curve"], by_family["lstm"]["curve"])
    html, md = (report["out"] / "index.html").read_text(), (report["out"] / "report.md").read_text()
    assert 'src="figures/det.png"' in html and "(figures/det.png)" in md
    for name, m in models.items():
        curve = [DetPoint(*p) for p in m["curve"]]
        assert len(curve) > 50 and all(0 <= p.miss_rate <= 1 and p.fa_per_hour >= 0 for p in curve)
        assert name in html
        for budget in ("0.5", "1.0", "2.0", "5.0"):
            point = miss_at(curve, float(budget))
            assert m["at"][budget] == (point._asdict() if point else None)
            cell = f"{100 * point.miss_rate:.1f} % (threshold {point.threshold:g})" if point else "not reached"
            assert cell in md
    assert "miss rate at <= 0.5 FA/h" in md and "miss rate at <= 5 FA/h" in md
    assert any(line.startswith("DET of GRU") for line in report["logs"])
    assert "and so did the two averaged" in md


def test_det_curves_are_reused_and_an_unreachable_corpus_is_one_note(report, trained, tiny_store, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(report["out"], again)
    logs: list = []
    make_report(trained["runs"], again, log=logs.append, det_minutes=DET_MINUTES)
    assert any("reused from" in line for line in logs) and (again / "figures" / "det.png").is_file()
    store = tmp_path / "store"  # the same store, but its corpus has moved away
    shutil.copytree(tiny_store, store)
    summary = json.loads((store / "summary.json").read_text())
    (store / "summary.json").write_text(json.dumps({**summary, "data": str(tmp_path / "moved")}))
    runs = tmp_path / "runs"
    run = shutil.copytree(trained["dirs"]["gru"], runs / trained["dirs"]["gru"].name)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "store": str(store)}))
    html = make_report(runs, tmp_path / "rep", log=lambda m: None, det_minutes=DET_MINUTES).read_text()
    assert html.count("No DET curves: the corpus of store") == 1 and "is not reachable" in html
    assert not (tmp_path / "rep" / "figures" / "det.png").exists()


def test_missing_or_empty_runs_folder_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(KwsError, match="does not exist"):
        make_report(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KwsError, match="no run folders"):
        make_report(tmp_path / "empty", tmp_path / "out")
    assert main(["report", "--runs", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kws-hpc: error: runs folder") and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists(), "nothing is written when the input is bad"


def test_missing_storage_is_one_clear_error(trained, tmp_path, capsys):
    args = ["report", "--runs", str(trained["runs"]), "--out", str(tmp_path / "out")]
    assert main(args + ["--storage", str(tmp_path / "none.journal")]) == 2
    assert main(args + ["--storage", str(tmp_path / "none.db")]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 2 and "none.journal does not exist" in errs[0] and "none.db does not exist" in errs[1]
    assert not (tmp_path / "out").exists()


PROBE = """<script>window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute("data-images-ok", ok);
  document.body.setAttribute("data-images-total", imgs.length);
  var det = document.querySelector('img[src="figures/det.png"]');
  if (det) { document.body.setAttribute("data-det-px", Math.round(det.getBoundingClientRect().width) + "x" +
             Math.round(det.getBoundingClientRect().height) + "/" + det.naturalWidth); }
});</script>"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                  "(apt-get install -y chromium)")
def test_page_opens_in_chromium_with_every_image(report, tmp_path):
    out = report["out"]
    html = (out / "index.html").read_text()
    probe = out / "probe.html"  # beside index.html, so the relative image paths resolve the same way
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    try:
        proc = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
             probe.as_uri()], capture_output=True, text=True, timeout=90)
    finally:
        probe.unlink()
    dom = proc.stdout
    total = html.count("<img ")
    assert total >= 10
    assert f'data-images-total="{total}"' in dom, proc.stderr[-2000:]
    assert f'data-images-ok="{total}"' in dom
    # the DET figure is drawn on the page: laid out at a visible size, its PNG decoded
    shown = dom.split('data-det-px="', 1)[1].split('"', 1)[0]
    width, height = (int(v) for v in shown.split("/")[0].split("x"))
    assert width > 200 and height > 100 and int(shown.split("/")[1]) > 0
