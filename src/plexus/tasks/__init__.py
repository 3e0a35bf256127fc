"""The task axis: what kind of segmentation a study does, one module per task.

A *task* turns the shared trunk's outputs (out-of-fold and test probabilities of every
model, the folds, the manifest) into decisions, scores, submissions, tables and figures:

* ``binary``: one foreground (the nerve, a lesion); cutoff x minimum area x presence gate tuned
  on the OOF probabilities, post-processing candidates under the bootstrap rule, run-length
  submission (:mod:`plexus.tasks.binary`); any format whose masks have one foreground class;
* ``classes``: several classes from a softmax; per-class minimum areas, label maps and a
  per-class run-length table (:mod:`plexus.tasks.classes`);
* ``instances``: nuclei; threshold / split / minimum-size candidates tuned by mean AP over IoU
  thresholds, instance label maps and the DSB2018 submission (:mod:`plexus.tasks.instances`);
* ``regions``: labels scored as nested regions (brain tumours), cutoff x minimum area per region,
  nested label maps, a second rater as the human reference (:mod:`plexus.tasks.regions`).

Every stage of the workflow (tune, postprocess, submission, summary_table, comparison, the
robustness scores, the figures) is one rule that calls ``load_task(name).<stage>(...)``; a
new task is a new module here with a :class:`~plexus.tasks.base.Task` subclass, registered in
:data:`TASK_MODULES`. Modules are imported by name on demand, so a job imports (and its code
version hashes, see :mod:`plexus.codehash`) only the task it runs.
"""

from __future__ import annotations

import importlib

#: task name -> the module that defines it (its ``TASK`` attribute)
TASK_MODULES = {
    "binary": "plexus.tasks.binary",
    "classes": "plexus.tasks.classes",
    "instances": "plexus.tasks.instances",
    "regions": "plexus.tasks.regions",
}

#: the task each data format implies when the config names none (``task:`` unset); a ``folders``
#: or ``sheet`` dataset of two classes (one foreground), nothing ignored and no regions, is binary
DEFAULT_TASKS = {"kaggle_nerve": "binary", "folders": "classes", "sheet": "classes", "dsb2018": "instances",
                 "volumes": "classes"}


def task_names() -> list[str]:
    return list(TASK_MODULES)


def task_module(name: str) -> str:
    """The module name of task ``name`` (a clear error for an unknown one)."""
    if name not in TASK_MODULES:
        raise KeyError(f"unknown task {name!r} (tasks: {', '.join(TASK_MODULES)})")
    return TASK_MODULES[name]


def load_task(name: str):
    """The registered :class:`~plexus.tasks.base.Task` instance of ``name``."""
    return importlib.import_module(task_module(name)).TASK


def task_of(config: dict) -> str:
    """The config's task: ``task:`` if set, else the default of its ``data.format`` (for a
    ``folders`` or ``sheet`` dataset, ``binary`` when its masks have one foreground class)."""
    if config.get("task"):
        return config["task"]
    data_format = config["data"]["format"]
    if (data_format in ("folders", "sheet", "volumes") and len(config.get("classes") or {}) == 2
            and not config.get("ignore") and not config.get("regions")):
        return "binary"
    return DEFAULT_TASKS[data_format]
