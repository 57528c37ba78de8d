"""The smallest complete container: copy it, then change only what your model needs.

    python innereye_min.py --model example_container.Dummy --num_epochs=5

The model learns a fixed linear function of 4 inputs from noisy samples. It trains on a CPU in
seconds, and after inference `outputs_folder/inference/` contains one predictions file and one
metrics file per split.
"""

from __future__ import annotations

import csv
from typing import Any

import param
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from innereye_min import (
    LightningContainer,
    LightningWithInference,
    ModelExecutionMode,
    OptimizerParams,
)

NUM_INPUTS = 4


class DummyModule(LightningWithInference, OptimizerParams):
    """A small network. OptimizerParams supplies configure_optimizers and its flags."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        # A module may change a flag's default: --help shows 0.01, and --learning_rate overrides it.
        self.learning_rate = 0.01
        # The container passes its hyperparameter in: the layers depend on it.
        self.model = torch.nn.Sequential(
            torch.nn.Linear(NUM_INPUTS, hidden_size),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden_size, 1),
        )
        self.split: ModelExecutionMode | None = None
        self.rows: list[tuple[int, float, float]] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs: torch.Tensor = self.model(inputs)
        return outputs.squeeze(-1)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        inputs, targets, _ = batch
        loss = torch.nn.functional.mse_loss(self(inputs), targets)
        # sync_dist averages an epoch metric over DDP processes instead of using rank zero's alone.
        self.log("train_loss", loss, on_epoch=True, on_step=False, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        inputs, targets, _ = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(inputs), targets), sync_dist=True)

    # The inference hooks: collect one row per item, and write them at the end of each split.
    def on_inference_epoch_start(
        self, dataset_split: ModelExecutionMode, is_ensemble_model: bool
    ) -> None:
        self.split = dataset_split
        self.rows = []

    def inference_step(self, batch: Any, batch_idx: int, model_output: torch.Tensor) -> None:
        _, targets, item_ids = batch
        for item_id, target, prediction in zip(item_ids, targets, model_output, strict=True):
            self.rows.append((int(item_id), float(target), float(prediction)))

    def on_inference_epoch_end(self) -> None:
        assert self.split is not None
        folder = self.outputs_folder / "inference"
        folder.mkdir(parents=True, exist_ok=True)
        split = self.split.value.lower()
        with open(folder / f"{split}_predictions.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["item_id", "target", "prediction"])
            writer.writerows(sorted(self.rows))
        squared_errors = [(target - prediction) ** 2 for _, target, prediction in self.rows]
        with open(folder / f"{split}_metrics.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["split", "items", "mse"])
            writer.writerow([split, len(self.rows), sum(squared_errors) / len(self.rows)])


class DummyDataModule(pl.LightningDataModule):
    """Noisy samples of y = w.x, split 60/20/20 into training, validation and test sets."""

    def __init__(self, num_items: int, batch_size: int) -> None:
        super().__init__()
        # A generator of its own makes the data the same in every run and every DDP process.
        generator = torch.Generator().manual_seed(1234)
        inputs = torch.randn(num_items, NUM_INPUTS, generator=generator)
        weights = torch.tensor([1.5, -2.0, 0.5, 3.0])
        targets = inputs @ weights + 0.1 * torch.randn(num_items, generator=generator)
        item_ids = torch.arange(num_items)
        train_end, val_end = int(0.6 * num_items), int(0.8 * num_items)
        self.splits = {
            "train": TensorDataset(inputs[:train_end], targets[:train_end], item_ids[:train_end]),
            "val": TensorDataset(*(t[train_end:val_end] for t in (inputs, targets, item_ids))),
            "test": TensorDataset(inputs[val_end:], targets[val_end:], item_ids[val_end:]),
        }
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.splits["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.splits["val"], batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.splits["test"], batch_size=self.batch_size)


class Dummy(LightningContainer):
    """The container: its param fields become flags, such as --hidden_size=32."""

    hidden_size = param.Integer(default=16, bounds=(1, None), doc="Width of the hidden layer.")
    num_items = param.Integer(
        default=500, bounds=(10, None), doc="Number of samples in all splits."
    )
    batch_size = param.Integer(default=25, bounds=(1, None), doc="Samples per batch.")

    def create_lightning_module(self) -> DummyModule:
        return DummyModule(hidden_size=self.hidden_size)

    def get_training_data_module(self) -> DummyDataModule:
        return DummyDataModule(num_items=self.num_items, batch_size=self.batch_size)
