"""Tests of innereye_min: the container contract, the runner, and the command-line bridge.

Tests that are about processes (exit codes, files a run leaves, DDP) run the real command line in
a subprocess, under a timeout. The rest call the functions of innereye_min directly.
"""

from __future__ import annotations

import abc
import csv
import datetime
import enum
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from typing import Any, ClassVar
from unittest import mock

import numpy
import param
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.demos.boring_classes import BoringDataModule, BoringModel
from pytorch_lightning.plugins import TorchCheckpointIO

import innereye_min
from example_container import Dummy, DummyModule
from innereye_min import (
    LightningContainer,
    LightningWithInference,
    OutputParams,
    TrainerParams,
    UsageError,
)

REPO = pathlib.Path(__file__).resolve().parent
RUNNER = REPO / "innereye_min.py"

# Dummy's default split of its 500 items: 60% training, 20% validation, 20% test.
DUMMY_SPLIT_SIZES = {"train": 300, "val": 100, "test": 100}


def run_cli(
    *args: str, cwd: pathlib.Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `python innereye_min.py ARGS` in `cwd`, with this repository importable."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(RUNNER), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run_folder(output_to: pathlib.Path) -> pathlib.Path:
    folders = list(output_to.iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def read_csv(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def metric_epochs(run_folder: pathlib.Path, metric: str) -> list[int]:
    rows = read_csv(run_folder / "logs" / "csv" / "metrics.csv")
    return [int(row["epoch"]) for row in rows if row.get(metric)]


# ---------------------------------------------------------------------------------------------
# Containers used by the tests
# ---------------------------------------------------------------------------------------------


class BoringLightningModule(BoringModel, OutputParams, TrainerParams):
    """Lightning's own BoringModel, with the mixins that the contract requires."""

    def test_step(self, batch: Any, batch_idx: int) -> Any:
        # BoringModel's test_step logs nothing; a logged loss shows that the test loop ran.
        output = super().test_step(batch, batch_idx)
        self.log("test_loss", output["y"])
        self.log("test_items", float(len(batch)), reduce_fx="sum")
        return output


class BoringContainer(LightningContainer):
    def create_lightning_module(self) -> BoringLightningModule:
        return BoringLightningModule()

    def get_training_data_module(self) -> BoringDataModule:
        return BoringDataModule()


class ModuleWithoutOptimizer(LightningWithInference):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)


class NoOptimizerContainer(Dummy):
    def create_lightning_module(self) -> ModuleWithoutOptimizer:  # type: ignore[override]
        return ModuleWithoutOptimizer()


class PlainModuleContainer(Dummy):
    def create_lightning_module(self) -> BoringModel:  # type: ignore[override]
        return BoringModel()


class UnknownTrainerArgumentContainer(Dummy):
    def get_trainer_arguments(self) -> dict[str, Any]:
        return {"max_epoch": 3}


class MissingDataContainer(LightningContainer):
    def create_lightning_module(self) -> DummyModule:
        return DummyModule(hidden_size=4)


class UserBase(abc.ABC):
    """A user's own abstract class, mixed into a container."""

    @abc.abstractmethod
    def describe(self) -> str: ...


class ContainerWithUserBase(Dummy, UserBase):
    def describe(self) -> str:
        return "a container that is also a UserBase"


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class AllTypesContainer(Dummy):
    """A container with a param of every type that the command line supports."""

    flag = param.Boolean(default=False, doc="A boolean.")
    count = param.Integer(default=3, bounds=(0, 10), doc="An integer from 0 to 10.")
    ratio = param.Number(
        default=0.5, bounds=(0, 1), inclusive_bounds=(True, False), doc="A fraction below 1."
    )
    label = param.String(default="abc", regex=r"^[a-z]+$", doc="Lower-case letters.")
    maybe_text = param.String(default=None, allow_None=True, doc="Text or None.")
    choice = param.Selector(objects=["a", "b", "c"], default="a", doc="One of a, b, c.")
    number_choice = param.ObjectSelector(objects=[1, 2, 3], default=1, doc="One of 1, 2, 3.")
    sizes = param.List(default=[1, 2], item_type=int, doc="A list of integers.")
    names = param.List(default=["x"], item_type=str, doc="A list of text.")
    pair = param.NumericTuple(default=(1.0, 2.0), length=2, doc="Two numbers.")
    words = param.Tuple(default=("a", "b"), length=2, doc="Two words.")
    existing_file = param.Filename(default=None, allow_None=True, doc="A file that exists.")
    any_path = param.Path(default=None, allow_None=True, check_exists=False, doc="Any path.")
    color = param.ClassSelector(class_=Color, default=Color.RED, doc="A color.")
    settings = param.Dict(default={"a": 1}, doc="A JSON object.")
    maybe_count = param.Integer(default=None, allow_None=True, doc="An integer or None.")
    untyped_pair = param.Tuple(default=(1, 2.5), length=2, doc="A tuple typed by its default.")
    day = param.CalendarDate(default=datetime.date(2024, 1, 31), doc="A calendar date.")
    moment = param.Date(default=datetime.datetime(2024, 1, 31, 12, 0), doc="A date and time.")
    _private = param.Integer(default=1, doc="Not a flag: the name starts with an underscore.")
    fixed = param.Integer(default=1, constant=True, doc="Not a flag: constant.")
    frozen = param.Integer(default=1, readonly=True, doc="Not a flag: read-only.")

    def __init__(self) -> None:
        super().__init__()
        self.count = 4


class SlowDummyModule(DummyModule):
    """Dummy's module, slowed down so that a test can kill a run between two epochs."""

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        time.sleep(0.02)
        return super().training_step(batch, batch_idx)


class SlowDummy(Dummy):
    def create_lightning_module(self) -> SlowDummyModule:
        return SlowDummyModule(hidden_size=self.hidden_size)


class ConstantMetricModule(DummyModule):
    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self.log("constant", 1.0, sync_dist=True)


class ConstantMetricContainer(Dummy):
    def create_lightning_module(self) -> ConstantMetricModule:
        return ConstantMetricModule(hidden_size=self.hidden_size)


class HyperparameterModule(DummyModule):
    """Saves hyperparameters that torch's weights_only loading rejects."""

    def __init__(self, folder: pathlib.Path, color: Color, width: int) -> None:
        super().__init__(hidden_size=width)
        self.save_hyperparameters()


class BestCheckpointContainer(Dummy):
    def get_callbacks(self) -> list[pl.Callback]:
        return [pl.callbacks.ModelCheckpoint(monitor="val_loss", filename="best")]


class HyperparameterContainer(Dummy):
    color = param.ClassSelector(class_=Color, default=Color.GREEN, doc="Saved as a hyperparameter.")

    def create_lightning_module(self) -> HyperparameterModule:
        return HyperparameterModule(pathlib.Path("data"), self.color, self.hidden_size)


class CallableParamContainer(Dummy):
    callback = param.Callable(default=print, doc="A function, which has no command-line form.")


# ---------------------------------------------------------------------------------------------
# The main command, end to end
# ---------------------------------------------------------------------------------------------


def test_main_command_leaves_every_file(tmp_path: pathlib.Path) -> None:
    result = run_cli("--model", "example_container.Dummy", "--num_epochs=5", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    run_folder = only_run_folder(tmp_path / "outputs")
    assert run_folder.name.endswith("_Dummy")
    assert sorted(set(metric_epochs(run_folder, "val_loss"))) == [0, 1, 2, 3, 4]
    assert (run_folder / "checkpoints" / "last.ckpt").is_file()
    assert "--model=example_container.Dummy" in (run_folder / "args.txt").read_text().splitlines()
    assert (run_folder / "logs" / "innereye_min.log").is_file()
    for split in ("val", "test"):
        predictions = read_csv(run_folder / "inference" / f"{split}_predictions.csv")
        assert len(predictions) == DUMMY_SPLIT_SIZES[split]
        assert len({row["item_id"] for row in predictions}) == DUMMY_SPLIT_SIZES[split]
        metrics = read_csv(run_folder / "inference" / f"{split}_metrics.csv")
        assert metrics[0]["items"] == str(DUMMY_SPLIT_SIZES[split])
    assert not (run_folder / "inference" / "train_predictions.csv").exists()
    # Nothing outside the run folder: no lightning_logs/ or other stray folder.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs"]


def test_dummy_learns_in_five_epochs(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        "--model", "example_container.Dummy", "--num_epochs=5", "--output_to", "runs", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    rows = read_csv(only_run_folder(tmp_path / "runs") / "logs" / "csv" / "metrics.csv")
    val_losses = [float(row["val_loss"]) for row in rows if row["val_loss"]]
    assert val_losses[-1] < 0.2 * val_losses[0]


def test_args_file_replays_configuration(tmp_path: pathlib.Path) -> None:
    first = run_cli(
        "--model=example_container.Dummy",
        "--num_epochs=2",
        "--hidden_size=8",
        "--learning_rate=0.02",
        "--inference_on_train_set",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    args_file = only_run_folder(tmp_path / "outputs") / "args.txt"

    replay = run_cli(f"@{args_file}", "--dry_run", cwd=tmp_path)

    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.splitlines() == args_file.read_text().splitlines()
    assert "--hidden_size=8" in replay.stdout.splitlines()
    assert "--learning_rate=0.02" in replay.stdout.splitlines()
    assert "--inference_on_train_set=true" in replay.stdout.splitlines()


def test_boring_model_trains_with_test_loop(tmp_path: pathlib.Path) -> None:
    result = run_cli("--model", "test_innereye_min.BoringContainer", "--num_epochs=2", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    run_folder = only_run_folder(tmp_path / "outputs")
    assert (run_folder / "checkpoints" / "last.ckpt").is_file()
    # BoringModel has test_step but no inference_step, so Lightning's test loop runs.
    assert "has no inference_step: running its test_step" in result.stderr
    assert any(row.get("test_loss") for row in read_csv(run_folder / "logs/csv/metrics.csv"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "example_container.Dummy", "--num_epoch=5"], "--num_epochs"),
        (["--model", "example_container.Dummy", "--num_epochs=0"], "--num_epochs"),
        (["--model", "example_container.Dummy", "--num_epochs=five"], "'five'"),
        (["--model", "no_such_module.Dummy"], "not found"),
        (["--num_epochs=5"], "--model is required"),
        (["--model", "test_innereye_min.UnknownTrainerArgumentContainer"], "'max_epoch'"),
        (["--model", "example_container.Dummy", "--accelerator=gpu"], "Trainer"),
        (["--model", "example_container.Dummy", "--accelerator=cpu", "--devices=0,1"], "devices"),
        (["--model", "example_container.Dummy", "--output_to=/proc/runs"], "/proc/runs"),
        (["--mod", "example_container.Dummy"], "unrecognized flag --mod; did you mean --model?"),
        (["@missing_args.txt"], "cannot read the arguments file 'missing_args.txt'"),
    ],
)
def test_usage_error_exits_2_and_writes_nothing(
    tmp_path: pathlib.Path, args: list[str], message: str
) -> None:
    result = run_cli(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("innereye_min.py: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_training_failure_exits_1_with_traceback(tmp_path: pathlib.Path) -> None:
    module_file = tmp_path / "failing.py"
    module_file.write_text(
        "from example_container import Dummy, DummyModule\n"
        "class FailingModule(DummyModule):\n"
        "    def training_step(self, batch, batch_idx):\n"
        "        raise RuntimeError('the training step failed')\n"
        "class Failing(Dummy):\n"
        "    def create_lightning_module(self):\n"
        "        return FailingModule(hidden_size=4)\n"
    )

    result = run_cli("--model", f"{module_file}:Failing", "--num_epochs=1", cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "the training step failed" in result.stderr


def test_dry_run_creates_nothing(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        "--model", "example_container.Dummy", "--dry_run", "--num_epochs=3", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert "--num_epochs=3" in result.stdout.splitlines()
    assert list(tmp_path.iterdir()) == []


def test_import_loads_no_azureml_module() -> None:
    code = "import sys, innereye_min; print(sorted(m for m in sys.modules if 'azureml' in m))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# The container contract
# ---------------------------------------------------------------------------------------------


def test_module_is_pointed_at_run_folder(tmp_path: pathlib.Path) -> None:
    run = innereye_min.configure_run(["--model=example_container.Dummy", f"--output_to={tmp_path}"])
    assert run is not None

    _, run_folder = innereye_min.start_run(run)

    assert isinstance(run.module, OutputParams)
    assert run.module.outputs_folder == run_folder
    assert run.module.logs_folder == run_folder / "logs"
    assert run_folder.parent == tmp_path.resolve()


def test_container_missing_method_is_named() -> None:
    with pytest.raises(TypeError, match=r"MissingDataContainer.*get_training_data_module"):
        MissingDataContainer()  # type: ignore[abstract]
    with pytest.raises(UsageError, match=r"does not implement get_training_data_module"):
        innereye_min.load_container_class("test_innereye_min.MissingDataContainer")


def test_container_mixed_with_user_abc_loads() -> None:
    container_class = innereye_min.load_container_class("test_innereye_min.ContainerWithUserBase")

    container = container_class()

    assert isinstance(container, UserBase)
    assert container.describe() == "a container that is also a UserBase"


def test_module_without_optimizer_is_rejected() -> None:
    with pytest.raises(UsageError, match=r"ModuleWithoutOptimizer has no configure_optimizers"):
        innereye_min.configure_run(["--model=test_innereye_min.NoOptimizerContainer"])


def test_module_without_mixins_is_rejected() -> None:
    with pytest.raises(
        UsageError, match=r"BoringModel does not inherit OutputParams and TrainerParams"
    ):
        innereye_min.configure_run(["--model=test_innereye_min.PlainModuleContainer"])


def test_inference_data_defaults_to_training_data() -> None:
    data = Dummy().get_inference_data_module()

    assert isinstance(data, pl.LightningDataModule)
    assert len(data.test_dataloader().dataset) == DUMMY_SPLIT_SIZES["test"]  # type: ignore[arg-type]


def test_optimizer_params_build_schedule() -> None:
    module = DummyModule(hidden_size=4)
    module.optimizer = "SGD"
    module.lr_scheduler = "step"
    module.lr_step_size = 2
    module.lr_warmup_epochs = 2

    config = module.configure_optimizers()

    optimizer = config["optimizer"]
    scheduler = config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, torch.optim.SGD)
    learning_rates = []
    for _ in range(6):
        learning_rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    base = module.learning_rate
    expected = [base / 3, 2 * base / 3, base, base, base * 0.1, base * 0.1]
    assert learning_rates == pytest.approx(expected)


@pytest.mark.parametrize("schedule", ["none", "step", "multistep", "exponential", "cosine"])
@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "SGD", "RMSprop"])
def test_every_optimizer_and_schedule_builds(optimizer: str, schedule: str) -> None:
    module = DummyModule(hidden_size=4)
    module.optimizer = optimizer
    module.lr_scheduler = schedule

    config = module.configure_optimizers()

    assert type(config["optimizer"]).__name__ == optimizer
    assert ("lr_scheduler" in config) == (schedule != "none")


# ---------------------------------------------------------------------------------------------
# Loading a container by name
# ---------------------------------------------------------------------------------------------


def test_model_module_not_found() -> None:
    with pytest.raises(UsageError, match=r"module 'no_such_module' not found"):
        innereye_min.load_container_class("no_such_module.Container")


def test_model_module_raising_on_import(tmp_path: pathlib.Path) -> None:
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('broken at import')\n")

    with pytest.raises(UsageError, match=r"raised RuntimeError: broken at import"):
        innereye_min.load_container_class(f"{tmp_path}/raises_on_import.py:Container")


def test_model_module_with_missing_dependency(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_missing.py").write_text("import package_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(
        UsageError, match=r"raised ModuleNotFoundError.*package_that_is_not_installed"
    ):
        innereye_min.load_container_class("needs_missing.Container")


def test_model_class_not_in_module() -> None:
    with pytest.raises(UsageError, match=r"has no class 'Dumy'\. Did you mean 'Dummy'\?") as error:
        innereye_min.load_container_class("example_container.Dumy")
    assert str(error.value).endswith("Containers it defines: Dummy")


def test_model_class_not_a_container() -> None:
    with pytest.raises(UsageError, match=r"DummyModule is not a subclass of .*LightningContainer"):
        innereye_min.load_container_class("example_container.DummyModule")


def test_model_file_form(tmp_path: pathlib.Path) -> None:
    (tmp_path / "my_models.py").write_text(
        "from example_container import Dummy\nclass MyDummy(Dummy):\n    pass\n"
    )

    container_class = innereye_min.load_container_class(f"{tmp_path}/my_models.py:MyDummy")

    assert container_class.__name__ == "MyDummy"
    with pytest.raises(UsageError, match=r"file .*missing.py' not found"):
        innereye_min.load_container_class(f"{tmp_path}/missing.py:MyDummy")


def test_model_name_without_class() -> None:
    with pytest.raises(UsageError, match=r"--model must be 'module.Class'"):
        innereye_min.load_container_class("Dummy")


def test_unknown_trainer_argument_is_named() -> None:
    run = innereye_min.configure_run(["--model=test_innereye_min.UnknownTrainerArgumentContainer"])
    assert run is not None

    with pytest.raises(UsageError, match=r"returned 'max_epoch'.*did you mean 'max_epochs'"):
        innereye_min.create_trainer(run.container, run.module)


# ---------------------------------------------------------------------------------------------
# Run folders
# ---------------------------------------------------------------------------------------------


def test_runs_in_same_second_get_own_folders(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

    class FixedDateTime(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> FixedDateTime:
            return cls.fromtimestamp(fixed.timestamp(), tz)

    monkeypatch.setattr(innereye_min.datetime, "datetime", FixedDateTime)
    folders = []
    for _ in range(2):
        run = innereye_min.configure_run(
            ["--model=example_container.Dummy", f"--output_to={tmp_path}"]
        )
        assert run is not None
        _, run_folder = innereye_min.start_run(run)
        folders.append(run_folder)

    assert [folder.name for folder in folders] == [
        "2026-01-02T030405Z_Dummy",
        "2026-01-02T030405Z_Dummy_2",
    ]
    assert all((folder / "args.txt").is_file() for folder in folders)


def test_output_to_a_file_is_rejected(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a_file").write_text("")

    with pytest.raises(UsageError, match=r"is a file, not a folder"):
        innereye_min.configure_run(
            ["--model=example_container.Dummy", f"--output_to={tmp_path / 'a_file' / 'runs'}"]
        )


# ---------------------------------------------------------------------------------------------
# The command-line bridge
# ---------------------------------------------------------------------------------------------


def configure(*args: str, model: str = "test_innereye_min.AllTypesContainer") -> innereye_min.Run:
    run = innereye_min.configure_run([f"--model={model}", *args])
    assert run is not None
    return run


@pytest.mark.parametrize(
    ("args", "name", "expected"),
    [
        (["--flag"], "flag", True),
        (["--flag=YES"], "flag", True),
        (["--flag", "on"], "flag", True),
        (["--flag=t"], "flag", True),
        (["--flag=1"], "flag", True),
        (["--flag=y"], "flag", True),
        (["--flag=False"], "flag", False),
        (["--flag", "no"], "flag", False),
        (["--flag=OFF"], "flag", False),
        (["--flag=0"], "flag", False),
        (["--flag=f"], "flag", False),
        (["--flag=N"], "flag", False),
        (["--flag", "--no-flag"], "flag", False),
        (["--count=7"], "count", 7),
        (["--count", "0"], "count", 0),
        (["--ratio=0.25"], "ratio", 0.25),
        (["--ratio", "0"], "ratio", 0),
        (["--label=xyz"], "label", "xyz"),
        (["--maybe_text=some text"], "maybe_text", "some text"),
        (["--maybe_text=None"], "maybe_text", None),
        (["--choice=b"], "choice", "b"),
        (["--number_choice=3"], "number_choice", 3),
        (["--sizes=3,4,5"], "sizes", [3, 4, 5]),
        (["--sizes="], "sizes", []),
        (["--sizes=[6, 7]"], "sizes", [6, 7]),
        (["--names=a b,c"], "names", ["a b", "c"]),
        (['--names=["a,b", "c"]'], "names", ["a,b", "c"]),
        (["--pair=3,4.5"], "pair", (3, 4.5)),
        (["--words=x,y"], "words", ("x", "y")),
        (["--any_path=/no/such folder/file.txt"], "any_path", "/no/such folder/file.txt"),
        (["--color=green"], "color", Color.GREEN),
        (["--color=GREEN"], "color", Color.GREEN),
        (["--color", "green"], "color", Color.GREEN),
        (['--settings={"b": [1, 2]}'], "settings", {"b": [1, 2]}),
        (["--maybe_count=None"], "maybe_count", None),
        (["--maybe_count=5"], "maybe_count", 5),
        (["--untyped_pair=3,4"], "untyped_pair", (3, 4.0)),
        (["--day=2025-02-28"], "day", datetime.date(2025, 2, 28)),
        (["--moment=2025-02-28T08:30:00"], "moment", datetime.datetime(2025, 2, 28, 8, 30)),
        (["--dry_run", "--maybe_text=hello world"], "maybe_text", "hello world"),
        (["--flag", "--any_path=/a b/c"], "any_path", "/a b/c"),
    ],
)
def test_flag_accepts(args: list[str], name: str, expected: Any) -> None:
    run = configure(*args)

    value = getattr(run.container, name)
    assert value == expected
    assert type(value) is type(expected)


def test_existing_file_flag(tmp_path: pathlib.Path) -> None:
    existing = tmp_path / "data file.csv"
    existing.write_text("")

    run = configure(f"--existing_file={existing}")

    assert pathlib.Path(run.container.existing_file) == existing
    with pytest.raises(UsageError, match=r"--existing_file: File .*missing.csv' not found"):
        configure(f"--existing_file={tmp_path / 'missing.csv'}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--flag=maybe"], r"--flag: invalid value 'maybe': expected a boolean, one of true/yes"),
        (["--count=11"], r"--count: .*must be at most 10, not 11"),
        (["--count=-1"], r"--count: .*must be at least 0, not -1"),
        (["--count=2.5"], r"--count: invalid value '2.5': expected an integer"),
        (["--count="], r"--count: invalid value '': expected an integer"),
        (["--ratio=1"], r"--ratio: .*must be less than 1, not 1"),
        (["--ratio=half"], r"--ratio: invalid value 'half': expected a number"),
        (["--label=ABC"], r"--label: .*'ABC' does not match regex"),
        (["--choice=d"], r"--choice: invalid choice 'd': choose from a, b, c"),
        (["--number_choice=4"], r"--number_choice: invalid choice '4': choose from 1, 2, 3"),
        (["--sizes=1,x"], r"--sizes: invalid value 'x': expected an integer"),
        (["--sizes=[1"], r"--sizes: invalid JSON list '\[1'"),
        (["--pair=1,2,3"], r"--pair: invalid value '1,2,3': expected 2 comma-separated items"),
        (["--words=a"], r"--words: invalid value 'a': expected 2 comma-separated items, not 1"),
        (["--color=blue"], r"--color: invalid choice 'blue': choose from RED, GREEN"),
        (["--settings=[1]"], r"--settings: invalid JSON object '\[1\]'"),
        (["--settings={bad"], r"--settings: invalid JSON object '\{bad'"),
        (["--count=None"], r"--count: invalid value 'None': expected an integer"),
        (["--num_epoch=5"], r"unrecognized flag --num_epoch; did you mean --num_epochs"),
        (["--fixed=2"], r"unrecognized flag --fixed"),
        (["--frozen=2"], r"unrecognized flag --frozen"),
        (["--_private=2"], r"unrecognized flag --_private"),
        (["--name=x"], r"unrecognized flag --name"),
        (["stray"], r"unexpected value 'stray'"),
        (["--random_seed=-1"], r"--random_seed: .*must be at least 0, not -1"),
        (["--random_seed=4294967296"], r"--random_seed: .*must be at most 4294967295"),
        (["--ratio=inf"], r"--ratio: invalid value 'inf': expected a finite number"),
        (["--ratio=nan"], r"--ratio: invalid value 'nan': expected a finite number"),
        (["--any_path="], r"--any_path: invalid value '': expected a path"),
        (["--day=31/01/2024"], r"--day: invalid value '31/01/2024': expected an ISO 8601 date"),
        (["--betas=0.9,1.5"], r"invalid optimizer settings: Invalid beta parameter at index 1"),
        (["--NUM_EPOCH=3"], r"unrecognized flag --NUM_EPOCH; did you mean --num_epochs"),
    ],
)
def test_flag_rejects(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        configure(*args)


def test_flag_abbreviation_is_rejected() -> None:
    with pytest.raises(UsageError, match=r"unrecognized flag --learning_r; did you mean"):
        configure("--learning_r=0.1", model="example_container.Dummy")


def test_unsupported_param_type_is_named() -> None:
    with pytest.raises(
        UsageError,
        match=r"CallableParamContainer.callback is a param.Callable, which cannot be set",
    ):
        configure(model="test_innereye_min.CallableParamContainer")


def test_init_value_then_command_line() -> None:
    assert configure().container.count == 4
    assert configure("--count=6").container.count == 6
    # Dummy's module sets learning_rate in its __init__, which the command line overrides.
    assert configure(model="example_container.Dummy").module.learning_rate == 0.01
    run = configure("--learning_rate=0.2", model="example_container.Dummy")
    assert run.module.learning_rate == 0.2


def test_only_given_flags_are_applied() -> None:
    run = configure("--count=5")

    assert run.container.ratio == 0.5
    assert run.container.sizes == [1, 2]
    assert run.module.num_epochs == TrainerParams.num_epochs


def test_container_flags_reach_create_lightning_module() -> None:
    run = configure("--hidden_size=7", model="example_container.Dummy")

    assert isinstance(run.module, DummyModule)
    assert run.module.model[0].out_features == 7


class SharedNameModule(DummyModule):
    shared = param.Integer(default=1, doc="Declared on the module and on the container.")


class SharedNameContainer(Dummy):
    shared = param.Integer(default=1, doc="Declared on the container and on the module.")

    def create_lightning_module(self) -> SharedNameModule:
        return SharedNameModule(hidden_size=4)


def test_shared_name_sets_container_and_module() -> None:
    run = configure("--shared=9", model="test_innereye_min.SharedNameContainer")

    assert run.container.shared == 9
    assert run.module.shared == 9


def test_two_parses_are_independent() -> None:
    first = configure("--sizes=9", '--settings={"x": 1}', "--count=1")
    second = configure("--count=2")

    assert first.container.count == 1
    assert second.container.count == 2
    assert second.container.sizes == [1, 2]
    assert second.container.settings == {"a": 1}
    assert AllTypesContainer.count == 3
    assert AllTypesContainer.sizes == [1, 2]
    first.container.sizes.append(10)
    assert configure().container.sizes == [1, 2]
    assert first.module is not second.module


def test_args_file_round_trips_every_type(tmp_path: pathlib.Path) -> None:
    existing = tmp_path / "input data.csv"
    existing.write_text("")
    given = [
        "--flag",
        "--count=9",
        "--ratio=0.125",
        "--label=xyz",
        "--maybe_text=None",
        "--choice=c",
        "--number_choice=2",
        "--sizes=",
        '--names=["a,b", " c", "d"]',
        "--pair=-1.5,2",
        "--words=x y,z",
        f"--existing_file={existing}",
        "--any_path=/folder with spaces/file",
        "--color=green",
        '--settings={"nested": {"list": [1, "two"]}, "none": null}',
        "--maybe_count=None",
        "--betas=0.8,0.9",
        "--lr_milestones=3,5",
        "--limit_train_batches=10",
        "--limit_val_batches=0.5",
        "--gradient_clip_val=1.0",
    ]
    first = configure(*given)
    args_file = tmp_path / "args.txt"
    args_file.write_text("\n".join(innereye_min.resolved_arguments(first)) + "\n")

    replayed = innereye_min.configure_run([f"@{args_file}"])

    assert replayed is not None
    for name in AllTypesContainer.param:
        if name not in ("name", "_private"):
            assert getattr(replayed.container, name) == getattr(first.container, name), name
    for name in TrainerParams.param:
        if name not in ("name",):
            replayed_value = getattr(replayed.module, name)
            assert replayed_value == getattr(first.module, name), name
            assert type(replayed_value) is type(getattr(first.module, name)), name
    assert replayed.module.betas == (0.8, 0.9)
    assert innereye_min.resolved_arguments(replayed) == innereye_min.resolved_arguments(first)


def test_args_file_is_never_evaluated(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "evaluated"
    args_file = tmp_path / "args.txt"
    args_file.write_text(
        "--model=test_innereye_min.AllTypesContainer\n"
        f"--label=__import__('pathlib').Path('{marker}').touch()\n"
    )

    with pytest.raises(UsageError, match=r"--label: .*does not match regex"):
        innereye_min.configure_run([f"@{args_file}"])
    run = configure('--settings={"code": "__import__(\'os\')"}')
    assert run.container.settings == {"code": "__import__('os')"}
    assert not marker.exists()


def test_help_lists_model_flags(tmp_path: pathlib.Path) -> None:
    result = run_cli("--model", "example_container.Dummy", "--help", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    help_text = result.stdout
    assert "Dummy (container):" in help_text
    assert "TrainerParams (module):" in help_text
    assert "OptimizerParams (module):" in help_text
    assert "runner:" in help_text
    lines = " ".join(help_text.split())
    num_epochs_help = "Number of training epochs (the Trainer's max_epochs)."
    assert f"--num_epochs INT {num_epochs_help} [at least 1; default: 10]" in lines
    assert "--learning_rate NUMBER Learning rate. [greater than 0; default: 0.01]" in lines
    assert "--hidden_size INT Width of the hidden layer. [at least 1; default: 16]" in lines
    assert "--accelerator {auto,cpu,gpu,cuda,mps,tpu}" in lines
    assert list(tmp_path.iterdir()) == []


def test_help_without_model_lists_runner_flags(tmp_path: pathlib.Path) -> None:
    result = run_cli("--help", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "--model NAME" in result.stdout
    assert "--output_to DIR" in result.stdout
    assert "Add --model NAME to --help" in result.stdout
    assert "--num_epochs INT" not in result.stdout


def test_help_shows_every_type(capsys: pytest.CaptureFixture[str]) -> None:
    configure("--help")

    help_text = " ".join(capsys.readouterr().out.split())
    assert "--flag [BOOL] A boolean. [default: false] --no-flag means false." in help_text
    assert "--count INT An integer from 0 to 10. [at least 0; at most 10; default: 4]" in help_text
    assert "--choice {a,b,c}" in help_text
    assert "--color {RED,GREEN} A color. [default: RED]" in help_text
    assert "--pair ITEM,... Two numbers. [2 items; default: 1.0,2.0]" in help_text
    assert "--maybe_count INT An integer or None. [None for none; default: None]" in help_text
    assert "--fixed" not in help_text


# ---------------------------------------------------------------------------------------------
# Distributed training
# ---------------------------------------------------------------------------------------------


def test_ddp_on_two_cpu_processes(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        "--model=example_container.Dummy",
        "--num_epochs=2",
        "--devices=2",
        "--accelerator=cpu",
        cwd=tmp_path,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    run_folder = only_run_folder(tmp_path / "outputs")
    assert "GLOBAL_RANK: 1" in result.stderr
    assert sorted(set(metric_epochs(run_folder, "val_loss"))) == [0, 1]
    assert (run_folder / "checkpoints" / "last.ckpt").is_file()
    for split in ("val", "test"):
        predictions = read_csv(run_folder / "inference" / f"{split}_predictions.csv")
        assert len(predictions) == DUMMY_SPLIT_SIZES[split]
        assert len({row["item_id"] for row in predictions}) == DUMMY_SPLIT_SIZES[split]
    log_lines = (run_folder / "logs" / "innereye_min.log").read_text().splitlines()
    messages = [line.split(" ", 2)[2] for line in log_lines if line[:4].isdigit()]
    assert len(messages) == len(set(messages)), messages
    assert sum("Run folder:" in message for message in messages) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["outputs"]


def test_ddp_test_loop_sees_each_item_once(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        "--model=test_innereye_min.BoringContainer",
        "--num_epochs=1",
        "--devices=2",
        "--accelerator=cpu",
        cwd=tmp_path,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    assert "running its test_step" in result.stderr
    rows = read_csv(only_run_folder(tmp_path / "outputs") / "logs" / "csv" / "metrics.csv")
    # BoringDataModule's test set has 64 items; a distributed test loop would give each process 32.
    assert [float(row["test_items"]) for row in rows if row.get("test_items")] == [64.0]


def test_sync_dist_constant_metric_is_one(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        "--model=test_innereye_min.ConstantMetricContainer",
        "--num_epochs=1",
        "--devices=2",
        "--accelerator=cpu",
        cwd=tmp_path,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    rows = read_csv(only_run_folder(tmp_path / "outputs") / "logs" / "csv" / "metrics.csv")
    constants = [float(row["constant"]) for row in rows if row.get("constant")]
    assert constants == [1.0]


def test_num_nodes_without_cluster_is_rejected(tmp_path: pathlib.Path) -> None:
    result = run_cli("--model=example_container.Dummy", "--num_nodes=2", cwd=tmp_path, timeout=120)

    assert result.returncode == 2
    assert "--num_nodes=2 needs a cluster, and none was found" in result.stderr
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Checkpoints and resuming
# ---------------------------------------------------------------------------------------------


def test_killed_run_resumes(tmp_path: pathlib.Path) -> None:
    command = [
        sys.executable,
        str(RUNNER),
        "--model=test_innereye_min.SlowDummy",
        "--num_epochs=8",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        saved_epoch = -1
        while saved_epoch < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
            checkpoint = next(tmp_path.glob("outputs/*/checkpoints/last.ckpt"), None)
            if checkpoint is not None:
                saved_epoch = torch.load(checkpoint, weights_only=False)["epoch"]
        assert saved_epoch == 1, "the run saved no checkpoint of its second epoch in time"
        # Half an epoch later, so that the kill falls inside epoch 2, after last.ckpt is saved.
        time.sleep(0.15)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    run_folder = only_run_folder(tmp_path / "outputs")
    epochs_before = sorted(set(metric_epochs(run_folder, "val_loss")))
    losses_before = read_csv(run_folder / "logs" / "csv" / "metrics.csv")
    assert epochs_before[:2] == [0, 1]
    assert epochs_before[-1] < 7
    assert not (run_folder / "inference").exists()

    result = run_cli(f"--resume_from={run_folder}", cwd=tmp_path, timeout=300)

    assert result.returncode == 0, result.stderr
    assert only_run_folder(tmp_path / "outputs") == run_folder
    assert metric_epochs(run_folder, "val_loss") == list(range(8))
    rows_after = read_csv(run_folder / "logs" / "csv" / "metrics.csv")
    kept = [row for row in losses_before if row["epoch"] in ("0", "1")]
    assert [row for row in rows_after if row["epoch"] in ("0", "1")] == kept
    assert (run_folder / "inference" / "test_predictions.csv").is_file()
    assert (run_folder / "inference" / "val_metrics.csv").is_file()


def test_container_adds_model_checkpoint(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        "--model=test_innereye_min.BestCheckpointContainer", "--num_epochs=2", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    run_folder = only_run_folder(tmp_path / "outputs")
    assert torch.load(run_folder / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 2
    best = list(run_folder.glob("**/best.ckpt"))
    assert len(best) == 1
    assert "val_loss" in str(torch.load(best[0], weights_only=False)["callbacks"])


def fit_boring_model(
    tmp_path: pathlib.Path, callback: pl.Callback, plugins: list[Any] | None = None
) -> None:
    """Train Lightning's BoringModel for 3 short epochs with `callback`, without a logger."""
    trainer = pl.Trainer(
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=1,
        callbacks=[callback],
        plugins=plugins,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(BoringModel(), datamodule=BoringDataModule())


# The callback leaves the last of the 3 epochs to the runner's save after fit().
@pytest.mark.parametrize(("every_n_epochs", "saved_epochs"), [(1, [0, 1]), (2, [1])])
def test_checkpoint_every_n_epochs(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    every_n_epochs: int,
    saved_epochs: list[int],
) -> None:
    path = tmp_path / "last.ckpt"
    saves: list[tuple[int, pathlib.Path]] = []
    save_checkpoint = innereye_min.save_checkpoint

    def record(trainer: pl.Trainer, filepath: pathlib.Path) -> None:
        saves.append((trainer.current_epoch, filepath))
        save_checkpoint(trainer, filepath)

    monkeypatch.setattr(innereye_min, "save_checkpoint", record)

    fit_boring_model(tmp_path, innereye_min.LastCheckpoint(path, every_n_epochs))

    assert saves == [(epoch, path) for epoch in saved_epochs]
    assert torch.load(path, weights_only=False)["epoch"] == saved_epochs[-1]
    assert [item.name for item in tmp_path.iterdir()] == ["last.ckpt"]


class FailingCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO whose second save writes half a file and then fails, like a killed run."""

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        self.saves += 1
        if self.saves == 1:
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        pathlib.Path(path).write_bytes(b"PK half a checkpoint")
        raise OSError("disk full")


def test_failed_save_keeps_previous_checkpoint(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "last.ckpt"

    with pytest.raises(OSError, match="disk full"):
        fit_boring_model(tmp_path, innereye_min.LastCheckpoint(path, 1), [FailingCheckpointIO()])

    assert torch.load(path, weights_only=False)["epoch"] == 0


class FolderCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO that saves a folder, as strategies that shard the state do."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        folder = pathlib.Path(path)
        folder.mkdir()
        torch.save(checkpoint, folder / "state.pt")


def test_folder_checkpoint_is_replaced(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "last.ckpt"

    fit_boring_model(tmp_path, innereye_min.LastCheckpoint(path, 1), [FolderCheckpointIO()])

    assert torch.load(path / "state.pt", weights_only=False)["epoch"] == 1
    assert [item.name for item in tmp_path.iterdir()] == ["last.ckpt"]


def test_resume_to_more_epochs(tmp_path: pathlib.Path) -> None:
    first = run_cli(
        "--model=test_innereye_min.HyperparameterContainer",
        "--num_epochs=2",
        "--hidden_size=8",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    run_folder = only_run_folder(tmp_path / "outputs")

    second = run_cli(f"--resume_from={run_folder}", "--num_epochs=4", cwd=tmp_path)

    assert second.returncode == 0, second.stderr
    assert "will be deleted" not in second.stderr
    assert metric_epochs(run_folder, "val_loss") == [0, 1, 2, 3]
    assert "--num_epochs=4" in (run_folder / "args.txt").read_text().splitlines()
    assert "--hidden_size=8" in (run_folder / "args.txt").read_text().splitlines()
    checkpoint = torch.load(run_folder / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 4
    assert checkpoint["hyper_parameters"]["color"] is Color.GREEN
    assert len(list((tmp_path / "outputs").iterdir())) == 1


def test_resume_from_checkpoint_file_starts_new_folder(tmp_path: pathlib.Path) -> None:
    first = run_cli("--model=example_container.Dummy", "--num_epochs=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    checkpoint = tmp_path / "copied.ckpt"
    checkpoint.write_bytes(
        (only_run_folder(tmp_path / "outputs") / "checkpoints" / "last.ckpt").read_bytes()
    )

    second = run_cli(
        "--model=example_container.Dummy",
        f"--resume_from={checkpoint}",
        "--num_epochs=2",
        cwd=tmp_path,
    )

    assert second.returncode == 0, second.stderr
    folders = sorted((tmp_path / "outputs").iterdir())
    assert len(folders) == 2
    assert metric_epochs(folders[1], "val_loss") == [1]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing_folder", r"no such file or folder"),
        ("empty_folder", r"checkpoints/last.ckpt not found"),
        ("broken.ckpt", r"cannot read the checkpoint"),
    ],
)
def test_resume_from_bad_path(tmp_path: pathlib.Path, target: str, message: str) -> None:
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")

    with pytest.raises(UsageError, match=message):
        configure(f"--resume_from={tmp_path / target}", model="example_container.Dummy")


def test_same_seed_gives_same_weights(tmp_path: pathlib.Path) -> None:
    for _ in range(2):
        result = run_cli("--model=example_container.Dummy", "--num_epochs=2", cwd=tmp_path)
        assert result.returncode == 0, result.stderr

    first, second = sorted((tmp_path / "outputs").iterdir())
    weights = [
        torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        for folder in (first, second)
    ]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------


class RecordingModule(DummyModule):
    """Records each inference hook call, with the module's mode and the gradient setting."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size)
        self.calls: list[tuple[str, Any, bool, bool]] = []

    def record(self, hook: str, detail: Any = None) -> None:
        self.calls.append((hook, detail, self.training, torch.is_grad_enabled()))

    def on_inference_start(self) -> None:
        self.record("on_inference_start")

    def on_inference_epoch_start(
        self, dataset_split: innereye_min.ModelExecutionMode, is_ensemble_model: bool
    ) -> None:
        self.record("on_inference_epoch_start", (dataset_split, is_ensemble_model))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training:
            self.record("forward", tuple(inputs.shape))
        return super().forward(inputs)

    def inference_step(self, batch: Any, batch_idx: int, model_output: torch.Tensor) -> None:
        self.record("inference_step", (batch_idx, tuple(model_output.shape)))

    def on_inference_epoch_end(self) -> None:
        self.record("on_inference_epoch_end")

    def on_inference_end(self) -> None:
        self.record("on_inference_end")


class RecordingContainer(Dummy):
    def create_lightning_module(self) -> RecordingModule:
        return RecordingModule(hidden_size=self.hidden_size)


def test_inference_hooks_run_in_order(tmp_path: pathlib.Path) -> None:
    run = configure(
        f"--output_to={tmp_path}",
        "--num_epochs=1",
        "--num_items=40",
        "--batch_size=10",
        "--inference_on_train_set",
        "--no-inference_on_val_set",
        model="test_innereye_min.RecordingContainer",
    )
    trainer, run_folder = innereye_min.start_run(run)
    innereye_min.train(run, trainer, run_folder)
    assert isinstance(run.module, RecordingModule)
    run.module.calls.clear()

    innereye_min.run_inference(run.container, run.module, trainer)

    hooks = [hook for hook, *_ in run.module.calls]
    # 40 items: 24 for training (3 batches of 10 or fewer), 8 for testing (1 batch).
    per_batch = ["forward", "inference_step"]
    assert hooks == [
        "on_inference_start",
        "on_inference_epoch_start",
        *per_batch * 3,
        "on_inference_epoch_end",
        "on_inference_epoch_start",
        *per_batch,
        "on_inference_epoch_end",
        "on_inference_end",
    ]
    splits = [detail for hook, detail, *_ in run.module.calls if hook == "on_inference_epoch_start"]
    assert splits == [
        (innereye_min.ModelExecutionMode.TRAIN, False),
        (innereye_min.ModelExecutionMode.TEST, False),
    ]
    assert all(not training for _, _, training, _ in run.module.calls)
    assert all(not grad_enabled for _, _, _, grad_enabled in run.module.calls)


class NoInferenceModule(DummyModule):
    """A module with neither inference_step nor test_step."""

    inference_step = LightningWithInference.inference_step


class NoInferenceContainer(Dummy):
    def create_lightning_module(self) -> NoInferenceModule:
        return NoInferenceModule(hidden_size=4)


def test_inference_skipped_without_steps(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    exit_code = innereye_min.main(
        [
            "--model=test_innereye_min.NoInferenceContainer",
            f"--output_to={tmp_path}",
            "--num_epochs=1",
        ]
    )

    assert exit_code == 0
    assert "has neither inference_step nor test_step: skipping inference" in caplog.text
    assert not (only_run_folder(tmp_path) / "inference").exists()


def test_help_joins_multiline_doc(capsys: pytest.CaptureFixture[str]) -> None:
    configure("--help", model="test_innereye_min.MultilineDocContainer")

    help_text = " ".join(capsys.readouterr().out.split())
    assert "The first line, and the second line." in help_text


class MultilineDocContainer(Dummy):
    documented = param.Integer(
        default=1,
        doc="""The first line,
        and the second line.""",
    )


# ---------------------------------------------------------------------------------------------
# Azure ML
# ---------------------------------------------------------------------------------------------

# The value of a service principal's secret, which no output may show.
SECRET = "s3cret-Value-0f-the-service-principal"


class PathContainer(Dummy):
    """A container with a path field that can receive a dataset, and a free-text field."""

    data_folder = param.Path(default=None, allow_None=True, check_exists=False)
    note = param.String(default="")


class SubmittedRun:
    """A test double of the run that Experiment.submit returns."""

    def __init__(self, status: str = "Completed", interrupt: bool = False) -> None:
        self.id = "Dummy_1700000000_abcdef12"
        self.status = status
        self.interrupt = interrupt

    def get_portal_url(self) -> str:
        return f"https://portal.invalid/runs/{self.id}"

    def wait_for_completion(self, show_output: bool, raise_on_error: bool) -> dict[str, str]:
        if self.interrupt:
            raise KeyboardInterrupt
        return {"status": self.status}


class ServicePrincipalLogin:
    """A test double of ServicePrincipalAuthentication that keeps its arguments."""

    def __init__(self, **arguments: str) -> None:
        self.arguments = arguments


class RecordingExperiment:
    """A test double of azureml.core.Experiment that records each submission."""

    submissions: ClassVar[list[dict[str, Any]]] = []
    result: ClassVar[SubmittedRun | Exception] = SubmittedRun()

    def __init__(self, workspace: Any, name: str) -> None:
        self.workspace = workspace
        self.name = name

    def submit(self, config: Any, tags: dict[str, str]) -> SubmittedRun:
        amlignore = pathlib.Path(config.source_directory) / ".amlignore"
        RecordingExperiment.submissions.append(
            {
                "experiment": self.name,
                "config": config,
                "arguments": list(config.arguments),
                "tags": tags,
                "amlignore": amlignore.read_text() if amlignore.exists() else None,
            }
        )
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test that looks up a host or opens a connection, instead of letting it hang.

    azureml-core catches some network errors and only logs them, so every attempt is recorded
    and checked after the test.
    """
    attempts: list[tuple[Any, ...]] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        attempts.append(args)
        raise OSError(f"a test tried to reach the network: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield
    assert attempts == [], "the test tried to reach the network"


@pytest.fixture(autouse=True)
def outside_azureml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start each test outside Azure ML, without a cached run context, at global rank zero."""
    monkeypatch.delenv(innereye_min.AZUREML_RUN_ID_ENV, raising=False)
    # A Trainer sets the rank that Lightning's rank_zero_only reads; monkeypatch restores it.
    monkeypatch.setattr(innereye_min.rank_zero_only, "rank", 0)
    get_azureml_run = innereye_min.get_azureml_run
    get_azureml_run.cache_clear()
    yield
    get_azureml_run.cache_clear()


@pytest.fixture
def workspace_edge(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> dict[str, Any]:
    """Replace the network edge: the workspace lookup, the submission and the dataset lookup."""
    import azureml.core
    import azureml.core.authentication

    calls: dict[str, Any] = {"auth": [], "config_path": []}
    workspace = types.SimpleNamespace(name="ws", compute_targets={"gpu": object()})

    def from_config(path: str, auth: Any) -> Any:
        calls["config_path"].append(path)
        calls["auth"].append(auth)
        return workspace

    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"})
    )
    monkeypatch.setattr(azureml.core.Workspace, "from_config", staticmethod(from_config))
    # Creating azureml-core's authentication objects looks up Azure's cloud endpoints.
    monkeypatch.setattr(
        azureml.core.authentication, "ServicePrincipalAuthentication", ServicePrincipalLogin
    )
    monkeypatch.setattr(azureml.core, "Experiment", RecordingExperiment)
    RecordingExperiment.submissions = []
    RecordingExperiment.result = SubmittedRun()
    # A service principal keeps the login offline; its secret must never be shown.
    monkeypatch.setenv("AZURE_TENANT_ID", "tenant")
    monkeypatch.setenv("AZURE_CLIENT_ID", "client")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    calls["workspace_config"] = config
    return calls


@pytest.fixture
def repository_amlignore() -> Iterator[pathlib.Path]:
    """The .amlignore of the repository, which a submission writes; restored after the test."""
    path = REPO / ".amlignore"
    original = path.read_bytes() if path.exists() else None
    yield path
    if original is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(original)


def submit_arguments(*extra: str) -> list[str]:
    """Return the arguments of a submission of the example container to the cluster 'gpu'."""
    return [
        "--model",
        "example_container.Dummy",
        "--azureml",
        "--cluster",
        "gpu",
        "--snapshot_root",
        str(REPO),
        *extra,
    ]


def run_dry_run(capsys: pytest.CaptureFixture[str], *arguments: str) -> dict[str, Any]:
    """Run `--azureml --dry_run` in this process and return the printed job."""
    exit_code = innereye_min.main([*submit_arguments(*arguments), "--dry_run"])
    captured = capsys.readouterr()
    assert exit_code == 0, captured.err
    job: dict[str, Any] = json.loads(captured.out)
    return job


def test_local_run_loads_no_azureml(tmp_path: pathlib.Path) -> None:
    code = (
        "import sys, innereye_min\n"
        "exit_code = innereye_min.main(sys.argv[1:])\n"
        "print([m for m in sys.modules if m.startswith('azureml')])\n"
        "sys.exit(exit_code)\n"
    )
    arguments = ["--model", "example_container.Dummy", "--num_epochs", "1", "--accelerator", "cpu"]
    result = subprocess.run(
        [sys.executable, "-c", code, *arguments, "--output_to", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_dry_run_one_node_job(capsys: pytest.CaptureFixture[str]) -> None:
    job = run_dry_run(capsys, "--num_epochs", "3", "--tag", "owner=team a")

    assert job["experiment"] == "Dummy"
    assert job["compute_target"] == "gpu"
    assert job["source_directory"] == str(REPO)
    assert job["script"] == "innereye_min.py"
    assert job["arguments"] == [
        "--model",
        "example_container.Dummy",
        "--cluster",
        "gpu",
        "--snapshot_root",
        str(REPO),
        "--num_epochs",
        "3",
        "--tag",
        "owner=team a",
    ]
    assert job["node_count"] == 1
    assert job["process_count"] == 1
    assert job["max_run_duration_seconds"] == 30 * 24 * 3600
    assert job["docker_image"] == innereye_min.AZUREML_DOCKER_IMAGE
    assert job["shm_size"] == innereye_min.AZUREML_SHM_SIZE
    assert job["datasets"] == []


def test_dry_run_environment_from_requirements(capsys: pytest.CaptureFixture[str]) -> None:
    environment = run_dry_run(capsys)["environment"]

    assert environment["python"] == innereye_min.AZUREML_PYTHON_VERSION
    assert "pip" in environment["conda_packages"]
    assert "torch>=2.1,<3" in environment["pip_packages"]
    assert "azureml-core>=1.55" in environment["pip_packages"]
    assert not any(package.startswith("#") for package in environment["pip_packages"])
    assert environment["name"].startswith("innereye_min-")


def test_docker_image_is_tagged() -> None:
    name, _, tag = innereye_min.AZUREML_DOCKER_IMAGE.rpartition(":")
    assert "cuda" in name
    assert tag and "/" not in tag
    assert tag != "latest"


def test_dry_run_tags(capsys: pytest.CaptureFixture[str]) -> None:
    tags = run_dry_run(capsys, "--tag", "owner=team a", "--tag", "purpose=test")["tags"]

    assert tags["container"] == "example_container.Dummy"
    assert tags["command_line"].startswith("innereye_min.py --model example_container.Dummy")
    assert "--tag 'owner=team a'" in tags["command_line"]
    assert "--azureml" not in tags["command_line"]
    assert tags["owner"] == "team a"
    assert tags["purpose"] == "test"


def test_dry_run_two_nodes_four_devices(capsys: pytest.CaptureFixture[str]) -> None:
    job = run_dry_run(capsys, "--num_nodes", "2", "--devices", "4")

    assert job["node_count"] == 2
    assert job["process_count"] == 8
    assert job["arguments"][-4:] == ["--num_nodes", "2", "--devices", "4"]


def test_two_node_config_uses_pytorch_configuration() -> None:
    from azureml.core.runconfig import PyTorchConfiguration

    run = innereye_min.configure_run(submit_arguments("--num_nodes=2", "--devices=0,1,2,3"))
    assert run is not None
    config = innereye_min.create_script_run_config(run, REPO, ["--num_nodes=2"])

    assert isinstance(config.run_config.pytorch, PyTorchConfiguration)
    assert config.run_config.pytorch.node_count == 2
    assert config.run_config.pytorch.process_count == 8
    assert config.run_config.node_count == 2
    assert config.run_config.framework == "PyTorch"


def test_dry_run_two_nodes_without_device_count(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = innereye_min.main([*submit_arguments("--num_nodes", "2"), "--dry_run"])

    assert exit_code == 2
    assert capsys.readouterr().err == (
        "innereye_min.py: error: --num_nodes=2 needs the number of devices per node, but "
        "--devices is 'auto'; set --devices to the number of GPUs of one node of the cluster, "
        "as in --devices=4\n"
    )


def test_dry_run_command_line_exit_code() -> None:
    result = run_cli(*submit_arguments("--num_epochs=2"), "--dry_run", cwd=REPO)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["arguments"][-1] == "--num_epochs=2"


def test_missing_cluster_command_line(tmp_path: pathlib.Path) -> None:
    arguments = ["--model", "example_container.Dummy", "--azureml", "--output_to", "runs"]
    result = run_cli(*arguments, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == (
        "innereye_min.py: error: --azureml needs --cluster NAME, the compute cluster of the "
        "workspace to run the job on\n"
    )
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "forms",
    [
        ["--azureml"],
        ["--azureml=true"],
        ["--azureml", "true"],
        ["--azureml", "YES"],
        ["--azureml=1"],
        ["--no-azureml", "--azureml"],
        ["--azureml", "--dry_run"],
        ["--azureml", "--dry_run", "false"],
        ["--azureml", "--dry_run=on", "--no-dry_run"],
    ],
)
def test_job_arguments_remove_submit_flags(forms: list[str]) -> None:
    argv = ["--model", "example_container.Dummy", *forms, "--num_epochs", "2"]

    assert innereye_min.job_arguments(argv) == [
        "--model",
        "example_container.Dummy",
        "--num_epochs",
        "2",
    ]


def test_job_arguments_keep_other_values() -> None:
    argv = ["--tag", "note=--azureml", "--note", "two  words", "--azureml", "--num_epochs", "3"]

    assert innereye_min.job_arguments(argv) == [
        "--tag",
        "note=--azureml",
        "--note",
        "two  words",
        "--num_epochs",
        "3",
    ]


def test_job_arguments_round_trip(tmp_path: pathlib.Path) -> None:
    arguments_file = tmp_path / "args.txt"
    arguments_file.write_text("--note=a value with  spaces\n--azureml\n--hidden_size=8\n")
    argv = [
        "--model",
        "test_innereye_min.PathContainer",
        f"@{arguments_file}",
        "--azureml",
        "yes",
        "--cluster",
        "gpu",
        "--tag",
        "owner=team a",
        "--learning_rate",
        "0.5",
        "--azureml=true",
        "--dry_run",
    ]
    submitted = innereye_min.job_arguments(argv)
    local = innereye_min.configure_run(argv)
    remote = innereye_min.configure_run(submitted)
    assert local is not None
    assert remote is not None

    assert "--note=a value with  spaces" in submitted
    assert innereye_min.resolved_arguments(remote) == innereye_min.resolved_arguments(local)
    assert remote.container.note == "a value with  spaces"
    assert remote.options.tag == ["owner=team a"]
    assert remote.options.cluster == "gpu"
    assert remote.options.azureml is False
    assert remote.options.dry_run is False
    assert vars(remote.options) == {**vars(local.options), "azureml": False, "dry_run": False}


def test_missing_config_json(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, workspace_edge: dict[str, Any]
) -> None:
    workspace_edge["workspace_config"].unlink()
    monkeypatch.chdir(tmp_path)

    with pytest.raises(innereye_min.UsageError, match=r"no config\.json of an Azure ML workspace"):
        innereye_min.connect_to_workspace(None)
    assert workspace_edge["auth"] == []


def test_missing_workspace_config_file(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nowhere.json"

    with pytest.raises(innereye_min.UsageError, match=r"^--workspace_config .*: file not found$"):
        innereye_min.find_workspace_config(missing)


def test_incomplete_config_json(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"subscription_id": "sub"}')

    with pytest.raises(
        innereye_min.UsageError, match=r"config\.json has no valid resource_group, workspace_name; "
    ):
        innereye_min.find_workspace_config(config)


def test_config_json_with_number_is_invalid(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"subscription_id": 5, "resource_group": "rg", "workspace_name": "ws"}')

    with pytest.raises(
        innereye_min.UsageError, match=r"config\.json has no valid subscription_id; "
    ):
        innereye_min.find_workspace_config(config)


def test_config_json_found_in_azureml_folder(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / ".azureml" / "config.json"
    config.parent.mkdir()
    config.write_text('{"subscription_id": "s", "resource_group": "r", "workspace_name": "w"}')
    (tmp_path / "code").mkdir()
    monkeypatch.chdir(tmp_path / "code")

    assert innereye_min.find_workspace_config(None) == config


def test_missing_config_json_command_line(tmp_path: pathlib.Path) -> None:
    arguments = ["--model", "example_container.Dummy", "--azureml", "--cluster", "gpu"]
    result = run_cli(*arguments, "--snapshot_root", str(REPO), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("innereye_min.py: error: no config.json of an Azure ML ")
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_no_terminal_never_logs_in_interactively(
    monkeypatch: pytest.MonkeyPatch, workspace_edge: dict[str, Any]
) -> None:
    import azureml.core.authentication as authentication

    class NoInteractiveLogin:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("an interactive login started without a terminal")

    class AzureCliLogin:
        """Stands in for AzureCliAuthentication, which needs the Azure CLI installed."""

    monkeypatch.setattr(authentication, "InteractiveLoginAuthentication", NoInteractiveLogin)
    monkeypatch.setattr(authentication, "AzureCliAuthentication", AzureCliLogin)
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    for name in innereye_min.SERVICE_PRINCIPAL_ENV:
        monkeypatch.delenv(name)

    innereye_min.connect_to_workspace(workspace_edge["workspace_config"])

    assert [type(auth) for auth in workspace_edge["auth"]] == [AzureCliLogin]


def test_no_terminal_without_azure_cli(
    monkeypatch: pytest.MonkeyPatch, workspace_edge: dict[str, Any]
) -> None:
    from azureml.exceptions import AuthenticationException

    def no_azure_cli() -> Any:
        raise AuthenticationException("azure-cli package is not installed.")

    import azureml.core.authentication as authentication

    monkeypatch.setattr(authentication, "AzureCliAuthentication", no_azure_cli)
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    for name in innereye_min.SERVICE_PRINCIPAL_ENV:
        monkeypatch.delenv(name)

    with pytest.raises(innereye_min.UsageError) as raised:
        innereye_min.connect_to_workspace(workspace_edge["workspace_config"])
    config_file = workspace_edge["workspace_config"]
    assert str(raised.value) == (
        f"Azure ML authentication failed while opening the workspace of {config_file}: "
        "azure-cli package is not installed.; log in with 'az login', or set AZURE_TENANT_ID, "
        "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET to log in as a service principal"
    )


def test_service_principal_login(workspace_edge: dict[str, Any]) -> None:
    workspace = innereye_min.connect_to_workspace(workspace_edge["workspace_config"])

    [auth] = workspace_edge["auth"]
    assert workspace.name == "ws"
    assert isinstance(auth, ServicePrincipalLogin)
    assert auth.arguments == {
        "tenant_id": "tenant",
        "service_principal_id": "client",
        "service_principal_password": SECRET,
    }
    assert workspace_edge["config_path"] == [str(workspace_edge["workspace_config"])]


def test_authentication_failure_hides_secret(
    monkeypatch: pytest.MonkeyPatch, workspace_edge: dict[str, Any]
) -> None:
    import azureml.core
    from azureml.exceptions import AuthenticationException

    def refuse(path: str, auth: Any) -> Any:
        raise AuthenticationException(f"invalid client secret {SECRET} for client")

    monkeypatch.setattr(azureml.core.Workspace, "from_config", staticmethod(refuse))

    with pytest.raises(innereye_min.UsageError) as raised:
        innereye_min.connect_to_workspace(workspace_edge["workspace_config"])
    config_file = workspace_edge["workspace_config"]
    assert str(raised.value).startswith(
        f"Azure ML authentication failed while opening the workspace of {config_file}: "
        "invalid client secret *** for client; log in with"
    )
    assert SECRET not in str(raised.value)


def test_network_failure_message(
    monkeypatch: pytest.MonkeyPatch, workspace_edge: dict[str, Any]
) -> None:
    import azureml.core
    import requests

    def unreachable(path: str, auth: Any) -> Any:
        raise requests.exceptions.ConnectionError("Name or service not known")

    monkeypatch.setattr(azureml.core.Workspace, "from_config", staticmethod(unreachable))

    with pytest.raises(
        innereye_min.UsageError,
        match=r"^cannot reach Azure ML while opening the workspace of .*config\.json: Name or "
        r"service not known; check the network connection",
    ):
        innereye_min.connect_to_workspace(workspace_edge["workspace_config"])


def test_submission_prints_run_and_portal(
    capsys: pytest.CaptureFixture[str],
    workspace_edge: dict[str, Any],
    repository_amlignore: pathlib.Path,
) -> None:
    config = str(workspace_edge["workspace_config"])
    exit_code = innereye_min.main(
        submit_arguments("--workspace_config", config, "--experiment", "e1")
    )
    captured = capsys.readouterr()

    assert exit_code == 0, captured.err
    assert captured.out == (
        "Submitted run Dummy_1700000000_abcdef12 to experiment e1\n"
        "https://portal.invalid/runs/Dummy_1700000000_abcdef12\n"
    )
    [submission] = RecordingExperiment.submissions
    assert submission["experiment"] == "e1"
    assert "--azureml" not in submission["arguments"]
    assert submission["config"].run_config.target == "gpu"
    assert SECRET not in captured.out + captured.err


def test_submission_rejects_unknown_cluster(
    capsys: pytest.CaptureFixture[str], workspace_edge: dict[str, Any]
) -> None:
    argv = submit_arguments("--workspace_config", str(workspace_edge["workspace_config"]))
    argv[argv.index("gpu")] = "cpu-small"

    assert innereye_min.main(argv) == 2
    assert capsys.readouterr().err == (
        "innereye_min.py: error: --cluster cpu-small: workspace ws has no compute target of that "
        "name; choose one of: gpu\n"
    )
    assert RecordingExperiment.submissions == []


def test_amlignore_restored_after_failed_submission(
    capsys: pytest.CaptureFixture[str],
    workspace_edge: dict[str, Any],
    repository_amlignore: pathlib.Path,
) -> None:
    from azureml.exceptions import SnapshotException

    original = b"# the user's own\r\ndata/\nno newline at the end"
    repository_amlignore.write_bytes(original)
    RecordingExperiment.result = SnapshotException("snapshot is larger than 300 MB")
    argv = submit_arguments("--workspace_config", str(workspace_edge["workspace_config"]))

    exit_code = innereye_min.main(argv)

    assert exit_code == 2
    assert capsys.readouterr().err == (
        "innereye_min.py: error: Azure ML failed while submitting the job: SnapshotException: "
        "snapshot is larger than 300 MB\n"
    )
    assert repository_amlignore.read_bytes() == original
    written = RecordingExperiment.submissions[0]["amlignore"].splitlines()
    assert written[:3] == ["# the user's own", "data/", "no newline at the end"]
    assert ".git" in written
    assert ".venv/" in written
    assert "__pycache__/" in written
    assert "/outputs/" in written


def test_amlignore_removed_when_user_had_none(
    workspace_edge: dict[str, Any], repository_amlignore: pathlib.Path
) -> None:
    repository_amlignore.unlink(missing_ok=True)
    RecordingExperiment.result = RuntimeError("service unavailable")
    argv = submit_arguments("--workspace_config", str(workspace_edge["workspace_config"]))

    assert innereye_min.main(argv) == 2
    assert RecordingExperiment.submissions[0]["amlignore"] is not None
    assert not repository_amlignore.exists()


def test_snapshot_ignore_merges_gitignore(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".gitignore").write_text("build/\n")
    (tmp_path / ".amlignore").write_text("data/\n")

    patterns = innereye_min.snapshot_ignore_patterns(tmp_path, tmp_path / "runs" / "today")

    assert patterns[:2] == ["data/", "build/"]
    assert patterns[-1] == "/runs/today/"
    assert patterns[2:-1] == list(innereye_min.SNAPSHOT_EXCLUSIONS)


@pytest.mark.parametrize("status, expected_exit_code", [("Completed", 0), ("Failed", 1)])
def test_wait_for_completion_exit_code(
    capsys: pytest.CaptureFixture[str],
    workspace_edge: dict[str, Any],
    repository_amlignore: pathlib.Path,
    status: str,
    expected_exit_code: int,
) -> None:
    RecordingExperiment.result = SubmittedRun(status=status)
    argv = submit_arguments("--workspace_config", str(workspace_edge["workspace_config"]))

    assert innereye_min.main([*argv, "--wait_for_completion"]) == expected_exit_code


def test_ctrl_c_while_waiting_leaves_job_running(
    caplog: pytest.LogCaptureFixture,
    workspace_edge: dict[str, Any],
    repository_amlignore: pathlib.Path,
) -> None:
    RecordingExperiment.result = SubmittedRun(interrupt=True)
    argv = submit_arguments("--workspace_config", str(workspace_edge["workspace_config"]))

    exit_code = innereye_min.main([*argv, "--wait_for_completion"])

    assert exit_code == 130
    assert (
        "Stopped waiting. The job Dummy_1700000000_abcdef12 keeps running in Azure ML; to "
        "cancel it, use the Cancel button at https://portal.invalid/runs/"
    ) in caplog.text


def test_dry_run_and_submission_show_no_secret(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    workspace_edge: dict[str, Any],
    repository_amlignore: pathlib.Path,
) -> None:
    argv = submit_arguments("--workspace_config", str(workspace_edge["workspace_config"]))

    assert innereye_min.main([*argv, "--dry_run"]) == 0
    assert innereye_min.main(argv) == 0
    captured = capsys.readouterr()

    assert SECRET not in captured.out
    assert SECRET not in captured.err
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(RecordingExperiment.submissions[0]["tags"])


def test_dataset_mounted_into_container_flag(
    monkeypatch: pytest.MonkeyPatch,
    workspace_edge: dict[str, Any],
    repository_amlignore: pathlib.Path,
) -> None:
    import azureml.core
    from azureml.data import FileDataset
    from azureml.data.dataset_consumption_config import DatasetConsumptionConfig

    looked_up = []

    def get_by_name(workspace: Any, name: str) -> FileDataset:
        looked_up.append(name)
        return FileDataset()

    monkeypatch.setattr(azureml.core.Dataset, "get_by_name", staticmethod(get_by_name))
    argv = submit_arguments(
        "--workspace_config",
        str(workspace_edge["workspace_config"]),
        "--azureml_dataset",
        "images",
        "--azureml_dataset_flag",
        "data_folder",
        "--azureml_dataset_mode",
        "download",
    )
    argv[argv.index("example_container.Dummy")] = "test_innereye_min.PathContainer"

    assert innereye_min.main(argv) == 0
    assert looked_up == ["images"]
    config = RecordingExperiment.submissions[0]["config"]
    flag, dataset_input = config.arguments[-2:]
    assert flag == "--data_folder"
    assert isinstance(dataset_input, DatasetConsumptionConfig)
    assert dataset_input.name == "data_folder"
    assert dataset_input.mode == "download"
    pip_packages = list(config.run_config.environment.python.conda_dependencies.pip_packages)
    assert "azureml-dataset-runtime[fuse]" in pip_packages


def test_dry_run_shows_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        *submit_arguments("--azureml_dataset", "images", "--azureml_dataset_flag", "data_folder"),
        "--dry_run",
    ]
    argv[argv.index("example_container.Dummy")] = "test_innereye_min.PathContainer"

    assert innereye_min.main(argv) == 0
    job = json.loads(capsys.readouterr().out)

    assert job["datasets"] == [{"name": "images", "mode": "mount", "flag": "--data_folder"}]
    assert job["arguments"][-2:] == ["--data_folder", "DatasetConsumptionConfig:data_folder"]


def test_dataset_needs_path_flag(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        *submit_arguments("--azureml_dataset", "images", "--azureml_dataset_flag", "note"),
        "--dry_run",
    ]
    argv[argv.index("example_container.Dummy")] = "test_innereye_min.PathContainer"

    assert innereye_min.main(argv) == 2
    assert capsys.readouterr().err == (
        "innereye_min.py: error: --azureml_dataset needs --azureml_dataset_flag naming a path "
        "field of PathContainer to receive the dataset's folder, not 'note'; its path fields: "
        "--data_folder\n"
    )


@pytest.mark.parametrize(
    "text, seconds", [("90m", 5400), ("3.5h", 12600), ("2d", 172800), ("45s", 45)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert innereye_min.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["90", "1.5 weeks", "0m", "-2h", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(
        innereye_min.UsageError,
        match=rf"^invalid --max_run_duration '{text}': use a positive number with the unit",
    ):
        innereye_min.parse_duration(text)


def test_invalid_experiment_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert innereye_min.main([*submit_arguments("--experiment", "my run"), "--dry_run"]) == 2
    assert capsys.readouterr().err == (
        "innereye_min.py: error: invalid experiment name 'my run': Azure ML needs 1 to 255 "
        "letters, digits, '_' and '-', starting with a letter or digit; choose one with "
        "--experiment NAME\n"
    )


def test_invalid_tag(capsys: pytest.CaptureFixture[str]) -> None:
    assert innereye_min.main([*submit_arguments("--tag", "owner"), "--dry_run"]) == 2
    assert capsys.readouterr().err == (
        "innereye_min.py: error: invalid --tag 'owner': write it as KEY=VALUE, as in "
        "--tag owner=me\n"
    )


def test_snapshot_root_must_contain_program(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    argv = [*submit_arguments(), "--snapshot_root", str(tmp_path), "--dry_run"]

    assert innereye_min.main(argv) == 2
    assert capsys.readouterr().err.startswith(
        f"innereye_min.py: error: --snapshot_root {tmp_path}: innereye_min.py "
        f"{REPO / 'innereye_min.py'} lies outside it"
    )


def test_conda_env_without_python(tmp_path: pathlib.Path) -> None:
    conda_file = tmp_path / "environment.yml"
    conda_file.write_text("name: job\ndependencies:\n  - numpy\n")

    environment = innereye_min.create_environment(conda_file, with_dataset=False)
    dependencies = environment.python.conda_dependencies

    assert dependencies.get_python_version() == innereye_min.AZUREML_PYTHON_VERSION
    assert "azureml-core" in list(dependencies.pip_packages)
    assert environment.docker.base_image == innereye_min.AZUREML_DOCKER_IMAGE


def test_conda_env_with_old_python(tmp_path: pathlib.Path) -> None:
    conda_file = tmp_path / "environment.yml"
    conda_file.write_text("name: job\ndependencies:\n  - python=3.8\n  - pip\n")

    with pytest.raises(
        innereye_min.UsageError,
        match=r"python=3\.8 is older than 3\.10, the oldest Python that innereye_min\.py runs on",
    ):
        innereye_min.create_environment(conda_file, with_dataset=False)


def test_conda_env_missing(tmp_path: pathlib.Path) -> None:
    with pytest.raises(innereye_min.UsageError, match=r"^--conda_env .*: file not found$"):
        innereye_min.create_environment(tmp_path / "missing.yml", with_dataset=False)


def test_environment_name_follows_contents(tmp_path: pathlib.Path) -> None:
    conda_file = tmp_path / "environment.yml"
    conda_file.write_text("name: job\ndependencies:\n  - python=3.11\n  - pip\n")
    first = innereye_min.create_environment(conda_file, with_dataset=False).name
    second = innereye_min.create_environment(conda_file, with_dataset=False).name
    conda_file.write_text("name: job\ndependencies:\n  - python=3.12\n  - pip\n")
    changed = innereye_min.create_environment(conda_file, with_dataset=False).name

    assert first == second
    assert changed != first


def test_missing_azureml_core(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "azureml", None)
    monkeypatch.setitem(sys.modules, "azureml.core", None)

    assert innereye_min.main([*submit_arguments(), "--dry_run"]) == 2
    assert capsys.readouterr().err == (
        "innereye_min.py: error: --azureml needs azureml-core, which is not installed; install "
        "it with python -m pip install 'azureml-core>=1.55'\n"
    )


def recording_run() -> Any:
    """Return a test double of an Azure ML run that checks every call against Run's signature."""
    from azureml.core import Run

    return mock.create_autospec(Run, instance=True)


def test_logger_logs_single_numbers() -> None:
    run = recording_run()
    azureml_logger = innereye_min.AzureMLLogger(run)

    azureml_logger.log_metrics(
        {
            "loss": torch.tensor([0.5]),
            " val/acc (%) ": numpy.float32(0.25),
            "count": numpy.int64(3),
            "improved": True,
            "epoch": 2,
        },
        step=7,
    )

    assert run.log.call_args_list == [
        mock.call("loss", 0.5, step=7),
        mock.call("val/acc ___", 0.25, step=7),
        mock.call("count", 3.0, step=7),
        mock.call("improved", 1.0, step=7),
        mock.call("epoch", 2.0, step=7),
    ]
    assert all(type(call.args[1]) is float for call in run.log.call_args_list)


def test_logger_skips_other_values_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    run = recording_run()
    azureml_logger = innereye_min.AzureMLLogger(run)

    for step in range(3):
        azureml_logger.log_metrics({"weights": torch.ones(3), "label": "cat"}, step=step)

    run.log.assert_not_called()
    warnings = [record.getMessage() for record in caplog.records if record.name == "innereye_min"]
    assert warnings == [
        "Azure ML logger: skipping metric 'weights', whose value of type Tensor is not a single "
        "number",
        "Azure ML logger: skipping metric 'label', whose value of type str is not a single number",
    ]


def test_logger_logs_hyperparameters_once() -> None:
    run = recording_run()
    azureml_logger = innereye_min.AzureMLLogger(run)

    azureml_logger.log_hyperparams({"learning_rate": 0.01, "hidden_size": 16})
    azureml_logger.log_hyperparams({"learning_rate": 0.5})

    run.log_table.assert_called_once_with(
        "hyperparameters", {"name": ["learning_rate", "hidden_size"], "value": ["0.01", "16"]}
    )


def test_logger_flushes_when_training_ends() -> None:
    run = recording_run()

    innereye_min.AzureMLLogger(run).finalize("success")

    run.flush.assert_called_once_with()


def test_logger_logs_from_rank_zero_only(monkeypatch: pytest.MonkeyPatch) -> None:
    run = recording_run()
    azureml_logger = innereye_min.AzureMLLogger(run)
    monkeypatch.setattr(innereye_min.rank_zero_only, "rank", 1)

    azureml_logger.log_metrics({"loss": 1.0}, step=1)
    azureml_logger.log_hyperparams({"learning_rate": 0.01})
    azureml_logger.finalize("success")

    assert run.mock_calls == []


def test_logger_with_offline_run_does_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from azureml.core import Run

    offline_run = Run.get_context()
    azureml_logger = innereye_min.AzureMLLogger(offline_run)

    azureml_logger.log_metrics({"loss": 1.0}, step=1)
    azureml_logger.log_hyperparams({"learning_rate": 0.01})
    azureml_logger.finalize("success")

    assert azureml_logger.enabled is False
    assert azureml_logger.version == offline_run.id
    # The offline run prints every call that it gets.
    assert capsys.readouterr().out == ""


def test_logger_outside_azureml_does_nothing() -> None:
    azureml_logger = innereye_min.AzureMLLogger()

    azureml_logger.log_metrics({"loss": 1.0}, step=1)
    azureml_logger.finalize("success")

    assert azureml_logger.run is None
    assert azureml_logger.enabled is False


def test_incomplete_job_context_is_no_job(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the other job variables, azureml-core returns an offline run, offline.
    monkeypatch.setenv(innereye_min.AZUREML_RUN_ID_ENV, "a_run")

    assert innereye_min.get_azureml_run() is None


def test_pytorch_job_variables_reach_lightning(monkeypatch: pytest.MonkeyPatch) -> None:
    job_variables = {
        "MASTER_ADDR": "10.0.0.4",
        "MASTER_PORT": "6105",
        "NODE_RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "4",
        "RANK": "3",
    }
    for name, value in job_variables.items():
        monkeypatch.setenv(name, value)

    assert innereye_min.distributed_environment_variables(os.environ) == {}
    trainer = pl.Trainer(accelerator="cpu", devices=2, num_nodes=2, strategy="ddp", logger=False)

    assert trainer.node_rank == 1
    assert trainer.local_rank == 1
    assert trainer.global_rank == 3
    assert trainer.world_size == 4
    environment = trainer.strategy.cluster_environment
    assert environment.main_address == "10.0.0.4"
    assert environment.main_port == 6105
    innereye_min.check_world_size(trainer, os.environ)


def test_mpi_job_variables() -> None:
    mpi_variables = {
        "OMPI_COMM_WORLD_RANK": "6",
        "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_RANK": "2",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
        "AZ_BATCH_MASTER_NODE": "10.0.0.4:6105",
    }

    assert innereye_min.distributed_environment_variables(mpi_variables) == {
        "MASTER_ADDR": "10.0.0.4",
        "MASTER_PORT": "6105",
        "NODE_RANK": "1",
        "LOCAL_RANK": "2",
        "WORLD_SIZE": "8",
        "RANK": "6",
    }


def test_mpi_job_variables_reach_lightning(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "OMPI_COMM_WORLD_RANK": "5",
        "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
        "AZ_BATCH_MASTER_NODE": "10.0.0.4:6105",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK"):
        # Setting first makes monkeypatch remove what apply_distributed_environment sets.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)

    innereye_min.apply_distributed_environment()
    trainer = pl.Trainer(accelerator="cpu", devices=4, num_nodes=2, strategy="ddp", logger=False)

    assert innereye_min.rank_zero_only.rank == 5
    assert trainer.node_rank == 1
    assert trainer.local_rank == 1
    assert trainer.global_rank == 5
    assert trainer.strategy.cluster_environment.main_address == "10.0.0.4"
    innereye_min.check_world_size(trainer, os.environ)


def test_missing_variables_mean_one_node() -> None:
    assert innereye_min.distributed_environment_variables({}) == {}
    assert innereye_min.distributed_environment_variables({"OMPI_COMM_WORLD_RANK": "0"}) == {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": innereye_min.SINGLE_NODE_MASTER_PORT,
        "NODE_RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "RANK": "0",
    }


def test_mpi_on_several_nodes_needs_master() -> None:
    mpi_variables = {
        "OMPI_COMM_WORLD_RANK": "0",
        "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
    }

    with pytest.raises(
        innereye_min.UsageError,
        match=r"^an MPI job with 8 processes on 2 nodes has no AZ_BATCH_MASTER_NODE",
    ):
        innereye_min.distributed_environment_variables(mpi_variables)


def test_world_size_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "8"}.items():
        monkeypatch.setenv(name, value)
    trainer = pl.Trainer(accelerator="cpu", devices=2, num_nodes=2, strategy="ddp", logger=False)

    with pytest.raises(
        innereye_min.UsageError,
        match=r"^8 processes were started \(WORLD_SIZE=8\), but the Trainer expects "
        r"num_nodes x devices = 2 x 2 = 4; ",
    ):
        innereye_min.check_world_size(trainer, os.environ)


def inside_azureml_job(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Pretend that this process runs in an Azure ML job; return the job's recording run."""
    run = recording_run()
    run.id = "Dummy_1700000000_abcdef12"
    monkeypatch.setattr(innereye_min, "get_azureml_run", lambda: run)
    return run


def test_job_writes_to_outputs_and_logs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    run = inside_azureml_job(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO))
    argv = ["--model", "example_container.Dummy", "--num_epochs", "1", "--accelerator", "cpu"]

    assert innereye_min.main(argv) == 0

    assert (tmp_path / "outputs" / "args.txt").is_file()
    assert (tmp_path / "outputs" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "logs" / "csv" / "metrics.csv").is_file()
    assert (tmp_path / "logs" / "innereye_min.log").is_file()
    assert not (tmp_path / "outputs" / "logs").exists()
    logged_names = {call.args[0] for call in run.log.call_args_list}
    assert {"train_loss", "val_loss"} <= logged_names
    assert all("step" in call.kwargs for call in run.log.call_args_list)
    run.flush.assert_called()


def test_restarted_job_resumes_from_last_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    inside_azureml_job(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO))
    argv = ["--model", "example_container.Dummy", "--accelerator", "cpu"]
    assert innereye_min.main([*argv, "--num_epochs", "1"]) == 0
    checkpoint = tmp_path / "outputs" / "checkpoints" / "last.ckpt"
    first_epoch = torch.load(checkpoint, weights_only=False)["epoch"]

    assert innereye_min.main([*argv, "--num_epochs", "2"]) == 0

    assert f"Azure ML restarted this job: resuming training from {checkpoint}" in caplog.text
    assert torch.load(checkpoint, weights_only=False)["epoch"] == first_epoch + 1
    # The metrics of the first attempt stay, and the restarted job adds its epoch below them.
    rows = read_csv(tmp_path / "logs" / "csv" / "metrics.csv")
    assert [int(row["epoch"]) for row in rows if row["val_loss"]] == [0, 1]


def test_no_resume_outside_azureml(tmp_path: pathlib.Path) -> None:
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")

    assert innereye_min.azureml_checkpoint_to_resume(tmp_path) is None


# ---------------------------------------------------------------------------------------------
# Mistakes a user makes, and what they leave behind
# ---------------------------------------------------------------------------------------------


def test_model_file_without_class() -> None:
    with pytest.raises(UsageError, match=r"a file must be a \.py file followed by the class"):
        innereye_min.load_container_class("models/my_models.py")
    with pytest.raises(UsageError, match=r"a file must be a \.py file followed by the class"):
        innereye_min.load_container_class("models/my_models.txt:Container")


def test_model_base_class_is_rejected() -> None:
    with pytest.raises(UsageError, match=r"LightningContainer is the abstract base class"):
        innereye_min.load_container_class("innereye_min.LightningContainer")


def test_args_file_skips_empty_lines(tmp_path: pathlib.Path) -> None:
    args_file = tmp_path / "args.txt"
    args_file.write_text("--model=example_container.Dummy\n\n--hidden_size=5\n  \n")

    run = innereye_min.configure_run([f"@{args_file}"])

    assert run is not None
    assert run.container.hidden_size == 5


def test_args_file_has_absolute_model_path(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_models.py").write_text(
        "from example_container import Dummy\nclass MyDummy(Dummy):\n    pass\n"
    )
    monkeypatch.chdir(tmp_path)

    run = configure(model="my_models.py:MyDummy")

    assert f"--model={tmp_path.resolve() / 'my_models.py'}:MyDummy" in (
        innereye_min.resolved_arguments(run)
    )


def test_precision_64_runs_inference(tmp_path: pathlib.Path) -> None:
    result = run_cli(
        "--model=example_container.Dummy", "--num_epochs=1", "--precision=64-true", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    run_folder = only_run_folder(tmp_path / "outputs")
    assert len(read_csv(run_folder / "inference" / "test_predictions.csv")) == 100


def test_failure_is_in_log_file(tmp_path: pathlib.Path) -> None:
    module_file = tmp_path / "failing.py"
    module_file.write_text(
        "from example_container import Dummy, DummyModule\n"
        "class FailingModule(DummyModule):\n"
        "    def training_step(self, batch, batch_idx):\n"
        "        raise RuntimeError('the training step failed')\n"
        "class Failing(Dummy):\n"
        "    def create_lightning_module(self):\n"
        "        return FailingModule(hidden_size=4)\n"
    )

    result = run_cli("--model", f"{module_file}:Failing", "--num_epochs=1", cwd=tmp_path)

    assert result.returncode == 1
    log = (only_run_folder(tmp_path / "outputs") / "logs" / "innereye_min.log").read_text()
    assert "The run failed" in log
    assert "RuntimeError: the training step failed" in log


def test_failed_resume_keeps_args_file(tmp_path: pathlib.Path) -> None:
    first = run_cli("--model=example_container.Dummy", "--num_epochs=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_folder = only_run_folder(tmp_path / "outputs")
    args_before = (run_folder / "args.txt").read_text()

    # A different layer width cannot load the saved weights.
    failed = run_cli(f"--resume_from={run_folder}", "--hidden_size=8", cwd=tmp_path)

    assert failed.returncode == 1
    assert (run_folder / "args.txt").read_text() == args_before


def test_resume_rejects_other_model(tmp_path: pathlib.Path) -> None:
    first = run_cli("--model=example_container.Dummy", "--num_epochs=2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_folder = only_run_folder(tmp_path / "outputs")

    with pytest.raises(UsageError, match=r"was trained with --model example_container.Dummy"):
        configure(f"--resume_from={run_folder}", model="test_innereye_min.BoringContainer")
    with pytest.raises(UsageError, match=r"already holds epoch 2; give at least --num_epochs=2"):
        innereye_min.configure_run([f"--resume_from={run_folder}", "--num_epochs=1"])


def test_job_model_file_relative_to_snapshot(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = tmp_path / "project"
    (snapshot / "models").mkdir(parents=True)
    for name in ("innereye_min.py", "example_container.py", "requirements.txt"):
        (snapshot / name).write_bytes((REPO / name).read_bytes())
    (snapshot / "models" / "mine.py").write_text(
        "from example_container import Dummy\nclass Mine(Dummy):\n    pass\n"
    )
    monkeypatch.chdir(snapshot / "models")
    monkeypatch.setattr(innereye_min, "__file__", str(snapshot / "innereye_min.py"))

    exit_code = innereye_min.main(
        [
            "--model=mine.py:Mine",
            "--azureml",
            "--cluster=gpu",
            f"--snapshot_root={snapshot}",
            "--dry_run",
        ]
    )

    captured = capsys.readouterr()
    assert exit_code == 0, captured.err
    arguments = json.loads(captured.out)["arguments"]
    assert arguments[0] == "--model=models/mine.py:Mine"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--tag", "container=other"], r"every job gets the tag 'container' from the runner"),
        (["--experiment="], r"invalid experiment name ''"),
        (["--azureml_dataset=", "--azureml_dataset_flag=x"], r"invalid --azureml_dataset ''"),
    ],
)
def test_submission_rejects_value(
    capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert innereye_min.main([*submit_arguments(*arguments), "--dry_run"]) == 2
    assert re.search(message, capsys.readouterr().err)
