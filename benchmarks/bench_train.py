"""Training throughput on this machine: decode, input pipeline and train step, in images/second.

    PYTHONPATH=. python benchmarks/bench_train.py [--data ../shared/data/pbc] [--model bcc-small]
        [--image-size 128] [--batch-size 64] [--images 2048] [--steps 20] [--json OUT]

Baselines are measured in the same run, so the ratios hold on a busy machine too:
- decode: `load_arrays` without the cache vs from the cache (what epochs 2..N and later runs pay);
- training: the bare train step on one resident batch (compute only) vs the real loop (the
  run's tf.data pipeline with augmentation feeding the same step): ratio = pipeline overhead.
Without --data (or when it is missing) synthetic JPEGs are written to a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bcc_edge import data, train  # noqa: E402
from bcc_edge.preprocess import PreprocessSpec, usable_cpus  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pbc"


def _records(path: Path | None, count: int, scratch: Path):
    if path is None or not path.is_dir():
        from bcc_edge.synthetic import write_image_folder

        path = write_image_folder(scratch / "synthetic", per_class=max(2, count // 4 + 1), size=(360, 363))
    index = data.discover(path)
    return (index.train + index.val)[:count], len(index.labels), str(path)


def _rate(fn, items: int, repeat: int = 1) -> float:
    fn()  # warm-up: tracing, caches, thread pools
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return items * repeat / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="bcc-small")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--augment", default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    from bcc_edge import distribute
    from bcc_edge._tf import tf

    cfg = train.TrainConfig(data="-", out="-", model=args.model, image_size=args.image_size, batch_size=args.batch_size, augment=args.augment).resolved()
    spec = PreprocessSpec((cfg.image_size, cfg.image_size), cfg.interpolation, jpeg_draft=cfg.jpeg_draft)
    with tempfile.TemporaryDirectory() as scratch:
        records, num_classes, source = _records(args.data, args.images, Path(scratch))
        cache = Path(scratch) / "cache"
        decode = _rate(lambda: data.load_arrays(records, spec, use_cache=False, progress=False), len(records))
        data.load_arrays(records, spec, cache, progress=False)  # fill the cache
        cached = _rate(lambda: data.load_arrays(records, spec, cache, progress=False), len(records))
        images, labels, _ = data.load_arrays(records, spec, cache, progress=False)
    mean, std = data.channel_stats(images)
    spec = dataclasses.replace(spec, mean=mean, std=std)
    arrays = train._Arrays(images, labels, images[:64], labels[:64], [str(i) for i in range(num_classes)], spec)

    runtime = distribute.configure("default", "auto", "auto")
    steps_per_epoch = len(images) // cfg.batch_size
    model, optimizer = train._build_or_restore(Path(tempfile.gettempdir()) / "bcc-edge-bench-none", cfg, arrays, runtime)
    step = train._train_step(model, optimizer, runtime, num_classes, cfg.label_smoothing, train._class_weights(cfg, labels, num_classes), cfg.batch_size)

    resident = iter(tf.data.Dataset.from_tensors(next(iter(data.make_dataset(images, labels, spec, cfg.batch_size, training=False)))).repeat())
    compute = _rate(lambda: [step(resident) for _ in range(args.steps)][-1][0].numpy(), args.steps * cfg.batch_size)
    pipeline_only = iter(data.make_dataset(images, labels, spec, cfg.batch_size, training=True, augment=cfg.augment).repeat())
    pipeline = _rate(lambda: [next(pipeline_only) for _ in range(args.steps)], args.steps * cfg.batch_size)
    epochs = 1 + (2 * args.steps) // max(1, steps_per_epoch) + 1
    cfg_epochs = dataclasses.replace(cfg, epochs=epochs)
    loop = iter(train._train_dataset(arrays, cfg_epochs, runtime, steps_per_epoch, 0, 0))
    full = _rate(lambda: [step(loop) for _ in range(args.steps)][-1][0].numpy(), args.steps * cfg.batch_size)

    result = {
        "model": cfg.model,
        "image_size": cfg.image_size,
        "batch_size": cfg.batch_size,
        "augment": cfg.augment,
        "data": source,
        "images": len(images),
        "cpus": usable_cpus(),
        "decode_img_per_s": round(decode, 1),
        "cached_img_per_s": round(cached, 1),
        "cache_speedup": round(cached / decode, 2),
        "train_step_compute_img_per_s": round(compute, 1),
        "input_pipeline_img_per_s": round(pipeline, 1),
        "train_loop_img_per_s": round(full, 1),
        "train_loop_vs_compute": round(full / compute, 3),
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
