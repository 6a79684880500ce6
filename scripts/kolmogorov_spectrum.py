r"""Forced 2-D turbulence (Kolmogorov flow) and its energy spectrum.

Physics. The incompressible Navier-Stokes equations on the periodic square
``[0, 2 pi]^2`` with a shear forcing and a linear drag,

    du/dt + (u . grad) u = -grad p + nu laplacian u + (sin(4 y), 0) - 0.1 u,
    div u = 0,     nu = 1e-3,

(Kochkov et al., PNAS 118 (2021) e2101784118, Re = 1000). The laminar shear flow is
unstable; after a spin-up of a few drag times (1 / 0.1 = 10) the flow is statistically
stationary 2-D turbulence. Energy is injected at k = 4; in 2-D the enstrophy cascades
to small scales, where the kinetic energy spectrum follows E(k) ~ k^-3 (Kraichnan
1967) until numerical or viscous dissipation takes over (at 64^2 the grid, not nu,
sets that scale: the flow is far from resolved, and the van Leer advection's numerical
dissipation removes the enstrophy).

Numerics: ``problems.kolmogorov`` (``solvers.NavierStokes2D`` on a MAC grid, van Leer
advection, RK4 with a projection after every stage, dt from the CFL limit).

Launch (from the repository root):

    .venv/bin/python scripts/kolmogorov_spectrum.py --resolution 64 --t-end 60 --out runs/kolmogorov

Writes ``kolmogorov_<resolution>.png`` (vorticity snapshots, time-averaged spectrum with
a k^-3 reference, energy against time) and ``kolmogorov_<resolution>.nc`` (the dataset)
to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from problems import kolmogorov


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--resolution", type=int, default=64, help="cells per axis")
    p.add_argument("--t-end", type=float, default=60.0, help="final time")
    p.add_argument("--spin-up", type=float, default=20.0, help="average the spectrum over t >= spin-up")
    p.add_argument("--seed", type=int, default=0, help="initial-field seed")
    p.add_argument("--advection", default="van_leer", choices=["central", "van_leer"])
    p.add_argument("--samples", type=int, default=301, help="energy/spectrum samples (incl. t = 0)")
    p.add_argument("--snapshots", type=int, default=4, help="vorticity snapshots shown (after t = 0)")
    p.add_argument("--out", type=Path, default=Path("runs/kolmogorov"), help="output folder")
    args = p.parse_args()
    if (args.samples - 1) % args.snapshots:
        p.error("--snapshots must divide --samples - 1")
    if not 0 <= args.spin_up < args.t_end:
        p.error("need 0 <= --spin-up < --t-end")
    return args


def plot(ds, path: Path):
    n_snap = ds.sizes["time"] - 1
    fig = plt.figure(figsize=(3.2 * n_snap, 7.2), layout="constrained")
    grid = fig.add_gridspec(2, n_snap)
    limit = float(np.percentile(np.abs(ds.vorticity.values[1:]), 99.5))
    for i in range(n_snap):
        ax = fig.add_subplot(grid[0, i])
        w = ds.vorticity.isel(time=i + 1)
        im = ax.imshow(
            w.values.T, origin="lower", extent=(0, 2 * np.pi, 0, 2 * np.pi), cmap="RdBu_r", vmin=-limit, vmax=limit
        )
        ax.set_title(f"vorticity, t = {float(w.time):.0f}")
        ax.set_xlabel("x")
        ax.set_ylabel("y" if i == 0 else "")
        if i > 0:
            ax.set_yticklabels([])
    fig.colorbar(im, ax=fig.axes[:n_snap], shrink=0.8, label=r"$\omega$")

    half = max(1, n_snap // 2)
    ax = fig.add_subplot(grid[1, :half])
    k, e = ds.k.values[1:], ds.energy_spectrum.values[1:]
    ax.loglog(k, e, "o-", ms=3, label=f"E(k), mean over t ≥ {ds.attrs['spectrum_after']:g}")
    anchor = 8 if len(k) > 8 else len(k) // 2
    ref_k = k[anchor - 1 : 4 * anchor]
    ax.loglog(ref_k, 2 * e[anchor - 1] * (ref_k / ref_k[0]) ** -3.0, "k--", label=r"$k^{-3}$ (enstrophy cascade)")
    ax.axvline(ds.attrs["forcing_wavenumber"], color="gray", lw=0.8, ls=":", label="forcing k = 4")
    ax.axvline(ds.attrs["resolution"] / 3, color="tab:red", lw=0.8, ls=":", label="k = n / 3")
    ax.set_xlabel("k")
    ax.set_ylabel("E(k)")
    ax.set_ylim(max(e.min(), e.max() * 1e-9), e.max() * 3)
    ax.set_title("time-averaged isotropic energy spectrum")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, half:])
    ax.plot(ds.t, ds.kinetic_energy, lw=1)
    ax.axvspan(ds.attrs["spectrum_after"], float(ds.t[-1]), color="gray", alpha=0.15, label="spectrum average")
    ax.set_xlabel("t")
    ax.set_ylabel(r"kinetic energy $\int |u|^2 / 2$")
    ax.set_title(f"{ds.attrs['resolution']}$^2$, {ds.attrs['advection']}, dt = {ds.attrs['dt']:.3g}")
    ax.legend(fontsize=8)
    fig.suptitle(r"Kolmogorov flow, $\nu = 10^{-3}$, forcing $\sin(4y)$, drag 0.1")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ds = kolmogorov.solve(
        args.resolution,
        t_end=args.t_end,
        seed=args.seed,
        n_saves=args.snapshots + 1,
        n_energy=args.samples,
        spectrum_after=args.spin_up,
        advection=args.advection,
        progress=True,
    )
    energy = ds.kinetic_energy.values
    print(
        f"{ds.attrs['n_steps']} steps of dt = {ds.attrs['dt']:.4g}; energy {energy[0]:.3g} -> {energy[-1]:.3g} "
        f"(max {energy.max():.3g}); max |div u| {float(ds.max_divergence.max()):.2e}"
    )
    if not np.all(np.isfinite(energy)):
        raise SystemExit("the run went non-finite")
    png = args.out / f"kolmogorov_{args.resolution}.png"
    plot(ds, png)
    try:
        ds.to_netcdf(args.out / f"kolmogorov_{args.resolution}.nc")
    except Exception as err:  # netCDF backend missing: the figure is the main product
        print(f"dataset not written: {type(err).__name__}: {err}")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
