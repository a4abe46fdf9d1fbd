"""Build train/nr_params.npz from the published NIQE and BRISQUE model files that PyPI packages ship.

    pip download --no-deps --only-binary :all: mmagic==1.2.0 brisque==0.2.0 -d /tmp/nr && cd /tmp/nr \\
        && unzip -o -q 'mmagic-*.whl' 'mmagic/evaluation/metrics/*' && unzip -o -q 'brisque-*.whl'
    python scripts/make_nr_params.py --mmagic /tmp/nr/mmagic --brisque /tmp/nr/brisque

Reads (never imports the packages):
  mmagic/evaluation/metrics/niqe_pris_params.npz  mu_pris_param (1x36), cov_pris_param (36x36): NIQE's
                                             pristine Gaussian, LIVE's `modelparameters.mat` (as in BasicSR)
  brisque/models/svm.txt                     LIBSVM epsilon-SVR, RBF kernel (LIVE's `allmodel`)
  brisque/models/normalize.pickle            {'min_': [36], 'max_': [36]} (LIVE's `allrange`), read
                                             with an unpickler that only accepts plain data
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
from pathlib import Path

import numpy as np


class _PlainData(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # dicts, lists and floats need no class at all
        raise pickle.UnpicklingError(f"refusing {module}.{name}: expected plain data")


def read_libsvm_svr(path: Path) -> dict[str, np.ndarray]:
    """gamma, rho, support vectors and coefficients of a LIBSVM RBF regression model file."""
    header: dict[str, str] = {}
    lines = path.read_text().splitlines()
    start = lines.index("SV") + 1
    for line in lines[: start - 1]:
        key, _, value = line.partition(" ")
        header[key] = value
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError(f"{path}: expected an epsilon_svr with an rbf kernel, got {header}")
    coef, rows = [], []
    for line in lines[start:]:
        if not line.strip():
            continue
        head, *pairs = line.split()
        coef.append(float(head))
        row = np.zeros(36)
        for pair in pairs:
            i, v = pair.split(":")
            row[int(i) - 1] = float(v)
        rows.append(row)
    if len(rows) != int(header["total_sv"]):
        raise ValueError(f"{path}: {len(rows)} support vectors, header says {header['total_sv']}")
    return {"brisque_sv": np.array(rows, np.float32), "brisque_coef": np.array(coef, np.float64),
            "brisque_gamma": np.float64(header["gamma"]), "brisque_rho": np.float64(header["rho"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mmagic", type=Path, required=True, help="the unpacked mmagic package folder")
    p.add_argument("--brisque", type=Path, required=True, help="the unpacked brisque package folder")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "train" / "nr_params.npz")
    args = p.parse_args()
    sources = [args.mmagic / "evaluation/metrics/niqe_pris_params.npz", args.brisque / "models/svm.txt",
               args.brisque / "models/normalize.pickle"]
    with np.load(sources[0], allow_pickle=False) as niqe:
        mean, cov = niqe["mu_pris_param"].ravel(), niqe["cov_pris_param"]
    ranges = _PlainData(io.BytesIO(sources[2].read_bytes())).load()
    params = {"niqe_mean": mean.astype(np.float64), "niqe_cov": cov.astype(np.float64),
              "brisque_min": np.array(ranges["min_"], np.float64), "brisque_max": np.array(ranges["max_"], np.float64),
              **read_libsvm_svr(sources[1])}
    np.savez_compressed(args.out, **params)
    for s in sources:
        print(f"{hashlib.sha256(s.read_bytes()).hexdigest()}  {s}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
