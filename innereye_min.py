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
    python innereye_min.py --model example_container.Dummy --azureml --cluster NAME  # in Azure ML

Every `param` field of the container and of the module it creates is a command-line flag. A run
writes everything into a new folder `outputs/<UTC timestamp>_<container class>/`:

    args.txt               the model and every resolved flag, one per line, replayable with @
    checkpoints/last.ckpt  the weights and Trainer state after the last epoch, to resume from
    logs/csv/metrics.csv   every metric that the module logs
    logs/innereye_min.log  this program's own log
    ...                    whatever the module writes into `self.outputs_folder`

After training, the trained module runs inference on `get_inference_data_module()` through the
hooks of `LightningWithInference` (or Lightning's test loop, when the module only has `test_step`).

Exit codes: 0 on success, 2 for a usage error (one line on standard error, nothing written to
disk), 1 when training or inference fails (with the traceback). With --azureml, failures to log
in or to reach Azure ML also exit with 2; with --wait_for_completion, a failed job exits with 1,
and Ctrl-C while waiting with 130 (the job keeps running).
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import csv
import dataclasses
import datetime
import difflib
import enum
import functools
import hashlib
import importlib
import importlib.util
import inspect
import itertools
import json
import logging
import math
import os
import pathlib
import re
import shlex
import shutil
import sys
import tempfile
import traceback
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
from pytorch_lightning.callbacks import Callback, Checkpoint
from pytorch_lightning.loggers import CSVLogger, Logger
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
        doc="Epochs between two saves of checkpoints/last.ckpt. The final state is saved too.",
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
    `on_inference_start()`. Then, for each chosen split, it calls
    `on_inference_epoch_start(split, False)`, `forward` and `inference_step` for each batch, and
    `on_inference_epoch_end()`. Finally it calls `on_inference_end()`. Every hook does nothing
    unless you override it. A module that does not override `inference_step` gets Lightning's
    test loop (`test_step`) instead, if it has one.

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
        # The range that numpy's seed accepts.
        bounds=(0, 2**32 - 1),
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
        """Return extra Lightning callbacks, such as a ModelCheckpoint that keeps the best epoch."""
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
    looks_like_file = name.endswith(".py") or "/" in name or os.sep in name
    if separator and module_path.endswith(".py"):
        module = _import_file(pathlib.Path(module_path), name)
    elif looks_like_file:
        raise UsageError(
            f"--model {name}: a file must be a .py file followed by the class, as in "
            "path/to/my_models.py:MyContainer"
        )
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
    if container_class is LightningContainer:
        raise UsageError(
            f"--model {name}: LightningContainer is the abstract base class; name your own "
            "subclass of it, such as example_container.Dummy"
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


def check_optimizer_settings(module: pl.LightningModule) -> None:
    """Build the optimizer that OptimizerParams describes once, so that torch checks the values.

    torch rejects values such as betas of 1 or more only when the optimizer is built, which would
    otherwise be after the run folder exists.
    """
    uses_optimizer_params = (
        isinstance(module, LightningWithInference)
        and isinstance(module, OptimizerParams)
        and type(module).configure_optimizers is LightningWithInference.configure_optimizers
    )
    if not uses_optimizer_params:
        return
    try:
        module.configure_optimizers()
    except ValueError as error:
        raise UsageError(f"invalid optimizer settings: {error}") from None


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

    azureml = parser.add_argument_group("Azure ML")
    _add_boolean_argument(
        azureml,
        "azureml",
        False,
        "Submit the run as a job to Azure ML instead of training here. The job gets all the "
        "other flags; with --dry_run, print the job as JSON instead.",
    )
    azureml.add_argument(
        "--cluster",
        metavar="NAME",
        help="Compute cluster to run the job on (needed with --azureml).",
    )
    azureml.add_argument(
        "--workspace_config",
        metavar="FILE",
        type=pathlib.Path,
        help="The workspace's config.json (default: found as azureml-core finds it, in "
        ".azureml/, aml_config/ or the folder itself, from the current folder upward).",
    )
    azureml.add_argument(
        "--experiment",
        metavar="NAME",
        help="Experiment to submit the job to (default: the container's class name).",
    )
    azureml.add_argument(
        "--snapshot_root",
        metavar="DIR",
        type=pathlib.Path,
        default=pathlib.Path("."),
        help="Folder that is uploaded as the job's code, and in which the job runs, so that "
        "relative paths are resolved from it. It must contain innereye_min.py and the container "
        "(default: the current folder).",
    )
    azureml.add_argument(
        "--conda_env",
        metavar="FILE",
        type=pathlib.Path,
        help="Conda environment file of the job (default: the requirements.txt beside "
        "innereye_min.py).",
    )
    azureml.add_argument(
        "--max_run_duration",
        metavar="DURATION",
        help="Cancel the job after this long: a number with the unit s, m, h or d, such as 90m, "
        "3.5h or 2d (default: Azure ML's 30 days).",
    )
    azureml.add_argument(
        "--tag",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="Tag the job; repeat the flag for more tags.",
    )
    azureml.add_argument(
        "--azureml_dataset",
        metavar="NAME",
        help="Registered file dataset to give the job (latest version).",
    )
    azureml.add_argument(
        "--azureml_dataset_mode",
        choices=["mount", "download"],
        default="mount",
        help="Mount the dataset, or download it to the node before the job starts "
        "(default: mount).",
    )
    azureml.add_argument(
        "--azureml_dataset_flag",
        metavar="FLAG",
        help="Path field of the container that receives the dataset's folder in the job, such "
        "as data_folder.",
    )
    _add_boolean_argument(
        azureml,
        "wait_for_completion",
        False,
        "After submitting, show the job's log until it ends, and exit with 1 if it failed.",
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
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a finite number")
    return number


def _parse_text(text: str) -> str:
    # An empty path would silently mean the current folder.
    if not text.strip():
        raise argparse.ArgumentTypeError("invalid value '': expected a path")
    return text


def _parse_date(kind: type[datetime.date]) -> Callable[[str], datetime.date]:
    def convert(text: str) -> datetime.date:
        try:
            return kind.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid value {text!r}: expected an ISO 8601 date such as 2024-05-31"
                + (" or 2024-05-31T12:00:00" if kind is datetime.datetime else "")
            ) from None

    return convert


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
    convert_items: Sequence[Callable[[str], Any]], length: int | None, kind: str
) -> Callable[[str], Any]:
    """Return a converter of comma-separated items: item i by convert_items[i], the rest by the
    last one (or as text when there is none)."""

    def convert(text: str) -> Any:
        items = []
        for index, item in enumerate(_split_items(text)):
            convert_item = (
                convert_items[min(index, len(convert_items) - 1)] if convert_items else str
            )
            items.append(convert_item(item) if isinstance(item, str) else item)
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
    elif isinstance(parameter, param.CalendarDate):
        convert = _parse_date(datetime.date)
    elif isinstance(parameter, param.Date):
        convert = _parse_date(datetime.datetime)
    elif isinstance(parameter, param.Integer):
        convert = _parse_integer
    elif isinstance(parameter, param.Number):
        convert = _parse_number
    elif isinstance(parameter, param.NumericTuple):
        convert = _list_converter([_parse_number], parameter.length, "tuple")
    elif isinstance(parameter, param.Tuple):
        # An untyped tuple takes the item types of its default, such as (1, 2.5, "text").
        default_items = parameter.default or ()
        convert_items = [_item_converter(type(item)) or str for item in default_items]
        convert = _list_converter(convert_items, parameter.length, "tuple")
    elif isinstance(parameter, param.List):
        convert_item = _item_converter(parameter.item_type)
        if convert_item is not None:
            convert = _list_converter([convert_item], None, "list")
    elif isinstance(parameter, param.ListSelector):
        convert = None
    elif isinstance(parameter, param.Selector):
        convert = _selector_converter(parameter)
    elif isinstance(parameter, param.Dict):
        convert = _dict_converter
    elif isinstance(parameter, param.ClassSelector) and inspect.isclass(parameter.class_):
        convert = _item_converter(parameter.class_)
    elif isinstance(parameter, param.Path):
        convert = _parse_text
    elif isinstance(parameter, param.String):
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
    if isinstance(parameter, (param.Date, param.CalendarDate)):
        return "DATE"
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
    if isinstance(value, datetime.date):
        return value.isoformat()
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


def expand_argument_files(arguments: Sequence[str]) -> list[str]:
    """Replace each @FILE argument with the lines of that file, one argument per line.

    Empty lines are skipped, and a file may name further @FILEs.
    """
    expanded = []
    for argument in arguments:
        if not argument.startswith("@"):
            expanded.append(argument)
            continue
        try:
            lines = pathlib.Path(argument[1:]).read_text().splitlines()
        except OSError as error:
            raise UsageError(
                f"cannot read the arguments file {argument[1:]!r}: {error.strerror}"
            ) from None
        except UnicodeDecodeError as error:
            raise UsageError(f"the arguments file {argument[1:]!r} is not text: {error}") from None
        expanded += expand_argument_files([line for line in lines if line.strip()])
    return expanded


def parse_known_flags(
    parser: argparse.ArgumentParser, args: Sequence[str], known_names: Iterable[str]
) -> tuple[argparse.Namespace, list[str]]:
    """Parse the flags that `parser` defines, and return their values and the other arguments.

    argparse takes an unknown `--name=value` whose value has a space for a plain value, and would
    give it to a preceding boolean flag as that flag's value. Such arguments are hidden behind
    placeholders while parsing, and put back in the arguments returned.
    """
    known = set(known_names)
    hidden: dict[str, str] = {}
    visible = []
    for argument in args:
        name = argument.lstrip("-").partition("=")[0].removeprefix("no-")
        if argument.startswith("--") and any(c.isspace() for c in argument) and name not in known:
            placeholder = f"--innereye-min-hidden-{len(hidden)}"
            hidden[placeholder] = argument
            argument = placeholder
        visible.append(argument)
    namespace, rest = parser.parse_known_args(visible)
    return namespace, [hidden.get(argument, argument) for argument in rest]


def describe_unknown(rest: list[str], known_names: Iterable[str]) -> str:
    """Describe the first argument that no parser took, with the closest known flags."""
    unknown = next((arg for arg in rest if arg.startswith("-")), None)
    if unknown is None:
        return f"unexpected value {rest[0]!r}: each value must follow its flag, as in --name=value"
    flag = unknown.split("=", 1)[0]
    known = {f"--{name}".lower(): f"--{name}" for name in known_names}
    closest = [known[match] for match in difflib.get_close_matches(flag.lower(), known, n=3)]
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
    if existing is None:
        return
    # Creating a folder is the only sure test: permissions alone do not show a read-only file
    # system or a folder such as /proc. The probe folder is removed at once.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".innereye_min_probe_", dir=existing))
    except OSError as error:
        raise UsageError(
            f"--output_to {output_to}: cannot create folders in {existing} ({error.strerror}); "
            "choose another folder"
        ) from None


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
    """The start of a resumed run: the checkpoint, its run folder, and the epoch it holds."""

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
            f"--resume_from {path}: {checkpoint} not found; give a run folder that contains "
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
    that the checkpoint contains are written back, and the logger then appends below them. Rows of
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

    # Lightning warns here that it deletes the old metrics file, which the rows above replace.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists")
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


def save_checkpoint(trainer: pl.Trainer, path: pathlib.Path) -> None:
    """Save the training state to `path`, replacing an earlier checkpoint there in one step.

    Lightning writes each checkpoint in the system's temporary folder and then moves it, which is
    a copy when that folder is on another file system. Saving beside `path` and renaming makes
    the replacement atomic, so a run killed while saving keeps the previous checkpoint.
    """
    partial = path.with_name(path.name + ".partial")
    trainer.save_checkpoint(partial, weights_only=False)
    if trainer.is_global_zero:
        # Strategies that shard the state, such as DeepSpeed, save a folder, and a rename cannot
        # replace a folder that is not empty.
        if partial.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(partial, path)


class LastCheckpoint(Checkpoint):
    """Checkpoint callback that saves the training state to one file every `every_n_epochs` epochs.

    A resumed run needs only the newest state. Lightning's ModelCheckpoint with `save_last=True`
    saves it twice, under the epoch's name and as last.ckpt, which on epochs of milliseconds
    slows training measurably.
    """

    def __init__(self, path: pathlib.Path, every_n_epochs: int) -> None:
        super().__init__()
        self.path = path
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # As a Checkpoint, Lightning calls this after the module's own on_train_epoch_end and
        # after validation, so that the saved state includes both. The last epoch is left to
        # `train`, which saves once more after fit() returns.
        epochs_done = trainer.current_epoch + 1
        if epochs_done % self.every_n_epochs == 0 and epochs_done != trainer.max_epochs:
            save_checkpoint(trainer, self.path)


def create_trainer(container: LightningContainer, module: pl.LightningModule) -> pl.Trainer:
    """Create the Trainer from the module's TrainerParams and the container's own additions.

    The checkpoint goes to `<outputs_folder>/checkpoints/last.ckpt`, metrics to
    `<logs_folder>/csv/metrics.csv`.
    """
    assert isinstance(module, OutputParams) and isinstance(module, TrainerParams)
    checkpoint = LastCheckpoint(
        module.outputs_folder / "checkpoints" / "last.ckpt", module.checkpoint_every_n_epochs
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

    if get_azureml_run() is not None:
        arguments["logger"].append(AzureMLLogger())

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
        trainer = pl.Trainer(**arguments)
    # Lightning reports some invalid settings (such as --devices=0,1 on a CPU) as TypeError, and a
    # missing accelerator package (torch_xla for --accelerator=tpu) as ModuleNotFoundError.
    except (MisconfigurationException, ValueError, TypeError, ModuleNotFoundError) as error:
        settings = ", ".join(
            f"--{name}={getattr(module, name)}"
            for name in ("accelerator", "devices", "num_nodes", "precision")
        )
        raise UsageError(f"invalid Trainer settings ({settings}): {error}") from None
    check_world_size(trainer, os.environ)
    return trainer


def check_multi_node_environment(num_nodes: int) -> None:
    """Fail when more than one node is requested but no variable gives this node's rank.

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
    precision = trainer.precision_plugin
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
                # The precision plugin casts the batch and runs forward as in training, so that
                # --precision=64-true or bf16-mixed gives inputs of the weights' dtype.
                batch = precision.convert_input(batch)
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                with precision.forward_context():
                    model_output = module(inputs)
                module.inference_step(batch, batch_index, model_output)
            module.on_inference_epoch_end()
        module.on_inference_end()
    logger.info("Inference finished; outputs are in %s", module.outputs_folder)


# ---------------------------------------------------------------------------------------------
# Azure ML
# ---------------------------------------------------------------------------------------------

# A CUDA-capable base image with Open MPI, from the list of current Azure ML base images that
# azureml-core 1.61 ships (azureml/_project/azureml_base_images.json). A fixed tag keeps the job's
# image, and so the cached environment build, the same until this line changes.
AZUREML_DOCKER_IMAGE = "mcr.microsoft.com/azureml/openmpi5.0-cuda12.6-ubuntu24.04:20251130.v1"

# The Python of the job's environment. The conda template of azureml-core 1.61 names Python 3.8,
# but torch 2.13, pytorch-lightning 2.6 and this file itself need 3.10 or newer.
AZUREML_PYTHON_VERSION = "3.11"
MIN_PYTHON_VERSION = (3, 10)

# Shared memory of the job's container: an upper limit, taken from the node's memory only as it
# fills. DataLoader workers pass batches through it, and azureml-core's default of 2g can be too
# small for several workers with large batches.
AZUREML_SHM_SIZE = "16g"

# Azure ML sets this variable in every job; azureml-core reads the job's run context from it.
AZUREML_RUN_ID_ENV = "AZUREML_RUN_ID"

# A service principal logs in without a terminal when these three variables are set. They are the
# names that azure-identity's EnvironmentCredential reads.
SERVICE_PRINCIPAL_ENV = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")

# Left out of every job's snapshot, in the .gitignore syntax that Azure ML's .amlignore uses.
SNAPSHOT_EXCLUSIONS = (
    ".git",
    ".venv/",
    "venv/",
    "__pycache__/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".ipynb_checkpoints/",
)

# The master port of an MPI job on one node, where Azure ML names no master node. It is torchrun's
# default port; every process must use the same one.
SINGLE_NODE_MASTER_PORT = "29500"

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Azure ML's rule for experiment names: 1 to 255 letters, digits, '_' and '-', starting with a
# letter or digit.
_EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
# The characters of a metric name that become '_': all but letters, digits, '_-./' and spaces, so
# that Lightning's names such as "val/loss" keep their form.
_METRIC_NAME_INVALID = re.compile(r"[^A-Za-z0-9_\-./ ]")


@functools.cache
def get_azureml_run() -> Any | None:
    """Return the Azure ML run of the job that this process runs in, or None outside a job.

    azureml-core is imported only when the job variable is set, so that local runs never load it.
    """
    if AZUREML_RUN_ID_ENV not in os.environ:
        return None
    from azureml.core import Run

    run = Run.get_context()
    # Without a complete job context, get_context() returns an offline run, which is no Run.
    return run if isinstance(run, Run) else None


class AzureMLFolders(typing.NamedTuple):
    """The folders that Azure ML uploads from a job: outputs when it ends, logs while it runs."""

    outputs: pathlib.Path
    logs: pathlib.Path


def azureml_job_folders() -> AzureMLFolders | None:
    """Return `./outputs` and `./logs` inside an Azure ML job, and None elsewhere."""
    if get_azureml_run() is None:
        return None
    return AzureMLFolders(pathlib.Path("outputs").resolve(), pathlib.Path("logs").resolve())


def azureml_checkpoint_to_resume(run_folder: pathlib.Path) -> pathlib.Path | None:
    """Return `checkpoints/last.ckpt` when Azure ML restarted this job after it had saved one.

    Azure ML restarts a job whose low-priority nodes were preempted. The restarted job then
    resumes training from the last checkpoint instead of starting over. Returns None outside
    Azure ML, and when there is no checkpoint.
    """
    # NOTE: this finds the checkpoint only where the restarted job still has the ./outputs of the
    # interrupted one. Users report that a restart can start with an empty ./outputs
    # (github.com/Azure/MachineLearningNotebooks/issues/1575); then training starts over.
    checkpoint = run_folder / "checkpoints" / "last.ckpt"
    if get_azureml_run() is None or not checkpoint.is_file():
        return None
    logger.info("Azure ML restarted this job: resuming training from %s", checkpoint)
    return checkpoint


class AzureMLLogger(Logger):
    """A Lightning logger that sends metrics and hyperparameters to the run of an Azure ML job.

    Only global rank zero logs. Metric values must be single numbers: one-element tensors, numpy
    scalars and bools are logged as floats, and any other value is skipped with one warning per
    name. With the offline run that azureml-core returns outside a job, the logger does nothing.
    """

    def __init__(self, run: Any | None = None) -> None:
        """Log to `run`, by default the run of the Azure ML job that this process runs in."""
        super().__init__()
        from azureml.core import Run

        self.run: Any = get_azureml_run() if run is None else run
        # The offline run is no Run, and its log() takes no step.
        self.enabled = isinstance(self.run, Run)
        self._skipped_names: set[str] = set()
        self._hyperparameters_logged = False

    @property
    def name(self) -> str:
        return "azureml"

    @property
    def version(self) -> str:
        return str(self.run.id) if self.run is not None else ""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if not self.enabled:
            return
        for name, value in metrics.items():
            metric_name = _METRIC_NAME_INVALID.sub("_", name.strip())
            number = _metric_value(value)
            if metric_name and number is not None:
                self.run.log(metric_name, number, step=step)
            elif name not in self._skipped_names:
                self._skipped_names.add(name)
                logger.warning(
                    "Azure ML logger: skipping metric %r, whose value of type %s is not a single "
                    "number",
                    name,
                    type(value).__name__,
                )

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | argparse.Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Log the hyperparameters once, as a table "hyperparameters" with a name and a value."""
        if not self.enabled or self._hyperparameters_logged:
            return
        values = vars(params) if isinstance(params, argparse.Namespace) else params
        self.run.log_table(
            "hyperparameters",
            {"name": list(values), "value": [str(value) for value in values.values()]},
        )
        self._hyperparameters_logged = True

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Send every metric still buffered, so that none is lost when the job ends."""
        if self.enabled:
            self.run.flush()


def distributed_environment_variables(environment: Mapping[str, str]) -> dict[str, str]:
    """Return the variables that Lightning's DDP reads, mapped from those of an MPI launch.

    Azure ML starts the processes of a PyTorchConfiguration job with Lightning's own variables
    (MASTER_ADDR, MASTER_PORT, NODE_RANK, LOCAL_RANK, WORLD_SIZE, RANK), so those need no mapping
    and the result is empty. A job that MPI launched has OMPI_COMM_WORLD_* instead, and on several
    nodes AZ_BATCH_MASTER_NODE as "address:port". Missing variables mean a single node.
    """
    if "OMPI_COMM_WORLD_RANK" not in environment:
        return {}
    rank = int(environment["OMPI_COMM_WORLD_RANK"])
    world_size = int(environment.get("OMPI_COMM_WORLD_SIZE", "1"))
    processes_per_node = int(environment.get("OMPI_COMM_WORLD_LOCAL_SIZE", str(world_size)))
    local_rank = int(environment.get("OMPI_COMM_WORLD_LOCAL_RANK", str(rank % processes_per_node)))
    address, _, port = environment.get("AZ_BATCH_MASTER_NODE", "").partition(":")
    if not address and world_size > processes_per_node:
        raise UsageError(
            f"an MPI job with {world_size} processes on {world_size // processes_per_node} nodes "
            "has no AZ_BATCH_MASTER_NODE to name its master node; submit it with --azureml, "
            "which starts multi-node jobs through PyTorchConfiguration"
        )
    return {
        "MASTER_ADDR": address or "127.0.0.1",
        "MASTER_PORT": port or SINGLE_NODE_MASTER_PORT,
        "NODE_RANK": str(rank // processes_per_node),
        "LOCAL_RANK": str(local_rank),
        "WORLD_SIZE": str(world_size),
        "RANK": str(rank),
    }


def apply_distributed_environment() -> None:
    """Set Lightning's distributed variables from an MPI launch, before the Trainer exists."""
    variables = distributed_environment_variables(os.environ)
    os.environ.update(variables)
    if "RANK" in variables:
        # Lightning read the rank from the environment when it was imported, before this mapping.
        rank_zero_only.rank = int(variables["RANK"])  # type: ignore[attr-defined]


def check_world_size(trainer: pl.Trainer, environment: Mapping[str, str]) -> None:
    """Fail when a launcher started another number of processes than the Trainer will use.

    With a mismatch, DDP would wait forever for processes that never join.
    """
    if "LOCAL_RANK" not in environment or "WORLD_SIZE" not in environment:
        return
    started = int(environment["WORLD_SIZE"])
    if started != trainer.world_size:
        raise UsageError(
            f"{started} processes were started (WORLD_SIZE={started}), but the Trainer expects "
            f"num_nodes x devices = {trainer.num_nodes} x {trainer.num_devices} = "
            f"{trainer.world_size}; set --num_nodes to the number of nodes and --devices to the "
            "number of processes per node"
        )


def submit_to_azureml(run: Run, argv: Sequence[str]) -> int:
    """Submit the configured run as an Azure ML job, or print the job as JSON with --dry_run.

    Everything is built and checked before the first network access. Returns the exit code: 0
    once the job is submitted, or with --wait_for_completion 0 when it completed, 1 when it
    failed, and 130 when the user stopped waiting with Ctrl-C (the job keeps running).
    """
    _import_azureml()
    options = run.options
    if not options.cluster:
        raise UsageError(
            "--azureml needs --cluster NAME, the compute cluster of the workspace to run the job on"
        )
    experiment = type(run.container).__name__ if options.experiment is None else options.experiment
    if not _EXPERIMENT_NAME.fullmatch(experiment):
        raise UsageError(
            f"invalid experiment name {experiment!r}: Azure ML needs 1 to 255 letters, digits, "
            "'_' and '-', starting with a letter or digit; choose one with --experiment NAME"
        )
    snapshot_root = _check_snapshot_root(options.snapshot_root, run.container)
    arguments: list[Any] = _model_relative_to(snapshot_root, job_arguments(argv))
    dataset_input = _dataset_input_name(run)
    datasets = []
    if dataset_input is not None:
        # Azure ML replaces this argument with the dataset's folder on the compute node.
        arguments += [f"--{dataset_input}", f"DatasetConsumptionConfig:{dataset_input}"]
        datasets.append(
            {
                "name": options.azureml_dataset,
                "mode": options.azureml_dataset_mode,
                "flag": f"--{dataset_input}",
            }
        )
    tags = {
        "container": options.model,
        "command_line": shlex.join([PROGRAM, *arguments]),
        **_parse_tags(options.tag),
    }
    ignore_patterns = snapshot_ignore_patterns(snapshot_root, options.output_to)
    config = create_script_run_config(run, snapshot_root, arguments)

    job = describe_job(config, experiment, tags, datasets, ignore_patterns)
    if options.dry_run:
        print(json.dumps(job, indent=2))
        return 0

    # A submission has no run folder to log into: its log goes to the terminal only.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    workspace = connect_to_workspace(options.workspace_config)
    _check_cluster(workspace, options.cluster)
    if dataset_input is not None:
        config.arguments[-1] = _get_dataset(
            workspace, options.azureml_dataset, dataset_input, options
        )
    logger.info("Submitting the job:\n%s", json.dumps(job, indent=2))
    with snapshot_ignore_file(snapshot_root, ignore_patterns):
        azureml_run = _submit(workspace, experiment, config, tags)

    print(f"Submitted run {azureml_run.id} to experiment {experiment}")
    print(azureml_run.get_portal_url())
    if not options.wait_for_completion:
        return 0
    return wait_for_job(azureml_run)


def job_arguments(argv: Sequence[str]) -> list[str]:
    """Return the job's arguments: `argv` with @files expanded and --azureml and --dry_run removed.

    The job must train, so it must neither submit itself again nor stop after a dry run. Every
    form of the two flags goes: --FLAG, --FLAG=V, --FLAG V (V a boolean word) and --no-FLAG.
    Every other argument stays as it is, so that a value with spaces stays one argument.
    """
    expanded = expand_argument_files(argv)
    arguments = []
    index = 0
    while index < len(expanded):
        argument = expanded[index]
        index += 1
        name = argument.removeprefix("--no-").removeprefix("--").partition("=")[0]
        if not argument.startswith("--") or name not in ("azureml", "dry_run"):
            arguments.append(argument)
            continue
        # After --FLAG, argparse takes the next word as the flag's value if it is a boolean word.
        has_value = (
            argument == f"--{name}"
            and index < len(expanded)
            and expanded[index].strip().lower() in (*_TRUE_WORDS, *_FALSE_WORDS)
        )
        if has_value:
            index += 1
    return arguments


def create_environment(conda_env: pathlib.Path | None, with_dataset: bool) -> Any:
    """Create the job's environment from a conda file, or from requirements.txt beside this file.

    Either way, the Python version is one that the packages support, azureml-core is installed,
    and the name is a hash of the contents, so that Azure ML reuses the image it built for
    an environment that did not change.
    """
    from azureml.core import Environment
    from azureml.core.conda_dependencies import CondaDependencies

    if conda_env is not None:
        dependencies = _read_conda_file(conda_env)
    else:
        requirements = pathlib.Path(__file__).with_name("requirements.txt")
        if not requirements.is_file():
            raise UsageError(
                f"no requirements.txt beside {PROGRAM} ({requirements}) to build the job's "
                "environment from; create it, or pass a conda environment file with --conda_env"
            )
        dependencies = CondaDependencies()
        for package in list(dependencies.pip_packages):
            dependencies.remove_pip_package(package)
        dependencies.set_python_version(AZUREML_PYTHON_VERSION)
        for line in requirements.read_text().splitlines():
            # pip's comments start with '#' at the start of a line or after whitespace.
            requirement = re.sub(r"(^|\s)#.*", "", line).strip()
            if requirement:
                dependencies.add_pip_package(requirement)

    if "pip" not in {_package_name(package) for package in dependencies.conda_packages}:
        dependencies.add_conda_package("pip")
    installed = {_package_name(package) for package in dependencies.pip_packages}
    if "azureml-core" not in installed:
        dependencies.add_pip_package("azureml-core")
    if with_dataset and "azureml-dataset-runtime" not in installed:
        # Azure ML mounts and downloads datasets inside the job's own Python environment.
        dependencies.add_pip_package("azureml-dataset-runtime[fuse]")

    contents = dependencies.serialize_to_string() + AZUREML_DOCKER_IMAGE
    digest = hashlib.sha256(contents.encode()).hexdigest()[:16]
    environment = Environment(name=f"innereye_min-{digest}")
    environment.python.conda_dependencies = dependencies
    environment.docker.base_image = AZUREML_DOCKER_IMAGE
    return environment


def create_script_run_config(run: Run, snapshot_root: pathlib.Path, arguments: list[Any]) -> Any:
    """Build the ScriptRunConfig of the job, without network access.

    With more than one node, Azure ML starts one process per device on each node through a
    PyTorchConfiguration, and Lightning in each process joins them. On one node, Azure ML starts
    one process and Lightning starts the others.
    """
    from azureml.core import ScriptRunConfig
    from azureml.core.runconfig import DockerConfiguration, PyTorchConfiguration

    options = run.options
    module = typing.cast(TrainerParams, run.module)
    distribution = None
    if module.num_nodes > 1:
        process_count = module.num_nodes * _devices_per_node(module.devices, module.num_nodes)
        distribution = PyTorchConfiguration(
            process_count=process_count, node_count=module.num_nodes
        )
    max_run_duration = (
        ScriptRunConfig.MAX_DURATION_SECONDS_DEFAULT
        if options.max_run_duration is None
        else parse_duration(options.max_run_duration)
    )
    script = pathlib.Path(__file__).resolve().relative_to(snapshot_root)
    return ScriptRunConfig(
        source_directory=str(snapshot_root),
        script=script.as_posix(),
        arguments=arguments,
        compute_target=options.cluster,
        environment=create_environment(options.conda_env, options.azureml_dataset is not None),
        distributed_job_config=distribution,
        docker_runtime_config=DockerConfiguration(use_docker=True, shm_size=AZUREML_SHM_SIZE),
        max_run_duration_seconds=max_run_duration,
    )


def describe_job(
    config: Any,
    experiment: str,
    tags: dict[str, str],
    datasets: list[dict[str, str]],
    ignore_patterns: list[str],
) -> dict[str, Any]:
    """Describe the job as a JSON-ready dict, mostly read from its ScriptRunConfig."""
    run_config = config.run_config
    environment = run_config.environment
    dependencies = environment.python.conda_dependencies
    return {
        "experiment": experiment,
        "compute_target": run_config.target,
        "source_directory": config.source_directory,
        "script": config.script,
        "arguments": list(config.arguments),
        "node_count": run_config.node_count,
        # Without a PyTorchConfiguration, Azure ML starts one process per node.
        "process_count": run_config.pytorch.process_count or run_config.node_count,
        "max_run_duration_seconds": run_config.max_run_duration_seconds,
        "environment": {
            "name": environment.name,
            "python": dependencies.get_python_version(),
            "conda_packages": list(dependencies.conda_packages),
            "pip_packages": list(dependencies.pip_packages),
        },
        "docker_image": environment.docker.base_image,
        "shm_size": run_config.docker.shm_size,
        "tags": tags,
        "datasets": datasets,
        "snapshot_ignore": ignore_patterns,
    }


def parse_duration(text: str) -> int:
    """Convert a duration such as '90m', '3.5h' or '2d' to whole seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    seconds = round(float(match[1]) * _DURATION_UNITS[match[2]]) if match else 0
    if seconds < 1:
        raise UsageError(
            f"invalid --max_run_duration {text!r}: use a positive number with the unit s, m, h "
            "or d, as in 90m, 3.5h or 2d"
        )
    return seconds


def snapshot_ignore_patterns(snapshot_root: pathlib.Path, output_to: pathlib.Path) -> list[str]:
    """Return the .amlignore lines for a job: the user's .amlignore and .gitignore, then ours.

    Our exclusions come last, so that no pattern of the user's brings those folders back.
    """
    lines: list[str] = []
    for name in (".amlignore", ".gitignore"):
        path = snapshot_root / name
        if path.is_file():
            lines += path.read_text().splitlines()
    lines += SNAPSHOT_EXCLUSIONS
    for folder in (output_to.resolve(), pathlib.Path(sys.prefix).resolve()):
        # The run folders, and the virtual environment that runs this program, when they lie in
        # the snapshot.
        if folder.is_relative_to(snapshot_root) and folder != snapshot_root:
            lines.append(f"/{folder.relative_to(snapshot_root).as_posix()}/")
    return lines


@contextlib.contextmanager
def snapshot_ignore_file(snapshot_root: pathlib.Path, patterns: Sequence[str]) -> Iterator[None]:
    """Write `patterns` into the snapshot's .amlignore for a submission; then restore the file.

    Azure ML reads .amlignore, and .gitignore only when there is no .amlignore. The user's own
    .amlignore comes back byte for byte, or goes away if there was none, also when submitting fails.
    """
    amlignore = snapshot_root / ".amlignore"
    original = amlignore.read_bytes() if amlignore.exists() else None
    amlignore.write_text("\n".join(patterns) + "\n")
    try:
        yield
    finally:
        if original is None:
            amlignore.unlink(missing_ok=True)
        else:
            amlignore.write_bytes(original)


def connect_to_workspace(config_path: pathlib.Path | None) -> Any:
    """Log in and return the workspace that the workspace's config.json names.

    The file is found and checked before logging in. Without a terminal, this never starts an
    interactive login, which would block the run while it waits for input.
    """
    from azureml.core import Workspace

    config_file = find_workspace_config(config_path)
    try:
        return Workspace.from_config(path=str(config_file), auth=_create_authentication())
    except Exception as error:
        raise _describe_azureml_failure(f"opening the workspace of {config_file}", error) from None


def find_workspace_config(config_path: pathlib.Path | None) -> pathlib.Path:
    """Return the workspace's config.json: `config_path`, or the file that azureml-core finds.

    azureml-core 1.61 looks for .azureml/config.json, then aml_config/config.json, then
    config.json, each first in the current folder and then in its parents. The file must name
    the subscription_id, resource_group and workspace_name (or an ARM "Scope" holding them).
    """
    if config_path is not None and not config_path.is_file():
        raise UsageError(f"--workspace_config {config_path}: file not found")
    if config_path is None:
        folders = [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
        candidates = (
            folder / subfolder / "config.json"
            for subfolder in (".azureml", "aml_config", "")
            for folder in folders
        )
        config_path = next((path for path in candidates if path.is_file()), None)
    if config_path is None:
        raise UsageError(
            f"no config.json of an Azure ML workspace in {pathlib.Path.cwd()} or its parent "
            "folders; download it from the workspace's page in the Azure portal into this "
            "folder, or pass --workspace_config FILE"
        )

    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{config_path}: not a valid workspace config.json: {error}") from None
    required = ("subscription_id", "resource_group", "workspace_name")
    missing = [
        key
        for key in required
        if not isinstance(config, dict) or not isinstance(config.get(key), str) or not config[key]
    ]
    if missing and not (isinstance(config, dict) and config.get("Scope")):
        raise UsageError(
            f"{config_path} has no valid {', '.join(missing)}; download the workspace's "
            "config.json again from its page in the Azure portal"
        )
    return config_path


def wait_for_job(azureml_run: Any) -> int:
    """Stream the job's log until it ends; return 0 if it completed and 1 if it did not."""
    try:
        details = azureml_run.wait_for_completion(show_output=True, raise_on_error=False)
    except KeyboardInterrupt:
        logger.warning(
            "Stopped waiting. The job %s keeps running in Azure ML; to cancel it, use the Cancel "
            "button at %s",
            azureml_run.id,
            azureml_run.get_portal_url(),
        )
        return 130
    status = details.get("status")
    if status != "Completed":
        logger.error("The job %s ended with status %s", azureml_run.id, status)
        return 1
    logger.info("The job %s completed", azureml_run.id)
    return 0


def _import_azureml() -> None:
    try:
        import azureml.core  # noqa: F401
    except ImportError:
        raise UsageError(
            "--azureml needs azureml-core, which is not installed; install it with "
            "python -m pip install 'azureml-core>=1.55'"
        ) from None


def _check_snapshot_root(folder: pathlib.Path, container: LightningContainer) -> pathlib.Path:
    """Return the snapshot root, resolved, after checking that the job's code lies in it."""
    if not folder.is_dir():
        raise UsageError(f"--snapshot_root {folder}: folder not found")
    root = folder.resolve()
    for role, path in (
        (PROGRAM, pathlib.Path(__file__)),
        ("the container's file", pathlib.Path(inspect.getfile(type(container)))),
    ):
        if not path.resolve().is_relative_to(root):
            raise UsageError(
                f"--snapshot_root {folder}: {role} {path.resolve()} lies outside it, so the job "
                f"would not have it; pass a folder that contains both {PROGRAM} and the container"
            )
    return root


def _dataset_input_name(run: Run) -> str | None:
    """Return the container flag that receives --azureml_dataset, checked; None without one."""
    options = run.options
    if options.azureml_dataset is not None and not options.azureml_dataset.strip():
        raise UsageError("invalid --azureml_dataset '': give the name of a registered file dataset")
    if options.azureml_dataset is None:
        if options.azureml_dataset_flag is not None:
            raise UsageError(
                "--azureml_dataset_flag needs --azureml_dataset NAME, the dataset to give the job"
            )
        return None
    flag = run.container_flags.get(options.azureml_dataset_flag or "")
    if flag is None or not _is_path_flag(flag):
        path_flags = [
            f"--{name}" for name, flag in run.container_flags.items() if _is_path_flag(flag)
        ]
        raise UsageError(
            "--azureml_dataset needs --azureml_dataset_flag naming a path field of "
            f"{type(run.container).__name__} to receive the dataset's folder, not "
            f"{options.azureml_dataset_flag!r}; its path fields: "
            f"{', '.join(path_flags) or 'none'}"
        )
    return flag.name


def _is_path_flag(flag: _Flag) -> bool:
    parameter = flag.parameter
    if isinstance(parameter, param.Path):
        return True
    return (
        isinstance(parameter, param.ClassSelector)
        and inspect.isclass(parameter.class_)
        and issubclass(parameter.class_, pathlib.PurePath)
    )


def _model_relative_to(snapshot_root: pathlib.Path, arguments: list[str]) -> list[str]:
    """Rewrite a `--model path/file.py:Class` argument relative to the snapshot root.

    The job runs in the snapshot root on another machine, where a path relative to this
    process's folder, or an absolute one, would not find the file.
    """
    rewritten = []
    for index, argument in enumerate(arguments):
        follows_model_flag = index > 0 and arguments[index - 1] == "--model"
        prefix = "" if follows_model_flag else "--model="
        if follows_model_flag or argument.startswith(prefix):
            module_path, separator, class_name = argument.removeprefix(prefix).rpartition(":")
            if separator and module_path.endswith(".py"):
                # _check_snapshot_root has made sure that the file lies in the snapshot root.
                relative = pathlib.Path(module_path).resolve().relative_to(snapshot_root)
                argument = f"{prefix}{relative.as_posix()}:{class_name}"
        rewritten.append(argument)
    return rewritten


def _parse_tags(texts: Sequence[str]) -> dict[str, str]:
    tags = {}
    for text in texts:
        key, separator, value = text.partition("=")
        if not separator or not key.strip():
            raise UsageError(f"invalid --tag {text!r}: write it as KEY=VALUE, as in --tag owner=me")
        if key.strip() in ("container", "command_line"):
            raise UsageError(
                f"invalid --tag {text!r}: every job gets the tag {key.strip()!r} from the runner; "
                "choose another key"
            )
        tags[key.strip()] = value
    return tags


def _devices_per_node(devices: str, num_nodes: int) -> int:
    """Return the device count that `--devices` names, for Azure ML's process count."""
    text = devices.strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    indices = [item for item in text.strip("[]").split(",") if item.strip()]
    if "," in text and all(item.strip().isdigit() for item in indices):
        return len(indices)
    raise UsageError(
        f"--num_nodes={num_nodes} needs the number of devices per node, but --devices is "
        f"{devices!r}; set --devices to the number of GPUs of one node of the cluster, as in "
        "--devices=4"
    )


def _read_conda_file(path: pathlib.Path) -> Any:
    from azureml.core.conda_dependencies import CondaDependencies

    if not path.is_file():
        raise UsageError(f"--conda_env {path}: file not found")
    try:
        dependencies = CondaDependencies(conda_dependencies_file_path=str(path))
    # azureml-core reports a malformed file with the errors of its vendored YAML parser.
    except Exception as error:
        message = getattr(error, "message", None) or " ".join(str(error).split())
        raise UsageError(f"--conda_env {path}: invalid conda environment file: {message}") from None

    python = dependencies.get_python_version()
    if python is None:
        dependencies.set_python_version(AZUREML_PYTHON_VERSION)
        return dependencies
    version = re.match(r"(\d+)\.(\d+)", python)
    if version is None or (int(version[1]), int(version[2])) < MIN_PYTHON_VERSION:
        oldest = ".".join(map(str, MIN_PYTHON_VERSION))
        raise UsageError(
            f"--conda_env {path}: python={python} is older than {oldest}, the oldest Python that "
            f"{PROGRAM} runs on; set python={AZUREML_PYTHON_VERSION} in the file"
        )
    return dependencies


def _package_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


def _create_authentication() -> Any:
    from azureml.core.authentication import (
        AzureCliAuthentication,
        InteractiveLoginAuthentication,
        ServicePrincipalAuthentication,
    )

    tenant_id, client_id, secret = (os.environ.get(name) for name in SERVICE_PRINCIPAL_ENV)
    if tenant_id and client_id and secret:
        logger.info("Logging in to Azure as service principal %s", client_id)
        return ServicePrincipalAuthentication(
            tenant_id=tenant_id, service_principal_id=client_id, service_principal_password=secret
        )
    if sys.stdin.isatty():
        # This uses the Azure CLI's login when there is one, and otherwise prompts in the terminal.
        return InteractiveLoginAuthentication()
    return AzureCliAuthentication()


def _check_cluster(workspace: Any, cluster: str) -> None:
    try:
        clusters = sorted(workspace.compute_targets)
    except Exception as error:
        raise _describe_azureml_failure("listing the compute targets", error) from None
    if cluster not in clusters:
        raise UsageError(
            f"--cluster {cluster}: workspace {workspace.name} has no compute target of that name; "
            f"choose one of: {', '.join(clusters) or 'none (create a compute cluster first)'}"
        )


def _get_dataset(workspace: Any, name: str, input_name: str, options: argparse.Namespace) -> Any:
    """Look up the registered file dataset, and return it as a job input in its mode."""
    from azureml.core import Dataset
    from azureml.data import FileDataset
    from azureml.exceptions import UserErrorException

    try:
        dataset = Dataset.get_by_name(workspace, name=name)
    except UserErrorException as error:
        raise UsageError(
            f"--azureml_dataset {name}: {_redact(error.message)}; check the name among the data "
            f"assets of workspace {workspace.name}"
        ) from None
    except Exception as error:
        raise _describe_azureml_failure(f"looking up dataset {name!r}", error) from None
    if not isinstance(dataset, FileDataset):
        raise UsageError(
            f"--azureml_dataset {name}: a {type(dataset).__name__}, but only a file dataset can be "
            "mounted or downloaded; register the files as a file dataset"
        )
    named = dataset.as_named_input(input_name)
    return named.as_mount() if options.azureml_dataset_mode == "mount" else named.as_download()


def _submit(workspace: Any, experiment: str, config: Any, tags: dict[str, str]) -> Any:
    from azureml.core import Experiment

    try:
        return Experiment(workspace, experiment).submit(config, tags=tags)
    except Exception as error:
        raise _describe_azureml_failure("submitting the job", error) from None


def _describe_azureml_failure(action: str, error: Exception) -> UsageError:
    """Turn an error of azureml-core or of the network into one line with the likely fix."""
    import requests
    from azureml.exceptions import AuthenticationException

    message = _redact(getattr(error, "message", None) or str(error))
    if isinstance(error, AuthenticationException):
        return UsageError(
            f"Azure ML authentication failed while {action}: {message}; log in with 'az login', "
            "or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET to log in as a "
            "service principal"
        )
    if isinstance(error, requests.exceptions.RequestException):
        return UsageError(
            f"cannot reach Azure ML while {action}: {message}; check the network connection "
            "and any proxy settings, then try again"
        )
    return UsageError(f"Azure ML failed while {action}: {type(error).__name__}: {message}")


def _redact(text: str) -> str:
    """Replace the service principal's secret in `text`, so that no message shows it."""
    secret = os.environ.get("AZURE_CLIENT_SECRET")
    return " ".join(text.replace(secret, "***").split()) if secret else " ".join(text.split())


def _metric_value(value: Any) -> float | None:
    """Return a metric's value as a float, or None when it is not a single number."""
    import numpy

    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    if isinstance(value, (bool, int, float, numpy.bool_, numpy.integer, numpy.floating)):
        return float(value)
    return None


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
        if run.options.azureml:
            return submit_to_azureml(run, sys.argv[1:] if argv is None else argv)
        if run.options.dry_run:
            create_trainer(run.container, run.module)
            print("\n".join(resolved_arguments(run)))
            return 0
        apply_distributed_environment()
        trainer, run_folder = start_run(run)
    except UsageError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2

    try:
        train(run, trainer, run_folder)
        run_inference(run.container, run.module, trainer)
    except Exception:
        # Logged rather than left to Python, so that the traceback is in the log file too.
        logger.exception("The run failed; its folder is %s", run_folder)
        return 1
    return 0


def configure_run(argv: Sequence[str]) -> Run | None:
    """Parse the command line, load the container, create its module, and apply every flag.

    Returns None when it printed the runner's help. Raises UsageError for any mistake, before
    anything is written to disk.
    """
    runner_parser = create_runner_parser()
    runner_names = runner_flag_names(runner_parser)
    arguments = expand_argument_files(argv)
    options, rest = parse_known_flags(runner_parser, arguments, runner_names)
    resume = None
    if options.resume_from is not None:
        resume = find_resume_point(options.resume_from)
        if resume.run_folder is not None:
            # The run folder's own flags come first, so that the command line overrides them.
            saved = expand_argument_files([f"@{resume.run_folder / 'args.txt'}"])
            saved_model = parse_known_flags(runner_parser, saved, runner_names)[0].model
            if options.model is not None and options.model != saved_model:
                raise UsageError(
                    f"--model {options.model}: the run folder {resume.run_folder} was trained "
                    f"with --model {saved_model}; leave out --model to continue it"
                )
            arguments = [*saved, *arguments]
            options, rest = parse_known_flags(runner_parser, arguments, runner_names)
    if options.model is None:
        if options.help:
            runner_parser.print_help()
            return None
        # A misspelt --model, such as --mod, is named, rather than reported as missing.
        flags = [argument.partition("=")[0] for argument in rest if argument.startswith("-")]
        if any(difflib.get_close_matches(flag, ["--model"], cutoff=0.6) for flag in flags):
            raise UsageError(describe_unknown(rest, runner_names))
        raise UsageError("the flag --model is required, as in --model example_container.Dummy")
    check_output_root(options.output_to)

    # Container flags are applied before create_lightning_module, so that the module can be
    # built from them.
    container = load_container_class(options.model)()
    container_flags = collect_flags([container], runner_parser)
    container_parser = create_parser(runner_parser, [("container", container_flags)])
    given, _ = parse_known_flags(container_parser, rest, [*runner_names, *container_flags])
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
        raise UsageError(describe_unknown(unknown, [*runner_names, *module_flags]))
    apply_flags(module_flags, vars(given), [module])
    check_optimizer_settings(module)
    if resume is not None:
        resume.epoch = read_checkpoint_epoch(resume.checkpoint)
        trained = resume.epoch
        if typing.cast(TrainerParams, module).num_epochs < trained:
            raise UsageError(
                f"--num_epochs={typing.cast(TrainerParams, module).num_epochs}: the checkpoint "
                f"{resume.checkpoint} already holds epoch {trained}; give at least --num_epochs="
                f"{trained}"
            )
    return Run(options, container, module, container_flags, module_flags, resume)


def resolved_arguments(run: Run) -> list[str]:
    """Return the run's configuration as flags, one per line of args.txt, replayable with @."""
    # --resume_from is an action, not a configuration: a replay starts a new run. A model file is
    # written as an absolute path, so that the replay works from any folder.
    model = run.options.model
    module_path, separator, class_name = model.rpartition(":")
    if separator and module_path.endswith(".py"):
        model = f"{pathlib.Path(module_path).resolve()}:{class_name}"
    lines = [f"--model={model}", f"--output_to={run.options.output_to}"]
    for name, flag in run.module_flags.items():
        # A name on both the container and its module records the container's value, which
        # --help shows too: replaying the flag sets it on both.
        value = getattr(flag.targets[0], name)
        lines.append(f"--{name}={format_value(flag.parameter, value)}")
    return lines


def start_run(run: Run) -> tuple[pl.Trainer, pathlib.Path]:
    """Create the Trainer and a new run folder for it, and point the module at that folder.

    The Trainer is created before its folder, so that invalid Trainer settings leave nothing on
    disk. An extra DDP process, which runs this script again, joins the first process's folder.
    """
    joined = os.environ.get(RUN_FOLDER_ENV)
    job_folders = azureml_job_folders()
    if job_folders is not None:
        # Every process of an Azure ML job writes where Azure ML uploads from.
        run_folder = job_folders.outputs
        point_module_at(run.module, run_folder, job_folders.logs)
        trainer = create_trainer(run.container, run.module)
        run_folder.mkdir(exist_ok=True)
        restart_checkpoint = azureml_checkpoint_to_resume(run_folder)
        if restart_checkpoint is not None and run.resume is None:
            run.resume = Resume(restart_checkpoint, run_folder)
            run.resume.epoch = read_checkpoint_epoch(restart_checkpoint)
        if os.environ.get("LOCAL_RANK", "0") == "0":
            if run.resume is not None:
                continue_metrics(trainer, run.resume.epoch)
            (run_folder / "args.txt").write_text("\n".join(resolved_arguments(run)) + "\n")
    elif joined is not None and os.environ.get("LOCAL_RANK", "0") != "0":
        run_folder = pathlib.Path(joined)
        point_module_at(run.module, run_folder)
        trainer = create_trainer(run.container, run.module)
    elif run.resume is not None and run.resume.run_folder is not None:
        run_folder = run.resume.run_folder
        point_module_at(run.module, run_folder)
        trainer = create_trainer(run.container, run.module)
        continue_metrics(trainer, run.resume.epoch)
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
            except OSError as error:
                raise UsageError(
                    f"--output_to {run.options.output_to}: cannot create {run_folder}: "
                    f"{error.strerror}; choose another folder"
                ) from None
        (run_folder / "args.txt").write_text("\n".join(resolved_arguments(run)) + "\n")

    logs_folder = typing.cast(OutputParams, run.module).logs_folder
    logs_folder.mkdir(exist_ok=True)
    configure_logging(logs_folder)
    logger.info("Run folder: %s", run_folder)
    return trainer, run_folder


def point_module_at(
    module: pl.LightningModule, run_folder: pathlib.Path, logs_folder: pathlib.Path | None = None
) -> None:
    """Set the module's outputs_folder to the run folder, and logs_folder (default: its logs/)."""
    output_params = typing.cast(OutputParams, module)
    with param.edit_constant(output_params):
        output_params.outputs_folder = run_folder
        output_params.logs_folder = run_folder / "logs" if logs_folder is None else logs_folder


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

    # This save records the state after fit() finished, which the callback leaves out. Every rank
    # takes part in saving.
    save_checkpoint(trainer, run_folder / "checkpoints" / "last.ckpt")
    if run.resume is not None and run.resume.run_folder is not None and trainer.global_rank == 0:
        # Only now, so that a failed resume leaves the run folder's configuration as it was.
        (run_folder / "args.txt").write_text("\n".join(resolved_arguments(run)) + "\n")
    logger.info("Training finished; checkpoints are in %s", run_folder / "checkpoints")


if __name__ == "__main__":
    # Containers import this file as `innereye_min`. Running that copy, not `__main__`, gives the
    # runner and the containers the same classes.
    runner = importlib.import_module(__spec__.name if __spec__ else pathlib.Path(__file__).stem)
    sys.exit(runner.main())
