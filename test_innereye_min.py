"""Tests of innereye_min: the container contract, the runner, and the command-line bridge.

Tests that are about processes (exit codes, files a run leaves, DDP) run the real command line in
a subprocess, under a timeout. The rest call the functions of innereye_min directly.
"""

from __future__ import annotations

import abc
import csv
import datetime
import enum
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import param
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.demos.boring_classes import BoringDataModule, BoringModel

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
    """Lightning's own BoringModel, with the mixins that the contract asks for."""

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
        second_checkpoint = None
        while second_checkpoint is None and time.monotonic() < deadline:
            time.sleep(0.01)
            second_checkpoint = next(tmp_path.glob("outputs/*/checkpoints/epoch=1-*.ckpt"), None)
        assert second_checkpoint is not None, "the run saved no second checkpoint in time"
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
