"""Generation throughput: `python -m bench.generation --json`.

For each built-in shapes model, samples/s through our sampler that records per-step log-probs
(`sampling.sample_with_logprobs`, DDIM eta for epsilon models, the SDE for flow models) against the
plain diffusers pipeline call (`pipe(prompts, num_inference_steps=...)`) on the same model, batch and
steps, in alternating runs within one invocation (so both see the same machine state). Target: our
time / plain time <= 1.10. Shipped weights are used where present, else a freshly built model of
the same architecture (speed does not depend on the weights). The last line is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import time

BUILTINS = ("shapes-image-eps", "shapes-image-flow", "shapes-video", "shapes-multiview")


def _load(name: str):
    from training.algorithms.builders import build_pipeline
    from training.algorithms.loading import load_generator, policy_from_pipeline
    from training.shapes import grammar

    try:
        return load_generator(name), "shipped"
    except FileNotFoundError:
        pipe = build_pipeline(name, grammar.vocabulary())
        for module in pipe.components.values():
            if hasattr(module, "eval"):
                module.eval().requires_grad_(False)
        return policy_from_pipeline(pipe, source=name), "freshly built (no shipped weights)"


def _measure(name: str, *, batch: int, steps: int, repeats: int, eta: float) -> dict:
    import torch

    from training.algorithms.sampling import sample_with_logprobs
    from training.shapes import grammar

    policy, weights = _load(name)
    modality = {"image": "image", "video": "video", "views": "multiview"}[policy.modality]
    specs = grammar.eval_prompts_for_modality(modality)
    prompts = [specs[i % len(specs)].text for i in range(batch)]
    seeds = list(range(batch))

    def ours() -> None:
        sample_with_logprobs(policy, prompts, seeds=seeds, steps=steps, eta=eta)

    def plain() -> None:
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        with torch.no_grad():
            policy.pipeline(prompts, num_inference_steps=steps, generator=generators)

    ours(), plain()  # warm-up: first calls pay for allocation and lazy initialisation
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    pair = (("ours", ours), ("plain", plain))
    for r in range(repeats):
        # Alternate which runs first, so neither always inherits the other's warm caches.
        for label, fn in pair if r % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    ours_s, plain_s = statistics.median(times["ours"]), statistics.median(times["plain"])
    return {
        "model": name,
        "weights": weights,
        "batch": batch,
        "steps": steps,
        "eta": eta,
        "ours_samples_per_s": round(batch / ours_s, 2),
        "plain_samples_per_s": round(batch / plain_s, 2),
        "overhead_ratio": round(ours_s / plain_s, 3),
        "ours_s": [round(t, 3) for t in times["ours"]],
        "plain_s": [round(t, 3) for t in times["plain"]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(BUILTINS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--eta", type=float, default=1.0, help="DDIM eta / flow noise level of our sampler")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'model':<20}{'weights':<12}{'ours/s':>9}{'plain/s':>9}{'ratio':>8}")
    for name in args.models:
        row = _measure(name, batch=args.batch, steps=args.steps, repeats=args.repeats, eta=args.eta)
        rows.append(row)
        print(
            f"{name:<20}{row['weights'][:10]:<12}{row['ours_samples_per_s']:>9}{row['plain_samples_per_s']:>9}"
            f"{row['overhead_ratio']:>8}",
            flush=True,
        )
    worst = max(r["overhead_ratio"] for r in rows)
    summary = {
        "models": rows,
        "worst_overhead_ratio": worst,
        "target_met": worst <= 1.10,
        "threads": args.threads,
        "torch": torch.__version__,
    }
    print(f"worst overhead ratio {worst} (target <= 1.10: {'met' if worst <= 1.10 else 'MISSED'})")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
