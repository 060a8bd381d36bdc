"""``autodiff.mnist``: the ``bp.mnist`` network trained by creditlab's own NumPy engine.

The run is built to differ from ``bp.mnist`` in one thing only, who computes the gradients:
the torch model is built exactly as ``bp.mnist`` builds it (after the runner's seeding, so its
random initial weights are the same), its weights are copied into the engine, and training
uses the same examples in the same order (``creditlab.train.fit``), the same Adam and the same
cosine schedule. The test accuracies then agree to within float32 rounding noise, and
``samples_per_second`` says what the readable engine costs. ``--set model=cnn`` trains the
bp.mnist CNN the same way (im2col convolutions and max-pooling, slower than torch's).
"""

from __future__ import annotations

import numpy as np
import torch

from creditlab.autodiff import nn
from creditlab.autodiff.learner import EngineClassifier, from_torch
from creditlab.models import build_classifier
from creditlab.registry import experiment
from creditlab.runner import RunContext
from creditlab.train import MNIST_MLP_SCALES, ClassifierConfig, fit, load_split


@experiment(
    "autodiff.mnist",
    config=ClassifierConfig,
    paper_title="The Backpropagation Algorithm Demystified (a readable NumPy reverse-mode engine)",
    scales=MNIST_MLP_SCALES,
    demo=True,
)
def autodiff_mnist(cfg: ClassifierConfig, ctx: RunContext) -> dict[str, float]:
    """The bp.mnist MLP trained by creditlab's NumPy autodiff engine instead of torch.autograd."""
    ds, (x_train, y_train, x_test, y_test) = load_split(cfg.dataset, cfg.n_train, ctx)
    # Built exactly as bp.mnist builds it, right after the same seeding: the same initial weights.
    reference = build_classifier(
        cfg.model, ds.input_shape, ds.n_classes, cfg.hidden, cfg.channels, cfg.activation
    )
    model = from_torch(reference)
    params = model.parameters()
    if cfg.optimizer == "adam":
        optimizer: nn.Optimizer = nn.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        optimizer = nn.SGD(params, cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * max(1, len(x_train) // cfg.batch_size)
    # The learner keeps the images (train, then test) as one NumPy array; fit sees their ids.
    images = np.concatenate([x_train.cpu().numpy(), x_test.cpu().numpy()])
    ids = torch.arange(len(images), device=x_train.device)
    train_ids, test_ids = ids[: len(x_train)], ids[len(x_train) :]
    learner = EngineClassifier(model, optimizer, images, cfg.lr, steps)
    metrics = fit(
        ctx,
        learner,
        train_ids,
        y_train,
        test_ids,
        y_test,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
    )
    metrics["parameters"] = sum(p.data.size for p in params)
    if learner.train_samples:
        metrics["samples_per_second"] = learner.train_samples / learner.train_seconds
    return metrics
