"""A user model that reports, from inside its fit and its predict, the thread pools it runs with (tests only).

`RegistryModel(model=...)` fits the registry's own estimator (the same class and settings as
`--model=<name>`), so the report shows each registry library once it is loaded. Reports go to
the directory named by $PIPELINE_TEST_THREAD_REPORTS, one JSON file per call, from whichever
process and thread runs the fit.
"""

from __future__ import annotations

import json
import os
import threading
import uuid

REPORTS_ENV = "PIPELINE_TEST_THREAD_REPORTS"


def _report(stage: str, model: str, estimator) -> None:
    from threadpoolctl import threadpool_info

    record = {
        "stage": stage, "model": model, "pid": os.getpid(), "thread": threading.current_thread().name,
        "main_thread": threading.current_thread() is threading.main_thread(),
        "pools": [{key: info.get(key) for key in ("user_api", "internal_api", "filepath", "num_threads")}
                  for info in threadpool_info()],
        "estimator_threads": estimator.get_params().get("n_jobs"),
    }
    if stage == "predict" and hasattr(estimator, "get_booster"):  # XGBoost: the thread count it trained with
        config = json.loads(estimator.get_booster().save_config())
        record["xgboost_nthread"] = int(config["learner"]["generic_param"]["nthread"])
    path = os.path.join(os.environ[REPORTS_ENV], f"{os.getpid()}-{uuid.uuid4().hex}.json")
    with open(path, "w") as handle:
        json.dump(record, handle)


class RegistryModel:
    """The registry's `model`, as a user estimator class; `n_jobs` is the pipeline's --model_threads."""

    def __init__(self, model: str = "gbr", n_jobs=None, random_state=None):
        self.model, self.n_jobs, self.random_state = model, n_jobs, random_state

    def get_params(self, deep: bool = True) -> dict:
        return {"model": self.model, "n_jobs": self.n_jobs, "random_state": self.random_state}

    def set_params(self, **params):
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def fit(self, x, y):
        from pipeline.models import registry

        # Imports the library (the first time in this process: inside the fit), as the registry does.
        self.estimator_ = registry.make_estimator(self.model, {}, seed=self.random_state, threads=self.n_jobs)
        _report("fit", self.model, self.estimator_)
        self.estimator_.fit(x, y)
        return self

    def predict(self, x):
        _report("predict", self.model, self.estimator_)
        return self.estimator_.predict(x)
