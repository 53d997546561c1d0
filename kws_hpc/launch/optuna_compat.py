"""The one place that leans on Optuna beyond its public API (tested against the pinned Optuna).

Optuna's heartbeat machinery (`fail_stale_trials`, `study.optimize` beating for a running trial) talks
to a storage through the `BaseHeartbeat` protocol, which it implements only for RDB storages and does
not export. The journal storage gets it here; the names Optuna uses changed in 4.9 (`failed_trial_*`
became `heartbeat_stale_trial_*`), and both are answered.
"""

from __future__ import annotations

import time
import warnings

import optuna
from optuna.storages import JournalStorage
from optuna.storages._heartbeat import BaseHeartbeat  # no public export of the protocol
from optuna.trial import TrialState

# the RDBStorage keyword that takes the stale-trial callback: 4.9 renamed it
RDB_RETRY_KEYWORD = ("heartbeat_stale_trial_callback"
                     if "heartbeat_stale_trial_callback" in optuna.storages.RDBStorage.__init__.__code__.co_varnames
                     else "failed_trial_callback")


def retry_callback(max_retry: int = 3):
    """The callback that re-queues a stale trial with its parameters and intermediate values."""
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=max_retry, inherit_intermediate_values=True)


def trial_state(storage, study_id: int, number: int):
    """State of trial `number` of a study, read from the storage (public API only)."""
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number)).state


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """JournalStorage with Optuna's heartbeat protocol, which Optuna itself gives only RDB storages.

    A heartbeat is a trial system attr holding the time; a RUNNING trial whose last heartbeat (or
    start) is older than the grace period is stale, and `study.optimize` fails and retries it.
    """

    def __init__(self, backend, heartbeat_interval=None, grace_period=None, stale_callback=None):
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, "heartbeat", time.time())
        except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
            pass  # the trial finished between two beats

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        grace = self.grace_period or 2 * (self.heartbeat_interval or 60)
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last = t.system_attrs.get("heartbeat")
            if last is None and t.datetime_start is not None:
                last = t.datetime_start.timestamp()
            if last is not None and time.time() - last > grace:
                stale.append(self.get_trial_id_from_study_id_trial_number(study_id, t.number))
        return stale

    def get_heartbeat_interval(self):
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self.stale_callback

    def get_failed_trial_callback(self):  # the name optuna < 4.9 asks for
        return self.stale_callback
