"""Measure what innereye_min.py costs on top of a plain PyTorch Lightning script.

    python benchmarks/runner_overhead.py          # the full benchmark: about 13 minutes on 2 cores
    python benchmarks/runner_overhead.py --quick  # one round of one epoch, to check that it works

Each round runs these commands once, each as a fresh process from the repository root:

- runner: `innereye_min.py --model example_container.Dummy`, for wall time, CPU time and memory.
- plain: this file as a hand-written Lightning script with a CSV logger and Lightning's default
  checkpoints. Its LightningModule and LightningDataModule compute exactly what
  example_container.Dummy computes, without innereye_min or param.
- runner_timed: the runner with TimedDummy, which is Dummy plus a clock callback that plain has
  too, for start-up time and training throughput.
- bare: the plain script's Trainer without logger and checkpoints, for throughput.
- logger_only: the plain script's Trainer with its CSV logger and without checkpoints.
- runner_saving_at_end: runner_timed with `--checkpoint_every_n_epochs` set to the number of
  epochs, so that it saves last.ckpt only at the end. Against bare and logger_only, it shows
  what the runner's logger and callbacks cost apart from the saves after each epoch.
- `import innereye_min`, `import pytorch_lightning`, a module that contains only `import
  pytorch_lightning`, `python -X importtime` of innereye_min, and the runner's `--help`.

The two sides of each pair run one after the other, and every ratio is taken within one round,
so that load from other work on the machine affects both sides alike. Before the rounds, the
script compiles the repository's modules to cached bytecode, as pip does for installed packages
such as Lightning, so that no command spends its time compiling them. The first round only warms
the file cache and is not counted. Every command runs with OMP_NUM_THREADS=1 (see --threads):
with torch's default of one thread per core, a tiny model on a busy 2-core machine ran four times
slower. After the rounds, one more process times the Azure ML logger against a recording run.

The script prints a Markdown table: for each side and for the comparison, the median and the
range (minimum to maximum), and whether the budget is met. It exits with 1 when a command fails
or when the runner and the plain script end with different weights, which would mean that they
do not train the same model on the same data. Missed budgets do not change the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import platform
import py_compile
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = pathlib.Path(__file__).resolve()

# The clock callback writes its timestamps into the JSON file that this variable names.
CLOCK_FILE_ENV = "RUNNER_OVERHEAD_CLOCK_FILE"

# About 20 s of training for the plain script on a 2-core x86_64 machine with torch 2.13 (CPU).
# On another machine, choose --num_epochs so that the "training time" row shows about 20 s.
DEFAULT_NUM_EPOCHS = 1250
# example_container.Dummy's own default.
DEFAULT_NUM_ITEMS = 500
# The Azure ML logger measurement: calls per repetition, and metrics per call.
LOGGER_CALLS = 2000
LOGGER_METRICS_PER_CALL = 10


# ---------------------------------------------------------------------------------------------
# The clock, shared by both sides
# ---------------------------------------------------------------------------------------------


class StepClock(pl.Callback):
    """Record when the first training batch starts and the last one ends, in the same process.

    Times are `time.monotonic()`, which on Linux is one system-wide clock, so that the parent
    can subtract the moment it started this process. The record is written at the end of
    training into the file that RUNNER_OVERHEAD_CLOCK_FILE names, and not at all without it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.first_batch_start: float | None = None
        self.last_batch_end: float | None = None
        self.batches = 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.first_batch_start is None:
            self.first_batch_start = time.monotonic()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.last_batch_end = time.monotonic()
        self.batches += 1

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = os.environ.get(CLOCK_FILE_ENV)
        if path is None:
            return
        record = {
            "first_batch_start": self.first_batch_start,
            "last_batch_end": self.last_batch_end,
            "batches": self.batches,
            "weights_sha256": weights_digest(pl_module),
            "azureml_modules": loaded_azureml_modules(),
        }
        pathlib.Path(path).write_text(json.dumps(record))


def weights_digest(module: torch.nn.Module) -> str:
    """Hash the module's parameters exactly: the same digest means bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(repr(tensor.detach().cpu().flatten().tolist()).encode())
    return digest.hexdigest()


def loaded_azureml_modules() -> list[str]:
    return sorted(name for name in sys.modules if name.split(".")[0] == "azureml")


# ---------------------------------------------------------------------------------------------
# The plain-Lightning side: example_container.Dummy written without innereye_min
# ---------------------------------------------------------------------------------------------


class PlainModule(pl.LightningModule):
    """The network, loss, logging and optimizer of example_container.DummyModule."""

    def __init__(self, hidden_size: int = 16, learning_rate: float = 0.01) -> None:
        super().__init__()
        self.learning_rate = learning_rate
        self.model = torch.nn.Sequential(
            torch.nn.Linear(4, hidden_size),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden_size, 1),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs: torch.Tensor = self.model(inputs)
        return outputs.squeeze(-1)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        inputs, targets, _ = batch
        loss = torch.nn.functional.mse_loss(self(inputs), targets)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        inputs, targets, _ = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(inputs), targets), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # innereye_min's OptimizerParams defaults: Adam, betas (0.9, 0.999), no weight decay.
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class PlainDataModule(pl.LightningDataModule):
    """The samples and the 60/20/20 split of example_container.DummyDataModule."""

    def __init__(self, num_items: int, batch_size: int = 25) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1234)
        inputs = torch.randn(num_items, 4, generator=generator)
        targets = inputs @ torch.tensor([1.5, -2.0, 0.5, 3.0])
        targets = targets + 0.1 * torch.randn(num_items, generator=generator)
        item_ids = torch.arange(num_items)
        train_end, val_end = int(0.6 * num_items), int(0.8 * num_items)
        tensors = (inputs, targets, item_ids)
        self.train_set = TensorDataset(*(t[:train_end] for t in tensors))
        self.val_set = TensorDataset(*(t[train_end:val_end] for t in tensors))
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.val_set, batch_size=self.batch_size)


def train_plain(
    num_epochs: int, num_items: int, output_dir: pathlib.Path, logger: bool, checkpoints: bool
) -> None:
    """Train as a hand-written script does, with the Trainer settings that the runner passes.

    `logger` adds a CSV logger, and `checkpoints` Lightning's default checkpointing, as a plain
    script would have. Without both, this is the bare Trainer of the throughput comparison.
    """
    # The runner seeds with the container's default random_seed before it creates the module.
    pl.seed_everything(42, workers=True, verbose=False)
    module = PlainModule()
    data = PlainDataModule(num_items)
    trainer = pl.Trainer(
        max_epochs=num_epochs,
        accelerator="auto",
        devices="auto",
        num_nodes=1,
        precision="32-true",
        deterministic=False,
        accumulate_grad_batches=1,
        check_val_every_n_epoch=1,
        limit_train_batches=1.0,
        limit_val_batches=1.0,
        num_sanity_val_steps=2,
        callbacks=[StepClock()],
        logger=CSVLogger(save_dir=output_dir) if logger else False,
        enable_checkpointing=checkpoints,
        default_root_dir=output_dir,
        # The runner shows a progress bar only on a terminal; the benchmark's children have none.
        enable_progress_bar=False,
    )
    trainer.fit(module, datamodule=data)


# ---------------------------------------------------------------------------------------------
# The runner side: Dummy with the clock
# ---------------------------------------------------------------------------------------------

if __name__ != "__main__":
    # The runner loads this file to find TimedDummy. Run as a script, the file must not import
    # innereye_min, whose cost the plain side is there to leave out.
    from example_container import Dummy

    class TimedDummy(Dummy):
        """example_container.Dummy plus the clock callback that the plain side has too."""

        def get_callbacks(self) -> list[pl.Callback]:
            return [StepClock()]


# ---------------------------------------------------------------------------------------------
# The Azure ML logger measurement
# ---------------------------------------------------------------------------------------------


def create_recording_run() -> Any:
    """Create an azureml.core.Run that records each `log` call, without a workspace.

    AzureMLLogger logs only to a Run instance, so the double is a subclass. Its `log` is one list
    append, so that the time measured is the logger's own. A unittest.mock autospec double would
    add the mock's checks of every call.
    """
    from azureml.core import Run

    class RecordingRun(Run):  # type: ignore[misc]
        def __init__(self) -> None:
            # Run.__init__ needs an experiment in a workspace, and logging needs none.
            self.logged: list[tuple[str, Any, int | None]] = []

        def log(
            self, name: str, value: Any, description: str = "", step: int | None = None
        ) -> None:
            self.logged.append((name, value, step))

    return RecordingRun()


def measure_azureml_logger(repeats: int) -> dict[str, Any]:
    """Time `AzureMLLogger.log_metrics` against a recording run, in microseconds per metric.

    Returns the reason instead when the run did not record every metric.
    """
    # Run as a script, this file has its own folder on sys.path, not the repository root.
    sys.path.insert(0, str(REPOSITORY))
    import innereye_min

    run = create_recording_run()
    azureml_logger = innereye_min.AzureMLLogger(run)
    metrics = {f"metric_{index}": float(index) for index in range(LOGGER_METRICS_PER_CALL)}
    expected = LOGGER_CALLS * LOGGER_METRICS_PER_CALL
    microseconds: list[float] = []
    # The first repetition is a warm-up.
    for repeat in range(repeats + 1):
        run.logged.clear()
        start = time.perf_counter()
        for step in range(LOGGER_CALLS):
            azureml_logger.log_metrics(metrics, step=step)
        elapsed = time.perf_counter() - start
        if len(run.logged) != expected:
            return {
                "status": "failed",
                "reason": f"the run recorded {len(run.logged)} values instead of {expected}",
            }
        if repeat > 0:
            microseconds.append(elapsed / expected * 1e6)
    return {"status": "measured", "microseconds": microseconds}


# ---------------------------------------------------------------------------------------------
# Running and timing one child process
# ---------------------------------------------------------------------------------------------


class ChildFailedError(Exception):
    """A command of the benchmark exited with an error or wrote no clock record."""


@dataclasses.dataclass
class Sample:
    """One finished run of one command."""

    wall_s: float
    cpu_s: float
    max_rss_mib: float
    stdout: str
    stderr: str
    clock: dict[str, Any] | None

    @property
    def startup_s(self) -> float:
        """Seconds from starting the process to the start of the first training batch."""
        return self.clock_value("first_batch_start") - self.clock_value("spawned")

    @property
    def training_s(self) -> float:
        """Seconds from the start of the first training batch to the end of the last one."""
        return self.clock_value("last_batch_end") - self.clock_value("first_batch_start")

    @property
    def steps_per_s(self) -> float:
        """Training batches per second, from the first batch's start to the last one's end."""
        return self.clock_value("batches") / self.training_s

    @property
    def added_import_ms(self) -> float:
        """Milliseconds that `python -X importtime` reports for innereye_min, cumulative."""
        for line in self.stderr.splitlines():
            # The line format: "import time:  self [us] | cumulative | module", nested by indent.
            fields = line.removeprefix("import time:").split("|")
            if len(fields) == 3 and fields[2].strip() == "innereye_min":
                return int(fields[1]) / 1000
        raise ChildFailedError(f"python -X importtime reported no innereye_min:\n{self.stderr}")

    def clock_value(self, key: str) -> float:
        if self.clock is None or self.clock.get(key) is None:
            raise ChildFailedError(f"the clock record has no {key!r}: {self.clock}")
        return float(self.clock[key])


def run_child(
    command: Sequence[str], work_dir: pathlib.Path, threads: int, use_clock: bool = False
) -> Sample:
    """Run one command from the repository root and measure its wall time, CPU time and peak RSS.

    `os.wait4` returns the resource usage of this one child, so that each run has its own peak.
    `threads` sets OMP_NUM_THREADS, the number of threads of torch's CPU operations.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    clock_file = work_dir / "clock.json"
    environment = dict(os.environ)
    environment["OMP_NUM_THREADS"] = str(threads)
    if use_clock:
        environment[CLOCK_FILE_ENV] = str(clock_file)
    stdout_path, stderr_path = work_dir / "stdout.txt", work_dir / "stderr.txt"
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        spawned = time.monotonic()
        process = subprocess.Popen(
            list(command), cwd=REPOSITORY, env=environment, stdout=stdout, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - spawned
    # Tell Popen that the process is already reaped, so that it does not wait for it again.
    process.returncode = os.waitstatus_to_exitcode(status)

    if process.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-3000:]
        raise ChildFailedError(
            f"command failed with exit code {process.returncode}: {' '.join(command)}\n{tail}"
        )
    clock: dict[str, Any] | None = None
    if use_clock:
        if not clock_file.is_file():
            raise ChildFailedError(f"command wrote no clock record: {' '.join(command)}")
        clock = json.loads(clock_file.read_text())
        clock["spawned"] = spawned
    # On Linux, ru_maxrss is in KiB.
    return Sample(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mib=usage.ru_maxrss / 1024,
        stdout=stdout_path.read_text(errors="replace"),
        stderr=stderr_path.read_text(errors="replace"),
        clock=clock,
    )


# ---------------------------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """The training size, the number of rounds and torch's threads of one benchmark run."""

    num_epochs: int
    num_items: int
    repeats: int
    warmup: int
    threads: int


def runner_command(settings: Settings, model: str, output_to: pathlib.Path) -> list[str]:
    return [
        sys.executable,
        "innereye_min.py",
        "--model",
        model,
        f"--num_epochs={settings.num_epochs}",
        f"--num_items={settings.num_items}",
        f"--output_to={output_to}",
    ]


def plain_command(settings: Settings, child: str, output_dir: pathlib.Path) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        f"--child={child}",
        f"--num_epochs={settings.num_epochs}",
        f"--num_items={settings.num_items}",
        f"--output_dir={output_dir}",
    ]


HELP_COMMAND = [sys.executable, "innereye_min.py", "--model", "example_container.Dummy", "--help"]
IMPORT_RUNNER = [sys.executable, "-c", "import innereye_min"]
IMPORT_LIGHTNING = [sys.executable, "-c", "import pytorch_lightning"]
# torch takes longer to import from inside a module than from `python -c` (see the README), so
# this module is the plain counterpart of innereye_min that pays the same.
LIGHTNING_ONLY_MODULE = "lightning_only"
# With pytorch_lightning imported first, the importtime line of innereye_min counts only what
# innereye_min adds: param and the module itself.
IMPORT_ADDED = [sys.executable, "-X", "importtime", "-c", "import pytorch_lightning, innereye_min"]
LIST_AZUREML_AFTER_IMPORT = [
    sys.executable,
    "-c",
    "import sys, innereye_min; "
    "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'azureml')))",
]


def run_round(settings: Settings, round_dir: pathlib.Path) -> dict[str, Sample]:
    """Run every command once, the two sides of each pair one after the other."""
    timed_model = f"{SCRIPT.relative_to(REPOSITORY)}:TimedDummy"
    module_dir = round_dir / "module"
    module_dir.mkdir(parents=True)
    (module_dir / f"{LIGHTNING_ONLY_MODULE}.py").write_text("import pytorch_lightning\n")
    import_module = [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(module_dir)!r}); import {LIGHTNING_ONLY_MODULE}",
    ]
    saving_at_end = [
        *runner_command(settings, timed_model, round_dir / "runner_saving_at_end"),
        f"--checkpoint_every_n_epochs={settings.num_epochs}",
    ]
    commands = {
        "runner": (
            runner_command(settings, "example_container.Dummy", round_dir / "runner"),
            False,
        ),
        "plain": (plain_command(settings, "plain", round_dir / "plain"), True),
        "runner_timed": (runner_command(settings, timed_model, round_dir / "runner_timed"), True),
        "bare": (plain_command(settings, "bare", round_dir / "bare"), True),
        "runner_saving_at_end": (saving_at_end, True),
        "logger_only": (plain_command(settings, "logger_only", round_dir / "logger_only"), True),
        "import_runner": (IMPORT_RUNNER, False),
        "import_lightning": (IMPORT_LIGHTNING, False),
        "import_module": (import_module, False),
        "import_added": (IMPORT_ADDED, False),
        "help": (HELP_COMMAND, False),
    }
    return {
        name: run_child(command, round_dir / name, settings.threads, use_clock=use_clock)
        for name, (command, use_clock) in commands.items()
    }


def check_same_weights(samples: dict[str, Sample]) -> None:
    """Fail unless the runner and both plain Trainers ended with bit-identical weights."""
    digests = {
        name: (samples[name].clock or {}).get("weights_sha256")
        for name in ("runner_timed", "plain", "bare", "runner_saving_at_end", "logger_only")
    }
    if len(set(digests.values())) != 1:
        raise ChildFailedError(
            "the runner and the plain script trained different weights, so they do not train "
            f"the same model on the same data: {digests}"
        )


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One row of the table: a measure of an innereye_min command and of its plain counterpart.

    The two are compared round by round, as a ratio, or as a difference with `subtract`. The
    budget is a maximum of the median comparison, or a minimum with `at_least`. A row without a
    budget only reports.
    """

    what: str
    runner: str
    plain: str | None
    measure: Callable[[Sample], float]
    unit: str
    digits: int
    subtract: bool = False
    budget: float | None = None
    at_least: bool = False


COMPARISONS = [
    Comparison("wall time", "runner", "plain", lambda s: s.wall_s, " s", 2, budget=1.05),
    Comparison("CPU time (user + system)", "runner", "plain", lambda s: s.cpu_s, " s", 2),
    Comparison(
        "training time, first batch start to last batch end",
        "runner_timed",
        "plain",
        lambda s: s.training_s,
        " s",
        2,
    ),
    Comparison(
        "start-up: process start to first training batch",
        "runner_timed",
        "plain",
        lambda s: s.startup_s,
        " s",
        2,
        subtract=True,
        budget=0.5,
    ),
    Comparison(
        "training steps per second; plain: the same Trainer without logger and checkpoints",
        "runner_timed",
        "bare",
        lambda s: s.steps_per_s,
        "",
        1,
        budget=0.97,
        at_least=True,
    ),
    Comparison(
        "training steps per second; plain: CSV logger and Lightning's default checkpoints",
        "runner_timed",
        "plain",
        lambda s: s.steps_per_s,
        "",
        1,
    ),
    Comparison(
        "training steps per second, the runner saving last.ckpt only at the end; "
        "plain: the same Trainer without logger and checkpoints",
        "runner_saving_at_end",
        "bare",
        lambda s: s.steps_per_s,
        "",
        1,
    ),
    Comparison(
        "training steps per second, the runner saving last.ckpt only at the end; "
        "plain: the same Trainer with a CSV logger and without checkpoints",
        "runner_saving_at_end",
        "logger_only",
        lambda s: s.steps_per_s,
        "",
        1,
    ),
    Comparison(
        "wall time, the runner with the clock callback; plain: the runner without it",
        "runner_timed",
        "runner",
        lambda s: s.wall_s,
        " s",
        2,
    ),
    Comparison(
        "peak memory (max RSS)", "runner", "plain", lambda s: s.max_rss_mib, " MiB", 0, budget=1.05
    ),
    Comparison(
        '`python -c "import innereye_min"`; plain: `import pytorch_lightning`',
        "import_runner",
        "import_lightning",
        lambda s: s.wall_s,
        " s",
        2,
        budget=1.05,
    ),
    Comparison(
        '`python -c "import innereye_min"`; plain: a module that contains only '
        "`import pytorch_lightning`",
        "import_runner",
        "import_module",
        lambda s: s.wall_s,
        " s",
        2,
    ),
    Comparison(
        "import time that innereye_min adds after pytorch_lightning (`python -X importtime`)",
        "import_added",
        None,
        lambda s: s.added_import_ms,
        " ms",
        1,
    ),
    Comparison(
        "`innereye_min.py --model example_container.Dummy --help`",
        "help",
        None,
        lambda s: s.wall_s,
        " s",
        2,
    ),
]


def describe(values: Sequence[float], unit: str, digits: int) -> str:
    """Write values as 'median unit (minimum to maximum)'."""
    median = statistics.median(values)
    return f"{median:.{digits}f}{unit} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def build_row(comparison: Comparison, samples: dict[str, list[Sample]]) -> str:
    """Build one Markdown row: both sides, their round-by-round comparison and the verdict."""
    runner = [comparison.measure(sample) for sample in samples[comparison.runner]]
    cells = [comparison.what, describe(runner, comparison.unit, comparison.digits)]
    if comparison.plain is None:
        return "| " + " | ".join([*cells, "", "", "report", "reported"]) + " |"

    plain = [comparison.measure(sample) for sample in samples[comparison.plain]]
    if comparison.subtract:
        compared = [a - b for a, b in zip(runner, plain, strict=True)]
        described = "adds " + describe(compared, comparison.unit, comparison.digits)
    else:
        compared = [a / b for a, b in zip(runner, plain, strict=True)]
        described = "ratio " + describe(compared, "", 3)
    cells += [describe(plain, comparison.unit, comparison.digits), described]

    if comparison.budget is None:
        return "| " + " | ".join([*cells, "report", "reported"]) + " |"
    # The verdict compares the median as the table shows it, so that "1.050" never misses 1.05.
    digits = comparison.digits if comparison.subtract else 3
    median = round(statistics.median(compared), digits)
    unit = comparison.unit if comparison.subtract else ""
    if comparison.at_least:
        budget, shortfall = f"≥ {comparison.budget}", comparison.budget - median
    else:
        budget, shortfall = f"≤ {comparison.budget}{unit}", median - comparison.budget
    verdict = "met" if shortfall <= 0 else f"missed by {shortfall:.{digits}f}{unit}"
    return "| " + " | ".join([*cells, budget, verdict]) + " |"


def build_table(
    samples: dict[str, list[Sample]], azureml_loaded: list[str], azureml_logger: dict[str, Any]
) -> list[str]:
    """Build the Markdown table of every measurement, with budgets and verdicts."""
    rows = [
        "| what | innereye_min | plain Lightning | innereye_min vs plain, round by round "
        "| budget | verdict |",
        "|---|---|---|---|---|---|",
    ]
    rows += [build_row(comparison, samples) for comparison in COMPARISONS]

    loaded = ", ".join(azureml_loaded) if azureml_loaded else "none"
    verdict = "missed" if azureml_loaded else "met"
    rows.append(
        f"| azureml modules loaded by `import innereye_min` and by a local run | {loaded} "
        f"| | | none | {verdict} |"
    )

    if azureml_logger["status"] == "measured":
        cell, verdict = describe(azureml_logger["microseconds"], " µs", 2), "reported"
    else:
        cell, verdict = "not measured", f"not measured: {azureml_logger['reason']}"
    rows.append(
        f"| one Azure ML logger call with a recording run, per metric | {cell} "
        f"| | | report | {verdict} |"
    )
    return rows


def describe_machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({platform.machine()}), {memory_gib:.1f} GiB memory, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"torch {metadata.version('torch')}, "
        f"pytorch-lightning {metadata.version('pytorch-lightning')}, "
        f"param {metadata.version('param')}"
    )


def load_average() -> str:
    """Return the 1-, 5- and 15-minute load averages: other work that ran meanwhile."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def at_least(minimum: int) -> Callable[[str], int]:
    """Return an argparse type that accepts an integer of at least `minimum`."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return convert


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner_overhead.py",
        description="Measure innereye_min.py against a plain PyTorch Lightning script that "
        "trains the same model, and print a Markdown table with the budgets.",
        allow_abbrev=False,
    )
    # Flag, minimum, default (None: it depends on --quick), help.
    integer_flags: list[tuple[str, int, int | None, str]] = [
        ("--repeats", 1, None, "Rounds that are counted (default: 5; 1 with --quick)."),
        ("--warmup", 0, None, "Rounds run first and not counted (default: 1; 0 with --quick)."),
        (
            "--num_epochs",
            1,
            None,
            f"Training epochs of each run (default: {DEFAULT_NUM_EPOCHS}; 1 with --quick).",
        ),
        (
            "--num_items",
            10,
            DEFAULT_NUM_ITEMS,
            "Samples in the data set, all splits together (default: %(default)s).",
        ),
        (
            "--threads",
            1,
            1,
            "OMP_NUM_THREADS of every command: torch's threads (default: %(default)s).",
        ),
    ]
    for flag, minimum, default, help_text in integer_flags:
        parser.add_argument(
            flag, metavar="N", type=at_least(minimum), default=default, help=help_text
        )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Check that the benchmark works: one round of one epoch, no warm-up. The numbers "
        "then mean little.",
    )
    # One side of a measurement, run by the benchmark itself.
    parser.add_argument(
        "--child",
        choices=["plain", "bare", "logger_only", "azureml-logger"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--output_dir", type=pathlib.Path, help=argparse.SUPPRESS)
    return parser


def resolve_settings(options: argparse.Namespace) -> Settings:
    """Fill in the defaults, which depend on --quick, unless a flag sets them."""

    def choose(value: int | None, default: int, quick: int) -> int:
        if value is not None:
            return value
        return quick if options.quick else default

    return Settings(
        num_epochs=choose(options.num_epochs, DEFAULT_NUM_EPOCHS, 1),
        num_items=options.num_items,
        repeats=choose(options.repeats, 5, 1),
        warmup=choose(options.warmup, 1, 0),
        threads=options.threads,
    )


def run_benchmark(settings: Settings) -> int:
    """Run all rounds, print the table, and return the exit code."""
    print(f"Machine: {describe_machine()}", flush=True)
    print(
        f"Settings: {settings.num_epochs} epoch{'s' if settings.num_epochs > 1 else ''} "
        f"of {settings.num_items} items, "
        f"OMP_NUM_THREADS={settings.threads}, {settings.warmup} warm-up and "
        f"{settings.repeats} counted rounds; load average at start {load_average()}",
        flush=True,
    )
    # pip compiles installed packages such as Lightning at install time. The repository's modules
    # are compiled here, even where PYTHONDONTWRITEBYTECODE would stop Python from doing it.
    for module in (REPOSITORY / "innereye_min.py", REPOSITORY / "example_container.py", SCRIPT):
        py_compile.compile(str(module), doraise=True)

    samples: dict[str, list[Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="runner_overhead_") as temporary:
        work = pathlib.Path(temporary)
        try:
            for number in range(settings.warmup + settings.repeats):
                started = time.monotonic()
                round_samples = run_round(settings, work / f"round{number}")
                check_same_weights(round_samples)
                counted = number >= settings.warmup
                if counted:
                    for name, sample in round_samples.items():
                        samples.setdefault(name, []).append(sample)
                print(
                    f"round {number + 1} of {settings.warmup + settings.repeats} "
                    f"({'counted' if counted else 'warm-up'}): {time.monotonic() - started:.0f} s, "
                    f"load average {load_average()}",
                    flush=True,
                )
            after_import = run_child(LIST_AZUREML_AFTER_IMPORT, work / "azureml", settings.threads)
            logger_sample = run_child(
                [sys.executable, str(SCRIPT), "--child=azureml-logger", "--repeats=5"],
                work / "azureml_logger",
                settings.threads,
            )
        except ChildFailedError as error:
            print(f"runner_overhead.py: error: {error}", file=sys.stderr)
            return 1

    azureml_loaded = set(after_import.stdout.split())
    for sample in samples["runner_timed"]:
        azureml_loaded.update((sample.clock or {}).get("azureml_modules", []))
    azureml_logger = json.loads(logger_sample.stdout.splitlines()[-1])
    print()
    print("\n".join(build_table(samples, sorted(azureml_loaded), azureml_logger)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = create_parser()
    options = parser.parse_args(argv)
    settings = resolve_settings(options)
    if options.child == "azureml-logger":
        print(json.dumps(measure_azureml_logger(settings.repeats)))
        return 0
    if options.child in ("plain", "bare", "logger_only"):
        if options.output_dir is None:
            parser.error(f"--child={options.child} requires --output_dir")
        train_plain(
            settings.num_epochs,
            settings.num_items,
            options.output_dir,
            logger=options.child in ("plain", "logger_only"),
            checkpoints=options.child == "plain",
        )
        return 0
    return run_benchmark(settings)


if __name__ == "__main__":
    sys.exit(main())
