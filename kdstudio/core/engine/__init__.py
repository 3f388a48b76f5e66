"""The one training engine: teacher, then the student alone (baseline), then the distilled
student. The GUI and the CLI both call `run`, and `resume` to go on with a stopped or
interrupted run from the checkpoint written at its last epoch end (see core/resume.py).

`run(config, store, on_event, should_stop)` emits typed events (`core.events`) and checks
`should_stop()` between batches (a pause is the same call blocking); it knows nothing of
who listens. Its parts:

- `preparation`: validate, load the data, the label budget, build the models;
- `optim`: optimisers and learning-rate schedules;
- `evaluation`: predictions, validation figures, accuracy;
- `batches`: the `BatchSource` seam and the in-memory source;
- `streaming`: the `torch.utils.data` source, augmented batches, the default factory;
- `step`: one optimisation step and its batched read-back;
- `recorder`: the only writer of the history and emitter of events;
- `context`: the state of a run in progress;
- `loop`: the phase loop over epochs and batches, and the checkpoints;
- `runner`: `run`, `resume`, the phases in order, the run's start and end;
- `distributed`: DDP under torchrun (the process group, shards, collectives);
- `late_teacher`: a teacher checkpoint still being written (a sweep's shared teacher).
"""

from kdstudio.core.engine.batches import (
    Batch,
    BatchFactory,
    BatchSource,
    InMemoryBatches,
    LabelledCycle,
    in_memory_batches,
)
from kdstudio.core.engine.context import NonFiniteLoss, RunStopped, failure_reason
from kdstudio.core.engine.evaluation import (
    EVAL_BATCH,
    TeacherReference,
    accuracy,
    predict,
    validation_metrics,
)
from kdstudio.core.engine.late_teacher import LateTeacher, TeacherUnavailable
from kdstudio.core.engine.optim import fused_optimizer_supported, lr_factor, make_optimizer
from kdstudio.core.engine.preparation import Prepared, prepare
from kdstudio.core.engine.recorder import Recorder, SilentRecorder
from kdstudio.core.engine.runner import RunResult, choose_threads, execute, resume, run
from kdstudio.core.engine.step import EpochTotals, read_scalars, weighted_total
from kdstudio.core.engine.streaming import AugmentedBatches, StreamBatches, default_batches
from kdstudio.core.plan import PHASES, PhasePlan, RunPlan

__all__ = [
    "EVAL_BATCH",
    "PHASES",
    "AugmentedBatches",
    "Batch",
    "BatchFactory",
    "BatchSource",
    "EpochTotals",
    "InMemoryBatches",
    "LabelledCycle",
    "LateTeacher",
    "NonFiniteLoss",
    "PhasePlan",
    "Prepared",
    "Recorder",
    "RunPlan",
    "RunResult",
    "RunStopped",
    "SilentRecorder",
    "TeacherUnavailable",
    "StreamBatches",
    "TeacherReference",
    "accuracy",
    "choose_threads",
    "default_batches",
    "execute",
    "failure_reason",
    "fused_optimizer_supported",
    "in_memory_batches",
    "lr_factor",
    "make_optimizer",
    "predict",
    "prepare",
    "read_scalars",
    "resume",
    "run",
    "validation_metrics",
    "weighted_total",
]
