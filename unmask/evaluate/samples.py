"""``python -m unmask.evaluate samples``: the paper's comparison on held-out samples of a bundle's own generator.

The faces are ``--faces`` items of the generated-pairs source (:class:`unmask.data.generated.GeneratedPairs`) on
its ``test`` z stream, which training never draws: ``G(z)`` with dlib's landmarks (faceless samples redrawn) and
a mask drawn on them, half procedural (``random``) and half insightface's mask photos where installed. Methods
(:mod:`unmask.evaluate.methods`, all through :class:`unmask.pipeline.UnmaskPipeline`): the masked input, the
generic encoder given the masked face, and unmasking variant (a) with its own predicted mask.

Reported per method: PSNR, SSIM and the perceptual distance (:func:`unmask.evaluate.unmasking.perceptual_distance`)
of the generator's rendering against the unmasked sample inside the true mask, and **dlib's face-ResNet distance
of the output face** (recovered pixels over the method's region, the input's own elsewhere) to the unmasked
sample, both aligned crops of the generator's frame (:func:`unmask.faces.embed.DlibFaceEmbedder.embed` with the
bundle's ``alignment`` template). Also the encoder-mode latency per face of variant (a)
(:meth:`UnmaskPipeline.recover_batch` at batch 1: the encoding and the rendering, detection and alignment excluded;
median of ``--timing-faces``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch

#: Mask types of the held-out masks: procedural ones and (where installed) insightface's mask photos.
HELD_OUT_MASKS = ("random", "photo_black", "photo_blue", "photo_green", "photo_white")
#: z stream of the held-out samples (the trainer's data.z_seed is 0; "test" is its own split too).
HELD_OUT_SEED = 19


def held_out_source(generator: torch.nn.Module, n_faces: int, size: int, *, upsample: int | None = 1):
    """The held-out pairs: ``n_faces`` test-split items of :class:`GeneratedPairs` with dlib landmarks."""
    from unmask.data.generated import GeneratedPairs, dlib_landmarks
    from unmask.faces.masks import PHOTO_MASK_TYPES, available_mask_types

    masks = [m for m in HELD_OUT_MASKS if m not in PHOTO_MASK_TYPES or m in available_mask_types()]
    return GeneratedPairs(generator, n_faces, size, split="test", seed=HELD_OUT_SEED, mask_type=masks,
                          landmarks=dlib_landmarks(upsample=upsample), max_tries=16)


def evaluate_samples(model: str, n_faces: int, *, batch_size: int = 50, timing_faces: int = 50,
                     progress: bool = True) -> tuple[list[dict], dict[str, float], str]:
    """Rows per method (means over the faces), the encoder-mode latency and the perceptual distance's name."""
    from tqdm.auto import tqdm

    from unmask.evaluate.methods import load_methods
    from unmask.evaluate.metrics import region_perceptual, region_quality
    from unmask.evaluate.unmasking import perceptual_distance
    from unmask.faces.io import to_uint8
    from unmask.verify import dlib_embedder

    methods = load_methods(model, keys=("masked", "generic", "a"))
    for key, why in methods.skipped.items():
        print(f"skipped {key}: {why}")
    bundle = methods.bundle
    source = held_out_source(bundle.generator, n_faces, bundle.size)
    distance, perceptual = perceptual_distance()
    embedder = dlib_embedder()
    alignment = bundle.config.alignment
    values: dict[str, dict[str, list[float]]] = {m.name: {} for m in methods.methods.values()}
    for start in tqdm(range(0, n_faces, batch_size), desc="held-out samples", disable=not progress):
        item = source.batch(list(range(start, min(start + batch_size, n_faces))), seed=HELD_OUT_SEED)
        masked, target, mask = item["masked"], item["target"], item["mask"]
        target_e = embedder.embed(list(to_uint8(target)), alignment)
        for method in methods.methods.values():
            with torch.no_grad():
                output, recovered, _ = method.recover(masked, mask, target)
                metrics = {**region_quality(recovered, target, mask),
                           **region_perceptual(recovered, target, mask, distance)}
            output_e = embedder.embed(list(to_uint8(output.clamp(-1, 1))), alignment)
            metrics["dlib_distance"] = torch.from_numpy(np.linalg.norm(output_e - target_e, axis=1))
            for key in ("psnr_inside", "ssim_inside", "perceptual_inside", "dlib_distance"):
                values[method.name].setdefault(key, []).extend(float(v) for v in metrics[key].flatten())
    rows = [{"method": name, "faces": len(v["dlib_distance"]),
             **{k: round(float(np.nanmean(x)), 4) for k, x in v.items()}} for name, v in values.items()]
    timing = {}
    if "a" in methods.methods and timing_faces:
        pipe = methods.methods["a"].pipe
        item = source.batch(list(range(min(timing_faces, n_faces))), seed=HELD_OUT_SEED)
        times = []
        for i in range(len(item["masked"])):
            start = time.perf_counter()
            pipe.recover_batch(item["masked"][i:i + 1], item["mask"][i:i + 1], mode="encoder")
            times.append(time.perf_counter() - start)
        timing = {"encoder_mode_ms_per_face_median": round(1000 * float(np.median(times)), 1),
                  "threads": torch.get_num_threads()}
    return rows, timing, perceptual


def main(argv: Sequence[str]) -> int:
    from unmask.measure import print_table

    parser = argparse.ArgumentParser(prog="python -m unmask.evaluate samples", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="digiface", help="bundle name or folder (with encoder_generic/)")
    parser.add_argument("--faces", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--timing-faces", type=int, default=50)
    args = parser.parse_args(list(argv))
    rows, timing, perceptual = evaluate_samples(args.model, args.faces, batch_size=args.batch_size,
                                                timing_faces=args.timing_faces)
    shown = [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows]
    print_table(f"{args.faces} held-out samples of {args.model}'s generator (inside the mask; perceptual: "
                f"{perceptual}; dlib: distance of the output face to the unmasked sample)", shown)
    masked = next(r for r in rows if r["method"] == "masked input")["dlib_distance"]
    for row in rows:
        print(f"{row['method']}: dlib distance {row['dlib_distance']:.4f} "
              f"({100 * (row['dlib_distance'] - masked) / masked:+.1f} % against the masked input)")
    if timing:
        print_table("encoder mode, batch 1 (encoding + rendering)", [timing])
    return 0
