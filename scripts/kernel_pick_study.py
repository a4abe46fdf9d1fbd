"""Score the blind estimator's pick between its runs on saved cases, without re-running the estimator.

    python scripts/kernel_estimation_sweep.py --motion-cases 0 --tune --whole --all-pairs --images 8 \\
        --kernel-sets levin09_npy,kernels12_npy --each-run --save-cases runs/cases.npz
    python scripts/kernel_pick_study.py runs/cases_levin09_npy.npz runs/cases_kernels12_npy.npz --weights 0,1,2
    python scripts/kernel_pick_study.py runs/cases_levin09_npy.npz runs/cases_kernels12_npy.npz --peaks

The sweep saves, per case, the blurred photo, every run's kernel, its marginal cost and the MSE of
Wiener deconvolution with it (the sweep's proxy for the result). This script recomputes what the
pick needs from the saved photo (the estimator's crop, each run's L0 energy) and reports, for the
first three runs (the three without edge selection) and for all runs, the mean PSNR, the error
ratio (MSE with the kept run over MSE with the true kernel) and the best run per case (an oracle),
at each `pick_map_weight` given: 0 is the marginal cost alone, the default
(KernelEstimateSettings.pick_map_weight) weighs in the L0 energy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_runtime.kernel_estimation import (DEFAULT_CROP, KernelEstimateSettings, estimation_region, l0_energy,  # noqa: E402
                                            pick_run)


def load_cases(path: Path) -> tuple[list[dict], list[str]]:
    """The cases of one saved sweep (kernel set) and the labels of its runs."""
    with np.load(path) as z:
        count = len({name.split("/")[0] for name in z.files if "/" in name})
        cases = [{key: z[f"{j}/{key}"] for key in ("blurred", "kernels", "costs", "run_mse", "true_mse")}
                 for j in range(count)]
        return cases, [str(label) for label in z["labels"]]


def summary(label: str, cases: list[dict], picks: list[int]) -> str:
    mse = np.array([c["run_mse"][p] for c, p in zip(cases, picks)])
    ratio = mse / np.array([float(c["true_mse"]) for c in cases])
    return (f"  {label:34s} mean PSNR {np.mean(-10 * np.log10(mse)):.2f} dB; error ratio median "
            f"{np.median(ratio):.2f}, <= 3 on {100 * np.mean(ratio <= 3):.0f}%")


def peaks(path: Path, floor: float) -> None:
    """The largest value of every run's kernel (sum 1) over the cases: how close the estimates of
    real blurs come to the no-blur check (KernelEstimateSettings.no_blur_peak)."""
    cases, labels = load_cases(path)
    top = np.array([[float(k.max()) for k in c["kernels"]] for c in cases])
    print(f"{path.name}: {len(cases)} cases, {len(labels)} runs each; kernel peak median {np.median(top):.3f}, "
          f"largest {top.max():.3f}; runs at or above no_blur_peak {floor:g}: {int((top >= floor).sum())}")


def study(path: Path, weights: list[float]) -> None:
    cases, labels = load_cases(path)
    for case in cases:
        region = estimation_region(case["blurred"], case["kernels"].shape[-1], DEFAULT_CROP)
        case["energies"] = np.array([l0_energy(region, k) for k in case["kernels"]])
    wiener_true = np.mean([-10 * np.log10(float(c["true_mse"])) for c in cases])
    print(f"{path.name}: {len(cases)} cases, {len(labels)} runs each; Wiener with the true kernel {wiener_true:.2f} dB")
    for pool in sorted({min(3, len(labels)), len(labels)}):
        print(f" the first {pool} runs")
        print(summary("best run per case (oracle)", cases, [int(np.argmin(c["run_mse"][:pool])) for c in cases]))
        for weight in weights:
            picks = [pick_run(tuple(c["costs"][:pool]), tuple(c["energies"][:pool]), weight) for c in cases]
            print(summary(f"pick, pick_map_weight {weight:g}", cases, picks))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="+", type=Path, help="FILE_<kernel set>.npz written by the sweep's --save-cases")
    ap.add_argument("--weights", default="0,0.5,1,2", help="comma list of pick_map_weight values (0: marginal cost alone)")
    ap.add_argument("--peaks", action="store_true",
                    help="only report each run's kernel peak against the no-blur check (fast; no pick study)")
    args = ap.parse_args(argv)
    try:
        weights = [float(v) for v in args.weights.split(",")]
    except ValueError:
        ap.error(f"--weights: expected a comma list of numbers, got {args.weights!r}")
    if any(not np.isfinite(w) or w < 0 for w in weights):
        ap.error("--weights: each weight must be a finite number >= 0")
    missing = [str(p) for p in args.cases if not p.is_file()]
    if missing:
        print(f"kernel_pick_study: no such file: {', '.join(missing)}", file=sys.stderr)
        return 66
    for path in args.cases:
        if args.peaks:
            peaks(path, KernelEstimateSettings().no_blur_peak)
        else:
            study(path, weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
