"""What the Lightning engine costs on CPU: images/s of training steps through the engine against a bare loop
over the same model, the same DataLoader and the same batches, in one run (goal: the engine costs ≤ 5 %).

Usage: python bench/engine_overhead.py [--root TREE] [--json FILE]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import report, twin_root  # noqa: E402
from _engine_timing import StepTimer  # noqa: E402

from hyperkvasir.classify.config import ClassifyConfig  # noqa: E402
from hyperkvasir.classify.data import ClassifyData  # noqa: E402
from hyperkvasir.classify.module import ClassifyModule  # noqa: E402
from hyperkvasir.engine import EngineOptions, RunFolder, seed_everything  # noqa: E402
from hyperkvasir.engine.trainer import build_trainer  # noqa: E402

WARMUP, STEPS = 3, 20


def bare_loop(module: ClassifyModule, loader) -> float:
    """The baseline: the same steps written by hand."""
    optimizer = torch.optim.SGD(module.model.parameters(), lr=module.config.lr, momentum=0.9)
    module.train()
    images_seen, started = 0, 0.0
    for index, (images, targets, _, _) in enumerate(loader):
        if index == WARMUP:
            started = time.perf_counter()
        loss = module.loss(module(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index >= WARMUP:
            images_seen += len(targets)
        if index == WARMUP + STEPS - 1:
            return images_seen / (time.perf_counter() - started)
    raise SystemExit("the tree is too small for the benchmark's steps")


def main() -> None:
    args, root = twin_root(__doc__.splitlines()[0])
    config = ClassifyConfig(
        root=str(root),
        model="tf_efficientnet_lite0",
        input_size=96,
        batch_size=16,
        workers=0,
        pretrained=False,
        epochs=1,
        max_steps_per_epoch=WARMUP + STEPS,
        val_fraction=0.02,
    )
    data = ClassifyData(config)
    data.prepare_data()
    data.setup()
    bare_rates, engine_rates = [], []
    for _ in range(2):  # interleaved, so drift of the machine hits both alike
        seed_everything(0)
        bare_rates.append(bare_loop(ClassifyModule(config), data.train_dataloader()))
        seed_everything(0)
        timer = StepTimer(WARMUP, STEPS)
        run = RunFolder(Path(tempfile.mkdtemp(prefix="hk-engine-")) / "run")
        run.start(config, resume=False)
        trainer = build_trainer(
            run.path,
            EngineOptions(
                epochs=1, monitor="val_macro_f1", device="cpu", max_steps_per_epoch=WARMUP + STEPS, progress=False
            ),
        )
        trainer.callbacks.append(timer)
        trainer.fit(ClassifyModule(config), datamodule=data)
        engine_rates.append(timer.rate)
    bare, engine = max(bare_rates), max(engine_rates)
    report(
        args,
        {
            "model": config.model,
            "input_size": config.input_size,
            "batch_size": config.batch_size,
            "threads": torch.get_num_threads(),
            "steps": STEPS,
            "bare_loop_img_per_s": [round(r, 1) for r in bare_rates],
            "engine_img_per_s": [round(r, 1) for r in engine_rates],
            "engine_over_bare_best_of_two": round(engine / bare, 3),
        },
    )


if __name__ == "__main__":
    main()
