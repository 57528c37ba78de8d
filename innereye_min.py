"""innereye_min: train your own PyTorch Lightning model from a container class, with one command.

This is one file that you copy into your repository. It implements the "bring your own Lightning
model" contract of Microsoft's InnerEye toolbox with nothing but torch, pytorch-lightning (2.6+) and
param (azureml-core only for Azure ML runs). Tested with Python 3.11, torch 2.13, pytorch-lightning
2.6, param 2.4 and azureml-core 1.61.

You write a `LightningContainer` subclass. Its `create_lightning_module()` returns a LightningModule
that also inherits `OutputParams` and `TrainerParams` (most easily by deriving from
`LightningWithInference`), and its `get_training_data_module()` returns a LightningDataModule. Then:

    python innereye_min.py --model example_container.Dummy --num_epochs=5
    python innereye_min.py --model path/to/my_models.py:MyContainer --help
    python innereye_min.py @outputs/<run folder>/args.txt          # replay a run's configuration
    python innereye_min.py --resume_from=outputs/<run folder>      # continue a killed run
    python innereye_min.py --model example_container.Dummy --accelerator=cpu --devices=2  # DDP

Every `param` field of the container and of the module it creates is a command-line flag. A run
writes everything into a new folder `outputs/<UTC timestamp>_<container class>/`:

    args.txt               the model and every resolved flag, one per line, replayable with @
    checkpoints/last.ckpt  the state after the last epoch, beside the newest periodic checkpoint
    logs/csv/metrics.csv   every metric that the module logs
    logs/innereye_min.log  this program's own log
    ...                    whatever the module writes into `self.outputs_folder`

After training, the trained module runs inference on `get_inference_data_module()` through the
hooks of `LightningWithInference` (or Lightning's test loop, when the module only has `test_step`).

Exit codes: 0 on success, 2 for a usage error (one line on standard error, nothing written to
disk), 1 when training or inference fails (with the traceback).
"""

from __future__ import annotations

import abc
import argparse
import csv
import dataclasses
import datetime
import difflib
import enum
import importlib
import importlib.util
import inspect
import itertools
import json
import logging
import os
import pathlib
import sys
import traceback
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import param
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments.lsf import LSFEnvironment
from lightning_fabric.plugins.environments.mpi import MPIEnvironment
from lightning_fabric.plugins.environments.slurm import SLURMEnvironment
from lightning_fabric.plugins.environments.torchelastic import TorchElasticEnvironment
from lightning_fabric.utilities.exceptions import MisconfigurationException
from param.parameterized import ParameterizedMetaclass
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

logger = logging.getLogger(__name__)

PROGRAM = "innereye_min.py"

# The Lightning DDP launcher starts each extra process by running this script again with the same
# arguments. The first process names its run folder here, so that every process writes to it.
RUN_FOLDER_ENV = "INNEREYE_MIN_RUN_FOLDER"


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class UsageError(Exception):
    """A mistake in the command line or in a container: reported as one line, with exit code 2."""


# ---------------------------------------------------------------------------------------------
# Parameter mixins
# ---------------------------------------------------------------------------------------------


class OutputParams(param.Parameterized):
    """The folders that a module writes its files into, set by the runner before training."""

    outputs_folder = param.ClassSelector(
        class_=pathlib.Path,
        default=pathlib.Path("outputs"),
        constant=True,
        doc="Folder for every file that the module writes. Azure ML uploads it when a job ends.",
    )
    logs_folder = param.ClassSelector(
        class_=pathlib.Path,
        default=pathlib.Path("outputs") / "logs",
        constant=True,
        doc="Folder for log files. Azure ML uploads it while a job runs.",
    )


class TrainerParams(param.Parameterized):
    """Settings of the Lightning Trainer, named as the Trainer names them."""

    num_epochs = param.Integer(
        default=10, bounds=(1, None), doc="Number of training epochs (the Trainer's max_epochs)."
    )
    accelerator: param.Selector[str] = param.Selector(
        objects=["auto", "cpu", "gpu", "cuda", "mps", "tpu"],
        default="auto",
        doc="Hardware to train on; 'auto' takes a GPU when there is one.",
    )
    devices = param.String(
        default="auto",
        doc="Devices per node: a count such as 2, a list of indices such as '0,1', -1 for all, "
        "or 'auto'. More than one device trains with DDP.",
    )
    num_nodes = param.Integer(default=1, bounds=(1, None), doc="Number of machines to train on.")
    precision: param.Selector[str] = param.Selector(
        objects=["32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"],
        default="32-true",
        doc="Floating-point precision of training.",
    )
    deterministic = param.Boolean(
        default=False, doc="Use only deterministic algorithms in PyTorch (slower, repeatable)."
    )
    gradient_clip_val = param.Number(
        default=None,
        bounds=(0, None),
        allow_None=True,
        doc="Clip the gradient norm at this value; None does not clip.",
    )
    accumulate_grad_batches = param.Integer(
        default=1, bounds=(1, None), doc="Add up the gradients of this many batches per step."
    )
    check_val_every_n_epoch = param.Integer(
        default=1, bounds=(1, None), doc="Run validation after every this many epochs."
    )
    limit_train_batches = param.Number(
        default=1.0,
        bounds=(0, None),
        doc="Batches per training epoch: a fraction when written with a point (0.25), "
        "else a count (10).",
    )
    limit_val_batches = param.Number(
        default=1.0,
        bounds=(0, None),
        doc="Batches per validation: a fraction when written with a point (0.25), "
        "else a count (10).",
    )
    num_sanity_val_steps = param.Integer(
        default=2,
        bounds=(-1, None),
        doc="Validation batches to run before training as a check; -1 runs all, 0 none.",
    )
    checkpoint_every_n_epochs = param.Integer(
        default=1,
        bounds=(1, None),
        doc="Save a checkpoint, and refresh checkpoints/last.ckpt, after every this many epochs.",
    )


class OptimizerParams(param.Parameterized):
    """The optimizer and learning-rate schedule of a module that does not write its own.

    A `LightningWithInference` module that inherits this class and does not define
    `configure_optimizers` gets the optimizer and schedule that these fields describe.
    """

    optimizer: param.Selector[str] = param.Selector(
        objects=["Adam", "AdamW", "SGD", "RMSprop"],
        default="Adam",
        doc="Optimizer class from torch.optim.",
    )
    learning_rate = param.Number(
        default=1e-3, bounds=(0, None), inclusive_bounds=(False, True), doc="Learning rate."
    )
    weight_decay = param.Number(default=0.0, bounds=(0, None), doc="Weight decay (L2 penalty).")
    momentum = param.Number(
        default=0.9,
        bounds=(0, 1),
        inclusive_bounds=(True, False),
        doc="Momentum of SGD and RMSprop.",
    )
    betas = param.NumericTuple(
        default=(0.9, 0.999), length=2, doc="Adam and AdamW coefficients of the running averages."
    )
    lr_scheduler: param.Selector[str] = param.Selector(
        objects=["none", "step", "multistep", "exponential", "cosine"],
        default="none",
        doc="Learning-rate schedule, stepped once per epoch: torch's StepLR, MultiStepLR, "
        "ExponentialLR or CosineAnnealingLR.",
    )
    lr_step_size = param.Integer(
        default=50, bounds=(1, None), doc="Epochs between two decays of the 'step' schedule."
    )
    lr_milestones = param.List(
        default=[50, 100],
        item_type=int,
        doc="Epochs at which the 'multistep' schedule decays the learning rate.",
    )
    lr_gamma = param.Number(
        default=0.1,
        bounds=(0, 1),
        inclusive_bounds=(False, True),
        doc="Decay factor of the 'step', 'multistep' and 'exponential' schedules.",
    )
    lr_warmup_epochs = param.Integer(
        default=0,
        bounds=(0, None),
        doc="Epochs over which the learning rate rises linearly to learning_rate before the "
        "schedule starts.",
    )

    def create_optimizers(
        self, parameters: Iterable[torch.nn.Parameter], num_epochs: int
    ) -> dict[str, Any]:
        """Build the optimizer and scheduler, in the form that `configure_optimizers` returns."""
        parameters = list(parameters)
        betas = (float(self.betas[0]), float(self.betas[1]))
        optimizer: torch.optim.Optimizer
        if self.optimizer == "Adam":
            optimizer = torch.optim.Adam(
                parameters, lr=self.learning_rate, betas=betas, weight_decay=self.weight_decay
            )
        elif self.optimizer == "AdamW":
            optimizer = torch.optim.AdamW(
                parameters, lr=self.learning_rate, betas=betas, weight_decay=self.weight_decay
            )
        elif self.optimizer == "SGD":
            optimizer = torch.optim.SGD(
                parameters,
                lr=self.learning_rate,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
            )
        else:
            optimizer = torch.optim.RMSprop(
                parameters,
                lr=self.learning_rate,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
            )

        scheduler = self._create_scheduler(optimizer, num_epochs)
        if scheduler is None:
            return {"optimizer": optimizer}
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def _create_scheduler(
        self, optimizer: torch.optim.Optimizer, num_epochs: int
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        warmup = self.lr_warmup_epochs
        schedule: torch.optim.lr_scheduler.LRScheduler | None = None
        if self.lr_scheduler == "step":
            schedule = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=self.lr_step_size, gamma=self.lr_gamma
            )
        elif self.lr_scheduler == "multistep":
            schedule = torch.optim.lr_scheduler.MultiStepLR(
                optimizer, milestones=self.lr_milestones, gamma=self.lr_gamma
            )
        elif self.lr_scheduler == "exponential":
            schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.lr_gamma)
        elif self.lr_scheduler == "cosine":
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(1, num_epochs - warmup)
            )
        if warmup == 0:
            return schedule

        # The warm-up multiplies the learning rate by 1/(w+1), 2/(w+1), ... and reaches the full
        # rate at epoch w, where the chosen schedule takes over.
        warmup_schedule = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
        )
        if schedule is None:
            return warmup_schedule
        return torch.optim.lr_scheduler.SequentialLR(
            optimizer, schedulers=[warmup_schedule, schedule], milestones=[warmup]
        )


# ---------------------------------------------------------------------------------------------
# The container contract
# ---------------------------------------------------------------------------------------------


class ModelExecutionMode(enum.Enum):
    """The dataset split that inference runs on."""

    TRAIN = "Train"
    VAL = "Val"
    TEST = "Test"


class LightningWithInference(pl.LightningModule, OutputParams, TrainerParams):
    """A LightningModule with the inference hooks that the runner calls after training.

    After training, the runner puts the module in eval mode and, without gradients, calls
    `on_inference_start()`; then for each chosen split `on_inference_epoch_start(split, False)`,
    `forward` and `inference_step` for each batch, and `on_inference_epoch_end()`; and finally
    `on_inference_end()`. Every hook does nothing unless you override it. A module that does not
    override `inference_step` gets Lightning's test loop (`test_step`) instead, if it has one.

    A module that also inherits `OptimizerParams` and does not define `configure_optimizers`
    gets the optimizer and schedule that those fields describe.
    """

    # nn.Module.__init__ does not call the next __init__ in the MRO unless asked to. Without
    # Parameterized.__init__, instances would share mutable param defaults such as lists.
    call_super_init = True

    def configure_optimizers(self) -> Any:
        if not isinstance(self, OptimizerParams):
            raise NotImplementedError(
                f"{type(self).__name__} must define configure_optimizers or inherit OptimizerParams"
            )
        return self.create_optimizers(self.parameters(), self.num_epochs)

    def on_inference_start(self) -> None:
        """Prepare for inference, for example open files in `self.outputs_folder`."""

    def on_inference_epoch_start(
        self, dataset_split: ModelExecutionMode, is_ensemble_model: bool
    ) -> None:
        """Start inference on one split. `is_ensemble_model` is always False in innereye_min."""

    def inference_step(self, batch: Any, batch_idx: int, model_output: Any) -> None:
        """Handle one batch: `model_output` is `forward` applied to the batch's inputs.

        The inputs are `batch[0]` when the batch is a tuple or list (the usual `(inputs, targets)`
        convention), and the whole batch otherwise. The batch is already on the module's device.
        """

    def on_inference_epoch_end(self) -> None:
        """Finish inference on the current split, for example write its metrics."""

    def on_inference_end(self) -> None:
        """Finish inference on all splits."""


class _ContainerMeta(abc.ABCMeta, ParameterizedMetaclass):
    """Lets a container be both a param class and an abstract class, also mixed with a user ABC."""


class LightningContainer(param.Parameterized, metaclass=_ContainerMeta):
    """Everything the runner needs to train one model: the module, its data and its settings.

    Subclass it, implement the two abstract methods, and declare your hyperparameters as `param`
    fields: each becomes a command-line flag, applied before `create_lightning_module()` runs.
    """

    random_seed = param.Integer(
        default=42,
        doc="Seed for Python, numpy and torch, and for DataLoader workers, set before the module "
        "and its data are created.",
    )
    inference_on_train_set = param.Boolean(
        default=False, doc="Run inference on the training set after training."
    )
    inference_on_val_set = param.Boolean(
        default=True, doc="Run inference on the validation set after training."
    )
    inference_on_test_set = param.Boolean(
        default=True, doc="Run inference on the test set after training."
    )

    @abc.abstractmethod
    def create_lightning_module(self) -> pl.LightningModule:
        """Return the module to train. It must inherit `OutputParams` and `TrainerParams`."""

    @abc.abstractmethod
    def get_training_data_module(self) -> pl.LightningDataModule:
        """Return the data module with the training and validation data (and test data)."""

    def get_inference_data_module(self) -> pl.LightningDataModule:
        """Return the data module for inference: by default, a new training data module."""
        return self.get_training_data_module()

    def get_trainer_arguments(self) -> dict[str, Any]:
        """Return extra keyword arguments for `pl.Trainer`. They override the runner's own."""
        return {}

    def get_callbacks(self) -> list[Callback]:
        """Return extra Lightning callbacks, added after the runner's checkpoint callback."""
        return []

    def inference_splits(self) -> list[ModelExecutionMode]:
        """Return the splits that inference runs on, as chosen by the inference_on_* flags."""
        chosen = [
            (self.inference_on_train_set, ModelExecutionMode.TRAIN),
            (self.inference_on_val_set, ModelExecutionMode.VAL),
            (self.inference_on_test_set, ModelExecutionMode.TEST),
        ]
        return [split for is_chosen, split in chosen if is_chosen]


# ---------------------------------------------------------------------------------------------
# Loading a container by name
# ---------------------------------------------------------------------------------------------


def load_container_class(name: str) -> type[LightningContainer]:
    """Import the container class that `--model` names: `module.Class` or `path/file.py:Class`."""
    module_path, separator, class_name = name.rpartition(":")
    if separator and module_path.endswith(".py"):
        module = _import_file(pathlib.Path(module_path), name)
    else:
        module_name, _, class_name = name.rpartition(".")
        if not module_name or not class_name:
            raise UsageError(
                f"--model must be 'module.Class' or 'path/to/file.py:Class', not {name!r}"
            )
        module = _import_module(module_name)

    container_class = getattr(module, class_name, None)
    if container_class is None:
        defined = sorted(
            member_name
            for member_name, member in vars(module).items()
            if _is_container_class(member)
        )
        closest = difflib.get_close_matches(class_name, defined, n=1)
        hint = f" Did you mean {closest[0]!r}?" if closest else ""
        listing = ", ".join(defined) if defined else "none"
        raise UsageError(
            f"--model {name}: module {module.__name__!r} has no class {class_name!r}.{hint} "
            f"Containers it defines: {listing}"
        )
    if not _is_container_class(container_class):
        raise UsageError(
            f"--model {name}: {class_name} is not a subclass of innereye_min.LightningContainer; "
            "derive it from LightningContainer"
        )
    if inspect.isabstract(container_class):
        missing = ", ".join(sorted(container_class.__abstractmethods__))
        raise UsageError(
            f"--model {name}: container {class_name} does not implement {missing}; "
            "add these methods to it"
        )
    return container_class


def _is_container_class(value: object) -> typing.TypeGuard[type[LightningContainer]]:
    return (
        inspect.isclass(value)
        and issubclass(value, LightningContainer)
        and value is not LightningContainer
    )


def _import_module(module_name: str) -> Any:
    # `python innereye_min.py` puts this file's folder on sys.path, not the current folder.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (
            module_name == error.name or module_name.startswith(error.name + ".")
        ):
            raise UsageError(
                f"--model: module {module_name!r} not found in the current folder or on "
                "sys.path; check the spelling, or give a file as path/to/file.py:Class"
            ) from None
        raise UsageError(_describe_import_failure(module_name, error)) from error
    except Exception as error:
        raise UsageError(_describe_import_failure(module_name, error)) from error


def _import_file(path: pathlib.Path, name: str) -> Any:
    if not path.is_file():
        raise UsageError(f"--model {name}: file {str(path)!r} not found")
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--model {name}: cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # The module must be in sys.modules while it runs, so that dataclasses and pickling find it.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise UsageError(_describe_import_failure(str(path), error)) from error
    return module


def _describe_import_failure(module_name: str, error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return (
        f"--model: importing {module_name!r} raised {type(error).__name__}: {error}{where}; "
        "fix that error in the module"
    )


def check_lightning_module(module: object, container: LightningContainer) -> pl.LightningModule:
    """Check that the module from `create_lightning_module()` meets the contract, and return it."""
    container_name = type(container).__name__
    if not isinstance(module, pl.LightningModule):
        raise UsageError(
            f"{container_name}.create_lightning_module() returned {type(module).__name__}, "
            "not a LightningModule; return an instance of a LightningWithInference subclass"
        )
    module_name = type(module).__name__
    missing = [
        mixin.__name__ for mixin in (OutputParams, TrainerParams) if not isinstance(module, mixin)
    ]
    if missing:
        raise UsageError(
            f"{module_name} does not inherit {' and '.join(missing)}; derive it from "
            "innereye_min.LightningWithInference, or add the missing classes to its bases"
        )

    # LightningModule.configure_optimizers is only a placeholder, and LightningWithInference's
    # version needs OptimizerParams. Find which class supplies the method that Lightning calls.
    supplier = next(cls for cls in type(module).__mro__ if "configure_optimizers" in vars(cls))
    if supplier is pl.LightningModule or (
        supplier is LightningWithInference and not isinstance(module, OptimizerParams)
    ):
        raise UsageError(
            f"{module_name} has no configure_optimizers; define that method, or derive the module "
            "from innereye_min.LightningWithInference and OptimizerParams to set the optimizer "
            "with flags"
        )
    return module


# ---------------------------------------------------------------------------------------------
# The command-line bridge: param fields become flags
# ---------------------------------------------------------------------------------------------

_TRUE_WORDS = ("true", "yes", "on", "1", "t", "y")
_FALSE_WORDS = ("false", "no", "off", "0", "f", "n")


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError, so that every usage error is reported alike."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(message)


@dataclasses.dataclass
class _Flag:
    """One command-line flag made from a param field, and the objects it sets."""

    name: str
    parameter: param.Parameter[Any]
    owner: str
    targets: list[param.Parameterized]
    convert: Callable[[str], Any]


def create_runner_parser() -> argparse.ArgumentParser:
    """Create the parser of the runner's own flags, which come before any container is loaded."""
    parser = _ArgumentParser(
        prog=PROGRAM,
        usage=f"{PROGRAM} --model NAME [flags]   (or {PROGRAM} @args.txt)",
        description="Train a PyTorch Lightning model from a LightningContainer, then run "
        "inference with it.",
        epilog="Add --model NAME to --help to list the flags of that container and its module.",
        add_help=False,
        allow_abbrev=False,
        fromfile_prefix_chars="@",
    )
    group = parser.add_argument_group("runner")
    group.add_argument(
        "-h", "--help", action="store_true", help="Show the flags and exit without training."
    )
    group.add_argument(
        "--model",
        metavar="NAME",
        help="The container to train: module.Class (importable from the current folder or "
        "sys.path) or path/to/file.py:Class.",
    )
    group.add_argument(
        "--output_to",
        metavar="DIR",
        type=pathlib.Path,
        default=pathlib.Path("outputs"),
        help="Folder in which each run gets its own new run folder (default: outputs).",
    )
    _add_boolean_argument(
        group,
        "dry_run",
        False,
        "Load and check everything, print the resolved flags, and exit without training or "
        "writing files.",
    )
    group.add_argument(
        "--resume_from",
        metavar="PATH",
        type=pathlib.Path,
        help="Continue training from a checkpoint file, or from a run folder's "
        "checkpoints/last.ckpt. A run folder's args.txt supplies the flags that are not given, "
        "and training continues in that folder up to --num_epochs.",
    )
    return parser


def collect_flags(
    containers: Sequence[param.Parameterized], runner_parser: argparse.ArgumentParser
) -> dict[str, _Flag]:
    """Make a flag of every settable param field of the objects, in the order given.

    A name that several objects define becomes one flag that sets all of them.
    """
    runner_names = runner_flag_names(runner_parser)
    flags: dict[str, _Flag] = {}
    for obj in containers:
        # Class-level Parameter objects: their owner is the class that declares them.
        for name, parameter in type(obj).param.objects().items():
            if not _is_settable(name, parameter):
                continue
            if name in flags:
                flags[name].targets.append(obj)
                continue
            owner = parameter.owner.__name__ if parameter.owner else type(obj).__name__
            if name in runner_names:
                raise UsageError(
                    f"{owner}.{name} has the name of a runner flag (--{name}); rename the param"
                )
            flags[name] = _Flag(name, parameter, owner, [obj], _create_converter(parameter, owner))
    return flags


def runner_flag_names(runner_parser: argparse.ArgumentParser) -> set[str]:
    """Return the names of the runner's flags: the keys of what it parses from no arguments."""
    return set(vars(runner_parser.parse_known_args([])[0]))


def _is_settable(name: str, parameter: param.Parameter[Any]) -> bool:
    # `name` is param's own label of every instance, not a setting.
    hidden = parameter.precedence is not None and parameter.precedence < 0
    return not (
        name == "name" or name.startswith("_") or parameter.constant or parameter.readonly or hidden
    )


def create_parser(
    runner_parser: argparse.ArgumentParser, flag_groups: Sequence[tuple[str, dict[str, _Flag]]]
) -> argparse.ArgumentParser:
    """Create a parser with the runner's flags and the given param flags, one group per class.

    Param flags have no argparse default, so that the result holds only the flags actually given.
    """
    parser = _ArgumentParser(
        prog=runner_parser.prog,
        usage=runner_parser.usage,
        description=runner_parser.description,
        parents=[runner_parser],
        add_help=False,
        allow_abbrev=False,
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for role, flags in flag_groups:
        for flag in flags.values():
            title = f"{flag.owner} ({role})"
            if title not in groups:
                groups[title] = parser.add_argument_group(title)
            _add_flag(groups[title], flag)
    return parser


def _add_flag(group: argparse._ArgumentGroup, flag: _Flag) -> None:
    value = getattr(flag.targets[0], flag.name)
    help_text = " ".join((flag.parameter.doc or "").split())
    details = _describe_values(flag.parameter)
    help_text = f"{help_text} [{details}default: {format_value(flag.parameter, value)}]"
    if len(flag.targets) > 1:
        help_text += " Sets this field on the container and on its module."
    if isinstance(flag.parameter, param.Boolean):
        _add_boolean_argument(group, flag.name, argparse.SUPPRESS, help_text)
        return
    group.add_argument(
        f"--{flag.name}",
        dest=flag.name,
        type=flag.convert,
        default=argparse.SUPPRESS,
        metavar=_metavar(flag.parameter),
        help=help_text.replace("%", "%%"),
    )


def _add_boolean_argument(
    group: argparse._ActionsContainer, name: str, default: Any, help_text: str
) -> None:
    group.add_argument(
        f"--{name}",
        dest=name,
        nargs="?",
        const=True,
        default=default,
        type=parse_boolean,
        metavar="BOOL",
        help=help_text.replace("%", "%%") + f" --no-{name} means false.",
    )
    group.add_argument(
        f"--no-{name}",
        dest=name,
        action="store_const",
        const=False,
        default=default,
        help=argparse.SUPPRESS,
    )


def parse_boolean(text: str) -> bool:
    """Convert a command-line word such as 'yes' or 'off' to a bool."""
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(
        f"invalid value {text!r}: expected a boolean, one of {'/'.join(_TRUE_WORDS)} or "
        f"{'/'.join(_FALSE_WORDS)} (any case)"
    )


def _parse_integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer") from None


def _parse_number(text: str) -> int | float:
    # An integer stays an integer: for Lightning's limit_*_batches, 10 means ten batches and
    # 1.0 means all of them.
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number") from None


def _split_items(text: str) -> list[Any]:
    """Split a list value: comma-separated items, or a JSON list when it starts with '['."""
    if text.strip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"invalid JSON list {text!r}: {error}") from None
        if not isinstance(items, list):
            raise argparse.ArgumentTypeError(f"invalid JSON list {text!r}")
        return items
    if not text.strip():
        return []
    return [item.strip() for item in text.split(",")]


def _item_converter(item_type: Any) -> Callable[[str], Any] | None:
    if item_type is None or item_type is str:
        return str
    if item_type is bool:
        return parse_boolean
    if item_type is int:
        return _parse_integer
    if item_type is float:
        return lambda text: float(_parse_number(text))
    if inspect.isclass(item_type) and issubclass(item_type, enum.Enum):
        return _enum_converter(item_type)
    if inspect.isclass(item_type) and issubclass(item_type, pathlib.PurePath):
        return item_type
    return None


def _enum_converter(enum_class: type[enum.Enum]) -> Callable[[str], enum.Enum]:
    def convert(text: str) -> enum.Enum:
        for member in enum_class:
            if member.name.lower() == text.lower() or str(member.value) == text:
                return member
        names = ", ".join(member.name for member in enum_class)
        raise argparse.ArgumentTypeError(f"invalid choice {text!r}: choose from {names}")

    return convert


def _list_converter(
    convert_item: Callable[[str], Any], length: int | None, kind: str
) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        items = [
            convert_item(item) if isinstance(item, str) else item for item in _split_items(text)
        ]
        if length is not None and len(items) != length:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: expected {length} comma-separated items, not {len(items)}"
            )
        return tuple(items) if kind == "tuple" else items

    return convert


def _selector_converter(parameter: param.Selector[Any]) -> Callable[[str], Any]:
    names: dict[str, Any] = dict(parameter.names) if parameter.names else {}
    choices = names or {str(obj): obj for obj in parameter.objects}

    def convert(text: str) -> Any:
        if text in choices:
            return choices[text]
        if not parameter.check_on_set:
            return text
        raise argparse.ArgumentTypeError(
            f"invalid choice {text!r}: choose from {', '.join(choices)}"
        )

    return convert


def _dict_converter(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"invalid JSON object {text!r}: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"invalid JSON object {text!r}: not an object")
    return value


def _create_converter(parameter: param.Parameter[Any], owner: str) -> Callable[[str], Any]:
    """Return the function that turns a flag's text into a value for the param field.

    The value is checked against the field's own rules (bounds, regex, existence) when it is
    assigned, so that param's messages name the bound that failed.
    """
    convert: Callable[[str], Any] | None = None
    if isinstance(parameter, param.Boolean):
        convert = parse_boolean
    elif isinstance(parameter, param.Integer):
        convert = _parse_integer
    elif isinstance(parameter, param.Number):
        convert = _parse_number
    elif isinstance(parameter, param.NumericTuple):
        convert = _list_converter(_parse_number, parameter.length, "tuple")
    elif isinstance(parameter, param.Tuple):
        convert = _list_converter(str, parameter.length, "tuple")
    elif isinstance(parameter, param.List):
        convert_item = _item_converter(parameter.item_type)
        if convert_item is not None:
            convert = _list_converter(convert_item, None, "list")
    elif isinstance(parameter, param.ListSelector):
        convert = None
    elif isinstance(parameter, param.Selector):
        convert = _selector_converter(parameter)
    elif isinstance(parameter, param.Dict):
        convert = _dict_converter
    elif isinstance(parameter, param.ClassSelector) and inspect.isclass(parameter.class_):
        convert = _item_converter(parameter.class_)
    elif isinstance(parameter, (param.Path, param.String)):
        convert = str

    if convert is None:
        raise UsageError(
            f"{owner}.{parameter.name} is a param.{type(parameter).__name__}, which cannot be set "
            "from the command line; declare it with precedence=-1 (or constant=True) to keep it "
            "off the command line"
        )
    if not parameter.allow_None:
        return convert
    convert_value = convert

    def convert_or_none(text: str) -> Any:
        return None if text == "None" else convert_value(text)

    return convert_or_none


def _metavar(parameter: param.Parameter[Any]) -> str:
    if isinstance(parameter, param.Integer):
        return "INT"
    if isinstance(parameter, param.Number):
        return "NUMBER"
    if isinstance(parameter, (param.List, param.Tuple)):
        return "ITEM,..."
    if isinstance(parameter, param.Dict):
        return "JSON"
    if isinstance(parameter, param.Path):
        return "PATH"
    if isinstance(parameter, param.Selector):
        names = parameter.names or [str(obj) for obj in parameter.objects]
        return "{" + ",".join(names) + "}"
    if isinstance(parameter, param.ClassSelector) and inspect.isclass(parameter.class_):
        if issubclass(parameter.class_, enum.Enum):
            return "{" + ",".join(member.name for member in parameter.class_) + "}"
        if issubclass(parameter.class_, pathlib.PurePath):
            return "PATH"
    return "TEXT"


def _describe_values(parameter: param.Parameter[Any]) -> str:
    """Describe the values a field accepts, for --help: its bounds, length or pattern."""
    parts = []
    bounds = getattr(parameter, "bounds", None)
    if isinstance(parameter, param.Number) and bounds is not None:
        low, high = bounds
        low_inclusive, high_inclusive = parameter.inclusive_bounds
        if low is not None:
            parts.append(f"{'at least' if low_inclusive else 'greater than'} {low}")
        if high is not None:
            parts.append(f"{'at most' if high_inclusive else 'less than'} {high}")
    if isinstance(parameter, param.Tuple) and parameter.length is not None:
        parts.append(f"{parameter.length} items")
    if isinstance(parameter, param.String) and parameter.regex:
        parts.append(f"matching {parameter.regex}")
    if parameter.allow_None:
        parts.append("None for none")
    return "".join(part + "; " for part in parts)


def format_value(parameter: param.Parameter[Any], value: Any) -> str:
    """Write a value as its flag's text, so that parsing the text gives the value back."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        texts = [_format_item(item) for item in value]
        if any("," in text or text != text.strip() or text.startswith("[") for text in texts):
            return json.dumps(
                [item.name if isinstance(item, enum.Enum) else item for item in value], default=str
            )
        return ",".join(texts)
    if isinstance(parameter, param.Selector) and parameter.names:
        for name, obj in parameter.names.items():
            if obj == value:
                return str(name)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _format_item(item: Any) -> str:
    if isinstance(item, enum.Enum):
        return item.name
    if isinstance(item, bool):
        return "true" if item else "false"
    return repr(item) if isinstance(item, float) else str(item)


def describe_unknown(rest: list[str], known_names: Iterable[str]) -> str:
    """Describe the first argument that no parser took, with the closest known flags."""
    unknown = next((arg for arg in rest if arg.startswith("-")), None)
    if unknown is None:
        return f"unexpected value {rest[0]!r}: each value must follow its flag, as in --name=value"
    flag = unknown.split("=", 1)[0]
    known = [f"--{name}" for name in known_names]
    closest = difflib.get_close_matches(flag, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(closest)}?" if closest else "; see --help for the flags"
    return f"unrecognized flag {flag}{hint}"


def apply_flags(flags: dict[str, _Flag], values: dict[str, Any], targets: Iterable[Any]) -> None:
    """Set each given flag's value on those of its objects that are among `targets`."""
    chosen = list(targets)
    for name, value in values.items():
        flag = flags.get(name)
        if flag is None:
            continue
        for target in flag.targets:
            if not any(target is obj for obj in chosen):
                continue
            try:
                setattr(target, name, value)
            except (ValueError, TypeError, OSError) as error:
                raise UsageError(f"argument --{name}: {error}") from None


# ---------------------------------------------------------------------------------------------
# Run folders and logging
# ---------------------------------------------------------------------------------------------


def check_output_root(output_to: pathlib.Path) -> None:
    """Fail early when the folder for run folders cannot be one."""
    existing = next((path for path in [output_to, *output_to.parents] if path.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UsageError(f"--output_to {output_to}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK):
        raise UsageError(
            f"--output_to {output_to}: cannot write in {existing}; choose another folder"
        )


def run_folder_candidates(output_to: pathlib.Path, container_name: str) -> Iterator[pathlib.Path]:
    """Yield the names a new run folder may take: `<output_to>/<UTC timestamp>_<container>`,
    then the same with `_2`, `_3` and so on, for runs that start in the same second."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    yield (output_to / f"{stamp}_{container_name}").resolve()
    for number in itertools.count(2):
        yield (output_to / f"{stamp}_{container_name}_{number}").resolve()


def configure_logging(logs_folder: pathlib.Path) -> None:
    """Log INFO to the terminal and to `<logs_folder>/innereye_min.log`, from global rank zero.

    Other ranks log only warnings and errors, each into a file of its own that is created only
    when it has something to hold, so that no line is written twice. Calling this again, for a
    second run in the same process, replaces the handlers of the first.
    """
    # Lightning reads the rank from the environment (RANK, LOCAL_RANK, ...) when it is imported.
    rank: int = getattr(rank_zero_only, "rank", 0)
    file_name = "innereye_min.log" if rank == 0 else f"innereye_min.rank{rank}.log"
    log_file = logging.FileHandler(logs_folder / file_name, delay=True)
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log_file.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    handlers: list[logging.Handler] = [log_file]
    if rank == 0:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handlers.append(console)

    # Lightning's loggers keep their own terminal handler and do not pass records to the root
    # logger, so the log file is added to them directly.
    root = logging.getLogger()
    lightning_loggers = [
        logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric")
    ]
    for target in [root, *lightning_loggers]:
        for old in [handler for handler in target.handlers if handler.get_name() == PROGRAM]:
            target.removeHandler(old)
            old.close()
    for handler in handlers:
        handler.set_name(PROGRAM)
        root.addHandler(handler)
    for target in lightning_loggers:
        target.addHandler(log_file)
    root.setLevel(logging.INFO)


# ---------------------------------------------------------------------------------------------
# Resuming a run
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Resume:
    """Where a resumed run starts: the checkpoint, its run folder, and the epoch it holds."""

    checkpoint: pathlib.Path
    run_folder: pathlib.Path | None
    epoch: int = 0


def find_resume_point(path: pathlib.Path) -> Resume:
    """Find the checkpoint and run folder that `--resume_from PATH` names.

    PATH is a run folder (its `checkpoints/last.ckpt` is used) or a checkpoint file. A checkpoint
    inside a run folder's `checkpoints/` continues that run folder; any other starts a new one.
    """
    if path.is_dir():
        run_folder: pathlib.Path | None = path.resolve()
        checkpoint = path / "checkpoints" / "last.ckpt"
    elif path.is_file():
        checkpoint = path
        candidate = path.resolve().parent.parent
        is_in_run_folder = path.resolve().parent.name == "checkpoints"
        run_folder = candidate if is_in_run_folder and (candidate / "args.txt").is_file() else None
    else:
        raise UsageError(
            f"--resume_from {path}: no such file or folder; give a checkpoint file or a run folder"
        )
    if not checkpoint.is_file():
        raise UsageError(
            f"--resume_from {path}: {checkpoint} not found; give a run folder that holds "
            "checkpoints/last.ckpt, or a checkpoint file"
        )
    if run_folder is not None and not (run_folder / "args.txt").is_file():
        raise UsageError(f"--resume_from {path}: {run_folder / 'args.txt'} not found")
    return Resume(checkpoint.resolve(), run_folder)


def read_checkpoint_epoch(checkpoint: pathlib.Path) -> int:
    """Return the epoch that a Lightning checkpoint was saved in, checking that it loads."""
    try:
        # mmap reads the few entries used here, not every tensor. See `train` on weights_only.
        state = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=False)
        return int(state["epoch"])
    except Exception as error:
        raise UsageError(
            f"--resume_from: cannot read the checkpoint {checkpoint} "
            f"({type(error).__name__}: {error}); give another checkpoint"
        ) from None


def continue_metrics(trainer: pl.Trainer, last_epoch: int) -> None:
    """Keep the metrics of epochs up to `last_epoch` in the CSV file that the run continues.

    Lightning's CSV logger empties an existing metrics file when it starts. The rows of the epochs
    that the checkpoint holds are written back, and the logger then appends below them. Rows of
    later epochs came from the interrupted run and are dropped, since those epochs run again.
    """
    csv_logger = next((item for item in trainer.loggers if isinstance(item, CSVLogger)), None)
    if csv_logger is None:
        return
    metrics_file = pathlib.Path(csv_logger.log_dir) / "metrics.csv"
    if not metrics_file.is_file():
        return
    with open(metrics_file, newline="") as file:
        reader = csv.DictReader(file)
        columns = list(reader.fieldnames or [])
        rows = [row for row in reader if row.get("epoch") and int(row["epoch"]) <= last_epoch]

    writer = csv_logger.experiment
    with open(metrics_file, "w", newline="") as file:
        csv_writer = csv.DictWriter(file, fieldnames=columns)
        csv_writer.writeheader()
        csv_writer.writerows(rows)
    # With these columns known, the writer appends to the file instead of starting it anew.
    writer.metrics_keys = columns


# ---------------------------------------------------------------------------------------------
# Trainer construction
# ---------------------------------------------------------------------------------------------


def create_trainer(container: LightningContainer, module: pl.LightningModule) -> pl.Trainer:
    """Create the Trainer from the module's TrainerParams and the container's own additions.

    Checkpoints go to `<outputs_folder>/checkpoints`, metrics to `<logs_folder>/metrics.csv`.
    """
    assert isinstance(module, OutputParams) and isinstance(module, TrainerParams)
    checkpoint = ModelCheckpoint(
        dirpath=module.outputs_folder / "checkpoints",
        save_last=True,
        every_n_epochs=module.checkpoint_every_n_epochs,
        # Saving at the end of the training epoch keeps checkpoints independent of how often
        # validation runs.
        save_on_train_epoch_end=True,
    )
    arguments: dict[str, Any] = {
        "max_epochs": module.num_epochs,
        "accelerator": module.accelerator,
        "devices": module.devices,
        "num_nodes": module.num_nodes,
        "precision": module.precision,
        "deterministic": module.deterministic,
        "gradient_clip_val": module.gradient_clip_val,
        "accumulate_grad_batches": module.accumulate_grad_batches,
        "check_val_every_n_epoch": module.check_val_every_n_epoch,
        "limit_train_batches": module.limit_train_batches,
        "limit_val_batches": module.limit_val_batches,
        "num_sanity_val_steps": module.num_sanity_val_steps,
        "callbacks": [checkpoint, *container.get_callbacks()],
        # Writing every row as it is logged keeps the file complete when a run is killed.
        "logger": [
            CSVLogger(
                save_dir=module.logs_folder, name="", version="csv", flush_logs_every_n_steps=1
            )
        ],
        "default_root_dir": module.outputs_folder,
        "enable_progress_bar": sys.stderr.isatty(),
    }

    check_multi_node_environment(module.num_nodes)
    extra = container.get_trainer_arguments()
    accepted = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    for key in extra:
        if key not in accepted:
            closest = difflib.get_close_matches(key, sorted(accepted), n=1)
            hint = f"; did you mean {closest[0]!r}?" if closest else ""
            raise UsageError(
                f"{type(container).__name__}.get_trainer_arguments() returned {key!r}, which "
                f"pl.Trainer does not accept{hint}"
            )
    arguments.update(extra)

    try:
        return pl.Trainer(**arguments)
    except (MisconfigurationException, ValueError) as error:
        raise UsageError(f"invalid Trainer settings: {error}") from None


def check_multi_node_environment(num_nodes: int) -> None:
    """Fail when more than one node is asked for but nothing says which node this one is.

    Without a cluster, every node would wait for the others to join, and the run would hang.
    """
    if num_nodes == 1 or "NODE_RANK" in os.environ:
        return
    clusters = (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment, MPIEnvironment)
    if any(cluster.detect() for cluster in clusters):
        return
    raise UsageError(
        f"--num_nodes={num_nodes} needs a cluster, and none was found (no SLURM, torchrun, "
        "LSF or MPI job, and no NODE_RANK variable); use --num_nodes=1 on one machine, "
        "or start the run on each node with MASTER_ADDR, MASTER_PORT and NODE_RANK set"
    )


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------


def run_inference(
    container: LightningContainer, module: pl.LightningModule, trainer: pl.Trainer
) -> None:
    """Run the trained module on the inference data, through its inference hooks.

    A module without `inference_step` gets Lightning's test loop if it has `test_step`, and is
    skipped with a log line if it has neither.
    """
    # Inference runs in one process on one device, so that each item is seen exactly once:
    # a distributed sampler would split the data and pad it with repeated items.
    if trainer.global_rank != 0:
        return
    has_inference_step = isinstance(module, LightningWithInference) and (
        type(module).inference_step is not LightningWithInference.inference_step
    )
    if not isinstance(module, LightningWithInference) or not has_inference_step:
        if type(module).test_step is pl.LightningModule.test_step:
            logger.info(
                "%s has neither inference_step nor test_step: skipping inference",
                type(module).__name__,
            )
            return
        logger.info("%s has no inference_step: running its test_step", type(module).__name__)
        if trainer.world_size > 1:
            trainer = pl.Trainer(
                accelerator=trainer.accelerator,
                devices=1,
                precision=typing.cast(TrainerParams, module).precision,
                logger=trainer.loggers,
                enable_progress_bar=trainer.progress_bar_callback is not None,
                default_root_dir=trainer.default_root_dir,
            )
        trainer.test(module, datamodule=container.get_inference_data_module())
        return

    data = container.get_inference_data_module()
    data.prepare_data()
    module.eval()
    with torch.no_grad():
        module.on_inference_start()
        for split in container.inference_splits():
            data.setup("test" if split is ModelExecutionMode.TEST else "fit")
            if split is ModelExecutionMode.TRAIN:
                dataloader = data.train_dataloader()
            elif split is ModelExecutionMode.VAL:
                dataloader = data.val_dataloader()
            else:
                dataloader = data.test_dataloader()

            logger.info("Running inference on the %s split", split.value)
            module.on_inference_epoch_start(split, is_ensemble_model=False)
            for batch_index, batch in enumerate(dataloader):
                batch = module.transfer_batch_to_device(batch, module.device, 0)
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                module.inference_step(batch, batch_index, module(inputs))
            module.on_inference_epoch_end()
        module.on_inference_end()
    logger.info("Inference finished; outputs are in %s", module.outputs_folder)


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """A fully configured run: the runner's flags, the container, its module and their flags."""

    options: argparse.Namespace
    container: LightningContainer
    module: pl.LightningModule
    container_flags: dict[str, _Flag]
    module_flags: dict[str, _Flag]
    resume: Resume | None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code. Usage errors return 2 and write nothing."""
    try:
        run = configure_run(sys.argv[1:] if argv is None else argv)
        if run is None or run.options.help:
            return 0
        if run.options.dry_run:
            create_trainer(run.container, run.module)
            print("\n".join(resolved_arguments(run)))
            return 0
        trainer, run_folder = start_run(run)
    except UsageError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2

    train(run, trainer, run_folder)
    run_inference(run.container, run.module, trainer)
    return 0


def configure_run(argv: Sequence[str]) -> Run | None:
    """Parse the command line, load the container, create its module, and apply every flag.

    Returns None when it printed the runner's help. Raises UsageError for any mistake, before
    anything is written to disk.
    """
    runner_parser = create_runner_parser()
    options, rest = runner_parser.parse_known_args(list(argv))
    resume = None
    if options.resume_from is not None:
        resume = find_resume_point(options.resume_from)
        if resume.run_folder is not None:
            # The run folder's own flags come first, so that the command line overrides them.
            args_file = resume.run_folder / "args.txt"
            options, rest = runner_parser.parse_known_args([f"@{args_file}", *argv])
    if options.model is None:
        if options.help:
            runner_parser.print_help()
            return None
        raise UsageError("the flag --model is required, as in --model example_container.Dummy")
    check_output_root(options.output_to)

    # Container flags are applied before create_lightning_module, so that the module can be
    # built from them.
    container = load_container_class(options.model)()
    container_flags = collect_flags([container], runner_parser)
    container_parser = create_parser(runner_parser, [("container", container_flags)])
    given, _ = container_parser.parse_known_args(rest)
    apply_flags(container_flags, vars(given), [container])

    pl.seed_everything(container.random_seed, workers=True, verbose=False)
    module = check_lightning_module(container.create_lightning_module(), container)

    module_flags = collect_flags([container, typing.cast(TrainerParams, module)], runner_parser)
    parser = create_parser(
        runner_parser,
        [
            ("container", container_flags),
            (
                "module",
                {name: flag for name, flag in module_flags.items() if name not in container_flags},
            ),
        ],
    )
    if options.help:
        parser.print_help()
        return Run(options, container, module, container_flags, module_flags, resume)
    given, unknown = parser.parse_known_args(rest)
    if unknown:
        raise UsageError(
            describe_unknown(unknown, [*runner_flag_names(runner_parser), *module_flags])
        )
    apply_flags(module_flags, vars(given), [module])
    if resume is not None:
        resume.epoch = read_checkpoint_epoch(resume.checkpoint)
    return Run(options, container, module, container_flags, module_flags, resume)


def resolved_arguments(run: Run) -> list[str]:
    """Return the run's configuration as flags, one per line of args.txt, replayable with @."""
    # --resume_from is an action, not a configuration: a replay starts a new run.
    lines = [f"--model={run.options.model}", f"--output_to={run.options.output_to}"]
    for name, flag in run.module_flags.items():
        value = getattr(flag.targets[-1], name)
        lines.append(f"--{name}={format_value(flag.parameter, value)}")
    return lines


def start_run(run: Run) -> tuple[pl.Trainer, pathlib.Path]:
    """Create the Trainer and a new run folder for it, and point the module at that folder.

    The Trainer is created before its folder, so that invalid Trainer settings leave nothing on
    disk. An extra DDP process, which runs this script again, joins the first process's folder.
    """
    joined = os.environ.get(RUN_FOLDER_ENV)
    if joined is not None and os.environ.get("LOCAL_RANK", "0") != "0":
        run_folder = pathlib.Path(joined)
        point_module_at(run.module, run_folder)
        trainer = create_trainer(run.container, run.module)
    elif run.resume is not None and run.resume.run_folder is not None:
        run_folder = run.resume.run_folder
        point_module_at(run.module, run_folder)
        trainer = create_trainer(run.container, run.module)
        continue_metrics(trainer, run.resume.epoch)
        # args.txt describes the configuration that the run folder ends with.
        (run_folder / "args.txt").write_text("\n".join(resolved_arguments(run)) + "\n")
    else:
        for run_folder in run_folder_candidates(
            run.options.output_to, type(run.container).__name__
        ):
            if run_folder.exists():
                continue
            point_module_at(run.module, run_folder)
            trainer = create_trainer(run.container, run.module)
            try:
                run_folder.mkdir(parents=True)
                break
            except FileExistsError:
                # Another run took this name since the check above: try the next one.
                continue
        (run_folder / "args.txt").write_text("\n".join(resolved_arguments(run)) + "\n")

    (run_folder / "logs").mkdir(exist_ok=True)
    configure_logging(run_folder / "logs")
    logger.info("Run folder: %s", run_folder)
    return trainer, run_folder


def point_module_at(module: pl.LightningModule, run_folder: pathlib.Path) -> None:
    """Set the module's outputs_folder to the run folder, and logs_folder to its logs/."""
    output_params = typing.cast(OutputParams, module)
    with param.edit_constant(output_params):
        output_params.outputs_folder = run_folder
        output_params.logs_folder = run_folder / "logs"


def train(run: Run, trainer: pl.Trainer, run_folder: pathlib.Path) -> None:
    """Train the module, and leave `checkpoints/last.ckpt` with the final weights."""
    checkpoint = None
    if run.resume is not None:
        checkpoint = run.resume.checkpoint
        logger.info("Resuming from %s", checkpoint)

    os.environ[RUN_FOLDER_ENV] = str(run_folder)
    try:
        # torch's default weights_only=True rejects the Paths, Enums and param values that modules
        # often save as hyperparameters. The checkpoint comes from the user's own run, so it is
        # trusted like the user's own code.
        trainer.fit(
            run.module,
            datamodule=run.container.get_training_data_module(),
            ckpt_path=checkpoint,
            weights_only=False,
        )
    finally:
        os.environ.pop(RUN_FOLDER_ENV, None)

    # The periodic checkpoint may be older than the last epoch; every rank takes part in saving.
    trainer.save_checkpoint(run_folder / "checkpoints" / "last.ckpt", weights_only=False)
    logger.info("Training finished; checkpoints are in %s", run_folder / "checkpoints")


if __name__ == "__main__":
    # Containers import this file as `innereye_min`. Running that copy, not `__main__`, gives the
    # runner and the containers the same classes.
    runner = importlib.import_module(__spec__.name if __spec__ else pathlib.Path(__file__).stem)
    sys.exit(runner.main())
