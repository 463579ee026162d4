#!/usr/bin/env python3
"""Reference values for klflow's chain diagnostics, computed by ArviZ on fixed inputs.

Regenerate (from the repository root, in a throw-away virtual environment):

    python3 -m venv /tmp/azvenv
    /tmp/azvenv/bin/pip install arviz==0.23.4
    /tmp/azvenv/bin/python tests/data/arviz_reference.py > tests/data/arviz_reference.json

The inputs are stored as integers `k` with the value `k * 1e-6` (computed as `k / 1e6` on both
sides, so Python and Rust see bit-identical draws). Every expected value is ArviZ's public API on
the (chain, draw) array, except for the one-chain case, where `az.rhat` refuses to answer (it
needs two chains) and the script composes the same ArviZ internals `az.rhat` uses
(`_split_chains`, `_z_scale`, `_rhat`) to get the split value klflow returns.
"""

import json
import platform
import sys

import arviz as az
import numpy as np
import scipy
from arviz.stats import diagnostics as azd
from scipy import special, stats

SCALE = 1e6
QUANTILE_PROBS = [0.05, 0.5, 0.95]


def ar1(rng, chains, draws, phi, loc=0.0):
    """Stationary AR(1) chains x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t (unit marginal variance)."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.standard_normal(chains)
    s = np.sqrt(1.0 - phi * phi)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + s * rng.standard_normal(chains)
    return x + loc


def quantize(x):
    """Round to the 1e-6 grid; return the integers and the floats both sides will use."""
    k = np.rint(np.asarray(x) * SCALE).astype(np.int64)
    return k, k / SCALE


def make_cases():
    rng = np.random.default_rng(20240611)
    cases = []

    def add(name, description, x):
        k, xf = quantize(x)
        cases.append((name, description, k, xf))

    add("ar_low", "AR(1) phi = 0.3, 4 chains x 500", ar1(rng, 4, 500, 0.3))
    add("ar_high", "AR(1) phi = 0.9, 4 chains x 1000", ar1(rng, 4, 1000, 0.9))
    add("ar_sticky", "AR(1) phi = 0.99, 4 chains x 400", ar1(rng, 4, 400, 0.99))
    add("antithetic", "AR(1) phi = -0.6, 4 chains x 300 (ESS > N)", ar1(rng, 4, 300, -0.6))
    shifted = rng.standard_normal((4, 300))
    shifted[3] += 1.0
    add("shifted", "iid N(0,1), 4 chains x 300, chain 3 shifted by +1 (R-hat > 1)", shifted)
    heavy = rng.standard_t(3, size=(4, 400))
    add("heavy_t3", "iid Student t with 3 dof, 4 chains x 400", heavy)
    add("odd_length", "AR(1) phi = 0.5, 3 chains x 101 (odd: the middle draw is dropped)",
        ar1(rng, 3, 101, 0.5))
    add("short", "iid N(0,1), 2 chains x 7 (shortest-chain regime)", rng.standard_normal((2, 7)))
    add("minimal", "iid N(0,1), 2 chains x 4 (the minimum length)", rng.standard_normal((2, 4)))
    ties = rng.poisson(3.0, size=(4, 150)).astype(float)
    add("ties", "Poisson(3) integers, 4 chains x 150 (rank ties)", ties)
    add("single_chain", "AR(1) phi = 0.6, 1 chain x 600", ar1(rng, 1, 600, 0.6))
    add("scaled", "AR(1) phi = 0.7, 4 chains x 250, scale 1000, location 5000",
        1000.0 * ar1(rng, 4, 250, 0.7) + 5000.0)
    return cases


def rhat_rank_internal(x):
    """az.rhat(method="rank") without its two-chain check (same internals, same order)."""
    split = azd._split_chains(x)
    bulk = azd._rhat(azd._z_scale(split))
    tail = azd._rhat(azd._z_scale(np.abs(split - np.median(split))))
    return max(bulk, tail)


def expected(x):
    f = float
    one_chain = x.shape[0] == 1
    out = {
        "rhat_rank": f(rhat_rank_internal(x) if one_chain else az.rhat(x, method="rank")),
        "rhat_split": f(azd._rhat(azd._split_chains(x)) if one_chain
                        else az.rhat(x, method="split")),
        "ess_bulk": f(az.ess(x, method="bulk")),
        "ess_tail": f(az.ess(x, method="tail")),
        "ess_mean": f(az.ess(x, method="mean")),
        "mcse_mean": f(az.mcse(x, method="mean")),
        "mcse_sd": f(az.mcse(x, method="sd")),
        "ess_quantile": [f(az.ess(x, method="quantile", prob=p)) for p in QUANTILE_PROBS],
        "mcse_quantile": [f(az.mcse(x, method="quantile", prob=p)) for p in QUANTILE_PROBS],
        # Plain summary statistics (numpy; quantiles are numpy's default "linear" = type 7).
        "mean": f(np.mean(x)),
        "sd": f(np.std(x, ddof=1)),
        "quantiles": [f(q) for q in np.quantile(x, QUANTILE_PROBS)],
    }
    return out


def main():
    cases = []
    for name, description, k, xf in make_cases():
        cases.append({
            "name": name,
            "description": description,
            "chains": k.tolist(),
            "expected": expected(xf),
        })

    ps = [1e-300, 1e-100, 1e-20, 1e-10, 1e-6, 3.75e-6, 1e-3, 0.02, 0.02425, 0.03, 0.1,
          0.2, 0.3, 0.4, 0.45, 0.4999, 0.5, 0.5001, 0.55, 0.7, 0.9, 0.97, 0.97575, 0.99,
          0.999, 1.0 - 1e-6, 1.0 - 1e-10]
    # The extreme Blom scores of rank normalisation for a few sizes.
    for n in [8, 1000, 4000, 100000, 400000]:
        ps.append((1 - 0.375) / (n - 0.75 + 1))
        ps.append((n - 0.375) / (n - 0.75 + 1))
    normal = [[p, float(special.ndtri(p))] for p in ps]

    beta = []
    for a, b in [(1.5, 20.0), (21.0, 381.0), (2.0, 2.0), (201.0, 3801.0), (2001.0, 38001.0),
                 (20001.0, 20001.0), (5.5, 1.2)]:
        for p in [0.1586553, 0.8413447]:
            beta.append([p, a, b, float(stats.beta.ppf(p, a, b))])

    doc = {
        "generator": "tests/data/arviz_reference.py",
        "command": "python tests/data/arviz_reference.py > tests/data/arviz_reference.json",
        "versions": {
            "python": platform.python_version(),
            "arviz": az.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "input_scale": 1e-6,
        "quantile_probs": QUANTILE_PROBS,
        "cases": cases,
        "normal_quantile": normal,
        "beta_quantile": beta,
    }
    json.dump(doc, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
