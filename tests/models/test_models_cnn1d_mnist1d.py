"""cnn1d learns MNIST-1D quickly on a CPU (a few seconds for a few epochs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softlabels.models import create_model


@pytest.mark.slow
def test_cnn1d_learns_mnist1d() -> None:
    data = pytest.importorskip("mnist1d.data")
    d = data.make_dataset(data.get_dataset_args())  # generated locally, no download
    x = torch.tensor(d["x"], dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d["y"])
    x_test = torch.tensor(d["x_test"], dtype=torch.float32).unsqueeze(1)
    y_test = torch.tensor(d["y_test"])
    model = create_model("cnn1d", num_classes=10, in_channels=1, seed=0)
    epochs, batch = 8, 128
    steps = epochs * ((len(x) + batch - 1) // batch)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert acc > 0.85, f"cnn1d reached only {acc:.3f} test accuracy on MNIST-1D"
