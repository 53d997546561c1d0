"""`kws-hpc evaluate --data DIR`: a run scored on a folder of clips, no store built by hand."""

import json
import shutil

import pytest

from kws_hpc.cli import main
from kws_hpc.data.split import hash_split
from kws_hpc.train.evaluate import evaluate_checkpoint
from kws_hpc.train.folder_eval import evaluate_folder
from kws_hpc.train.loop import train

from conftest import TINY_WORDS
from test_loop import quiet, tiny_cfg


@pytest.fixture(scope="module")
def tiny_run(tiny_store, tmp_path_factory):
    return train(tiny_cfg(tiny_store, epochs=3), out=tmp_path_factory.mktemp("runs"), log=quiet, progress=False)


def test_a_folder_split_scores_like_the_store_split_it_equals(tiny_run, tiny_store, tiny_tree):
    store = evaluate_checkpoint(tiny_run, tiny_store, "test")
    folder = evaluate_folder(tiny_run, tiny_tree, split="test", log=quiet)
    assert folder["clips"] == store["clips"] > 0
    assert folder["accuracy"] == store["accuracy"] and folder["confusion"] == store["confusion"]
    # house and tree are not among the model's words and it has no _unknown_: left out, and said so
    others = [f for w in ("house", "tree") for f in (tiny_tree / w).glob("*.wav")
              if hash_split(f"{w}/{f.name}") == "test"]
    assert folder["left_out"] == ({"word not in the model's labels": len(others)} if others else {})


def test_evaluate_data_on_the_command_line_and_its_errors(tiny_run, tiny_tree, tmp_path, capsys):
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_tree)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "all" and out["clips"] == 10 * 20 and 0 <= out["accuracy"] <= 1
    mine = tmp_path / "mine"
    (mine / "yes").mkdir(parents=True)
    shutil.copy(next((tiny_tree / "yes").glob("*.wav")), mine / "yes" / "me.wav")
    (mine / "yes" / "cut.wav").write_bytes(b"RIFF....WAVE")
    assert main(["evaluate", str(tiny_run), "--data", str(mine)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clips"] == 1 and out["bad_clips"][0]["path"] == "yes/cut.wav"
    (mine / "other").mkdir()
    shutil.rmtree(mine / "yes")
    assert main(["evaluate", str(tiny_run), "--data", str(mine)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no clip" in err[0] and TINY_WORDS[0] in err[0]
    assert main(["evaluate", str(tiny_run), "--store", str(tiny_tree), "--data", str(tiny_tree)]) == 2


def test_an_archive_scores_like_its_folder(tiny_run, tiny_tree, tmp_path):
    import tarfile

    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_tree, arcname="speech_commands")
    folder = evaluate_folder(tiny_run, tiny_tree, split="val", log=quiet)
    packed = evaluate_folder(tiny_run, archive, split="val", log=quiet)
    assert packed["clips"] == folder["clips"] > 0 and packed["confusion"] == folder["confusion"]
    assert folder["pad"] == "background"  # the run's store said so (its checkpoint carries the data config)
