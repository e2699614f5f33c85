"""Alignment on the shapes world: `python -m bench.alignment --algo grpo|ppo|dpo|reward --json`.

One entry point for the alignment benchmarks; each algorithm's measurement lives in its own module:

- `--algo reward`: reward model on simulated judgments, held-out accuracy against the raters'
  Bayes ceiling (bench/alignment_reward.py);
- `--algo dpo`: Diffusion-DPO on simulated judgments, win rate over the base by the verifier on
  held-out prompts (bench/alignment_dpo.py);
- `--algo grpo` / `--algo ppo`: verifier accuracy before/after and its curve over wall time,
  diversity before/after; PPO also reports the learned-reward/verifier gap (bench/alignment_rl.py).

Arguments after `--algo` are passed on to that module (see its `--help`). The last line printed
is one JSON object.
"""

import argparse
import importlib
import sys

MODULES = {
    "reward": "bench.alignment_reward",
    "dpo": "bench.alignment_dpo",
    "grpo": "bench.alignment_rl",
    "ppo": "bench.alignment_rl",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", required=True, choices=sorted(MODULES))
    args, rest = parser.parse_known_args(argv)
    module = importlib.import_module(MODULES[args.algo])
    if args.algo in ("grpo", "ppo"):
        rest = ["--algo", args.algo, *rest]
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
