"""The one adapter over Optuna internals, against the pinned Optuna: heartbeats on a journal storage."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from kws_hpc.launch.optuna_compat import RDB_RETRY_KEYWORD, HeartbeatJournalStorage, retry_callback, trial_state
from kws_hpc.launch.storage import open_storage


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::optuna.exceptions.ExperimentalWarning")
def test_journal_storage_fails_and_retries_a_silent_trial(tmp_path):
    url = str(tmp_path / "s.journal")
    storage = open_storage(url, heartbeat=1, grace=2)
    assert isinstance(storage, HeartbeatJournalStorage)
    study = optuna.create_study(storage=storage, study_name="s")
    sid = storage.get_study_id_from_name("s")
    alive, dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), study.ask()
    alive_id, dead_id = (storage.get_trial_id_from_study_id_trial_number(sid, t.number) for t in (alive, dead))
    storage.record_heartbeat(alive_id)
    storage.set_trial_system_attr(dead_id, "heartbeat", time.time() - 60)
    assert storage._get_stale_trial_ids(sid) == [dead_id]  # the protocol method Optuna calls
    optuna.storages.fail_stale_trials(study)
    assert trial_state(storage, sid, dead.number) == TrialState.FAIL
    assert trial_state(storage, sid, alive.number) == TrialState.RUNNING
    retried = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.WAITING]
    assert len(retried) == 1 and retried[0].system_attrs["failed_trial"] == dead.number


def test_callbacks_exist_in_this_optuna():
    assert RDB_RETRY_KEYWORD in optuna.storages.RDBStorage.__init__.__code__.co_varnames
    assert isinstance(retry_callback(), getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback",
                                                optuna.storages.RetryFailedTrialCallback))
