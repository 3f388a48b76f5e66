"""Run configuration: the dataclasses and TOML (`schema`), the numeric rules (`rules`), the
one validation of CLI and window (`validation`) and the form's field table (`fields`)."""

from kdstudio.core.config.rules import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_SEED,
    MAX_THREADS,
    RULES,
    NumberRule,
)
from kdstudio.core.config.schema import (
    MAX_CONFIG_BYTES,
    OPTIMIZERS,
    SCHEDULES,
    TRANSFER_SETS,
    ConfigError,
    DataConfig,
    DistillConfig,
    OptimConfig,
    RunConfig,
    StudentConfig,
    TeacherConfig,
    apply_overrides,
    config_from_dict,
    parse_override,
    parse_toml_bytes,
    read_toml,
    save_toml,
)
from kdstudio.core.config.validation import TeacherRuns, load_config, validate

__all__ = [
    "MAX_BATCH_SIZE", "MAX_CONFIG_BYTES", "MAX_EPOCHS", "MAX_SEED", "MAX_THREADS", "OPTIMIZERS",
    "RULES", "SCHEDULES", "TRANSFER_SETS", "ConfigError", "DataConfig", "DistillConfig",
    "NumberRule", "OptimConfig", "RunConfig", "StudentConfig", "TeacherConfig", "TeacherRuns",
    "apply_overrides", "config_from_dict", "load_config", "parse_override", "parse_toml_bytes",
    "read_toml", "save_toml", "validate",
]
