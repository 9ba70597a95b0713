"""CCC, losses and the (seeded, deterministic) training loops of the distillation pipeline."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from sertest.seeding import derive_rng, derive_seed

from data import SR, bucket_batches, crop_batch, light_noise


def ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Concordance correlation coefficient ``2·cov / (var_x + var_y + (mean_x − mean_y)²)``
    with population (co)variances."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mx, my = x.mean(), y.mean()
    cov = np.mean((x - mx) * (y - my))
    den = x.var() + y.var() + (mx - my) ** 2
    return float(2 * cov / den) if den > 0 else float("nan")


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over columns of ``1 − CCC`` (the Wav2Small distillation loss)."""
    mp, mt = pred.mean(0), target.mean(0)
    vp = ((pred - mp) ** 2).mean(0)
    vt = ((target - mt) ** 2).mean(0)
    cov = ((pred - mp) * (target - mt)).mean(0)
    return (1 - 2 * cov / (vp + vt + (mp - mt) ** 2 + 1e-8)).mean()


def setup_torch(threads: int) -> None:
    """Fixed thread count and deterministic kernels."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.use_deterministic_algorithms(True, warn_only=True)


def _schedule(opt: torch.optim.Optimizer, lr: float, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1),
                                               pct_start=0.15, anneal_strategy="cos")


def train_teacher(model: nn.Module, signals: list[np.ndarray], targets: np.ndarray,
                  emotions: np.ndarray, *, epochs: int, batch_size: int, lr: float, seed: int,
                  max_seconds: float, class_weight: float = 0.5,
                  log: Callable[[str], None] = print) -> list[float]:
    """Train the teacher on nominal labels: CCC loss (A/D/V) + ``class_weight`` × CE (emotion).

    Inputs are random crops (batch-wise, to the shortest item, ≤ ``max_seconds`` s) with
    light white noise (no pitch or tempo change, so the nominal labels stay valid).
    """
    torch.manual_seed(derive_seed(seed, "teacher", "torch"))
    lengths = np.array([x.size for x in signals])
    n_batches = len(bucket_batches(lengths, batch_size, derive_rng(seed, "count")))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = _schedule(opt, lr, epochs * n_batches)
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    y_all = torch.from_numpy(targets)
    e_all = torch.from_numpy(emotions)
    history = []
    for epoch in range(epochs):
        t0, c0 = time.time(), time.process_time()
        model.train()
        rng = derive_rng(seed, "teacher", "epoch", epoch)
        total = 0.0
        for idx in bucket_batches(lengths, batch_size, rng):
            x = torch.from_numpy(crop_batch(signals, idx, rng, int(max_seconds * SR), light_noise))
            dims, logits = model(x)
            loss = ccc_loss(dims, y_all[idx]) + class_weight * ce(logits, e_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(signals))
        log(f"  teacher epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f} "
            f"({time.time() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU)")
    model.eval()
    return history


def train_student(model: nn.Module, signals: list[np.ndarray], targets: np.ndarray, *,
                  name: str, epochs: int, batch_size: int, lr: float, seed: int,
                  max_seconds: float, log: Callable[[str], None] = print) -> list[float]:
    """Train a student on teacher outputs only, with the CCC loss."""
    torch.manual_seed(derive_seed(seed, name, "torch"))
    lengths = np.array([x.size for x in signals])
    n_batches = len(bucket_batches(lengths, batch_size, derive_rng(seed, "count")))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = _schedule(opt, lr, epochs * n_batches)
    y_all = torch.from_numpy(targets.astype(np.float32))
    history = []
    for epoch in range(epochs):
        t0, c0 = time.time(), time.process_time()
        model.train()
        rng = derive_rng(seed, name, "epoch", epoch)
        total = 0.0
        for idx in bucket_batches(lengths, batch_size, rng):
            if len(idx) < 4:        # CCC needs a few items; BatchNorm needs > 1
                continue
            x = torch.from_numpy(crop_batch(signals, idx, rng, int(max_seconds * SR)))
            loss = ccc_loss(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(signals))
        log(f"  {name} epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f} "
            f"({time.time() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU)")
    model.eval()
    return history


@torch.inference_mode()
def predict(fn: Callable[[torch.Tensor], torch.Tensor], signals: list[np.ndarray]) -> np.ndarray:
    """Apply ``fn`` to each full-length signal (batch of one); rows stacked."""
    rows = [fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, :])
            for x in signals]
    return torch.cat(rows, dim=0).double().numpy()
