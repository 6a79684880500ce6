r"""What the Kolmogorov closure is made of: how large the coarse solver's one-step error
is, how long it stays correlated in time, and how much of it a network can predict from
the coarse state alone or from the last two states (an a priori study).

On the data of a Kolmogorov run (``nnpde train``'s cache; no trained model needed),
the exact closure of step ``n`` is what the coarse solver ``S`` misses:

    c_n = P (u_{n+1} - S(u_n)) / dt,

``u_n`` the reference restricted to the coarse grid, ``P`` the projection (the learned
correction is projected the same way). Reported:

* the closure's size against the tendency ``(u_{n+1} - u_n) / dt`` (RMS);
* its memory: ``|c_n - c_{n-k}|^2 / |c_n|^2`` for lags ``k`` (0: identical, 2: no
  correlation);
* what knowing it once is worth: the coarse solver from ``u_1`` to the horizon, plain
  and with the exact closure of the step before the start (``c_0``) added at every
  step, scored like the task (relative L2 at the horizon, held-out trajectories);
* a priori fits (``--fit-steps``; 0 skips them): a periodic network (``--network``:
  the task's CNN by default, a U-Net, a Fourier neural operator) trained on the
  training pairs (and their symmetry images) to predict ``c_n`` from ``u_n``, and from
  ``u_n`` and ``u_n - u_{n-1}`` (``--inputs``); the held-out
  unexplained fraction ``|c - N|^2 / |c|^2``. The second sees the previous step, which
  carries the previous step's exact closure; a model rolling out from one coarse state
  has that only for the data it started from, so what it is worth over a rollout is
  bounded by the memory above.

Launch (after ``nnpde generate scripts/configs/kolmogorov.toml``; the fits take about
4 minutes each on one core):

    .venv/bin/python scripts/kolmogorov_closure.py --out runs/kolmogorov_closure
    .venv/bin/python scripts/kolmogorov_closure.py --network fno --inputs state --out runs/kolmogorov_closure_fno

Writes ``closure.json`` to ``--out`` and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--config", default="scripts/configs/kolmogorov.toml", help="the run configuration (its data)")
    p.add_argument("--out", default="runs/kolmogorov_closure", help="folder for closure.json")
    p.add_argument("--lags", type=int, nargs="+", default=[1, 2, 4, 8, 15], help="lags of the memory figure")
    p.add_argument("--fit-steps", type=int, default=400, help="Adam steps of each a priori fit (0: no fits)")
    p.add_argument("--batch", type=int, default=64, help="a priori batch size")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="a priori peak learning rate (cosine decay)")
    p.add_argument(
        "--network",
        choices=["convnet", "unet", "fno"],
        default="convnet",
        help="a priori network: the task's ConvNet (hidden, depth), a UNet (hidden, 2 levels) or an FNO (width "
        "hidden, depth Fourier layers, modes up to the grid's Nyquist)",
    )
    p.add_argument(
        "--inputs",
        nargs="+",
        choices=["state", "history"],
        default=["state", "history"],
        help="a priori inputs: the state, and the state with the last step",
    )
    args = p.parse_args()
    if min(args.lags) < 1 or args.batch < 1 or args.fit_steps < 0 or not args.learning_rate > 0:
        p.error(
            f"--lags and --batch must be >= 1, --fit-steps >= 0 and --learning-rate positive, got {args.lags}, "
            f"{args.batch}, {args.fit_steps} and {args.learning_rate}. Fix: e.g. --lags 1 2 4 --batch 64."
        )
    return args


def unexplained(prediction, target):
    return float(jnp.sum((prediction - target) ** 2) / jnp.sum(target**2))


def fit(net, project, train, held_out, args) -> dict:
    """Adam on ``|P net(x) - y|^2`` over random batches of ``train``; the unexplained
    fractions on (the first 2048 of) ``train`` and on ``held_out``."""
    params, static = eqx.partition(net, eqx.is_inexact_array)
    opt = optax.adam(optax.cosine_decay_schedule(args.learning_rate, args.fit_steps))
    opt_state = opt.init(params)

    def predict(p, xs):
        m = eqx.combine(p, static)
        return jax.vmap(lambda v: project(m(v)))(xs)

    @jax.jit
    def update(p, s, xs, ys):
        loss, g = jax.value_and_grad(lambda q: jnp.mean((predict(q, xs) - ys) ** 2))(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    (x, y), (xh, yh) = train, held_out
    evaluate = jax.jit(predict)
    key, began = jax.random.key(0), time.perf_counter()
    for _ in range(args.fit_steps):
        key, k = jax.random.split(key)
        idx = jax.random.randint(k, (args.batch,), 0, x.shape[0])
        params, opt_state, _ = update(params, opt_state, x[idx], y[idx])
    sub = slice(0, min(x.shape[0], 2048))
    return {
        "train": unexplained(evaluate(params, x[sub]), y[sub]),
        "held_out": unexplained(evaluate(params, xh), yh),
        "pairs": int(x.shape[0]),
        "seconds": time.perf_counter() - began,
    }


def main() -> int:
    args = parse_args()
    from flax import nnx

    import nnpde
    from nnpde import environment, load_config, load_task, metrics, set_precision, stage_data

    config = load_config(args.config)
    set_precision(config)
    task = load_task(config)
    if not task.symmetries or task.name != "kolmogorov":
        raise SystemExit(f"{args.config} is not a Kolmogorov run with symmetries. Fix: pass a kolmogorov config.")
    train, held_out, _ = stage_data(config, task, split=False)
    train, held_out = jnp.asarray(train), jnp.asarray(held_out)
    horizon, dt = task.horizon, task.dt
    if max(args.lags) >= horizon:
        raise SystemExit(f"--lags must be below the horizon {horizon}, got {args.lags}. Fix: e.g. --lags 1 2 4 8.")
    coarse = task.baseline
    project = coarse.equation.project
    step = jax.jit(jax.vmap(lambda u: coarse(u)))
    proj = jax.jit(jax.vmap(jax.vmap(project)))

    def closure(traj):  # (S, T, C, n, n) -> (S, T - 1, C, n, n)
        missed = jnp.stack([traj[:, n + 1] - step(traj[:, n]) for n in range(traj.shape[1] - 1)], axis=1)
        return proj(missed / dt)

    c_train, c_held = closure(train), closure(held_out)
    tendency = (held_out[:, 1:] - held_out[:, :-1]) / dt
    size = float(jnp.sqrt(jnp.mean(c_held**2) / jnp.mean(tendency**2)))
    print(f"closure RMS / tendency RMS (held out): {size:.3f}")
    memory = {k: unexplained(c_train[:, :-k], c_train[:, k:]) for k in args.lags}
    for k, v in memory.items():
        print(f"lag {k:2d} steps ({k * dt:.2f} time units): |c_n - c_(n-k)|^2 / |c_n|^2 = {v:.3f}")

    def score(u):
        ref = held_out[:, horizon]
        return float(jnp.mean(jax.vmap(lambda p, r: metrics.rollout_error(p[None], r[None])[0])(u, ref)))

    plain, frozen = held_out[:, 1], held_out[:, 1]
    for _ in range(horizon - 1):
        plain, frozen = step(plain), step(frozen) + dt * c_held[:, 0]
    once = {"plain": score(plain), "with_c0_frozen": score(frozen)}
    print(
        f"coarse solver from u_1 over {horizon - 1} steps: plain {once['plain']:.4f}, "
        f"with the exact closure c_0 added at every step {once['with_c0_frozen']:.4f}"
    )

    fits = {}
    if args.fit_steps > 0:
        augmented = task.augment(train)
        c_aug = closure(augmented)

        def pairs(traj, c, history):
            x = traj[:, 1:-1]
            if history:
                x = jnp.concatenate([x, traj[:, 1:-1] - traj[:, :-2]], axis=2)
            y = c[:, 1:]
            return x.reshape(-1, *x.shape[2:]), y.reshape(-1, *y.shape[2:])

        hidden, depth = task.attrs["hidden"], task.attrs["depth"]
        names = {"state": "state", "history": "state and last step"}
        for inputs in args.inputs:
            name = names[inputs]
            x, y = pairs(augmented, c_aug, inputs == "history")
            xh, yh = pairs(held_out, c_held, inputs == "history")
            c_in, c_out, rngs = x.shape[1], y.shape[1], nnx.Rngs(0)
            periodic = (True, True)
            if args.network == "convnet":
                module = nnpde.networks.ConvNet(
                    c_in, c_out, ndim=2, hidden=hidden, depth=depth, kernel_size=3, periodic=periodic, rngs=rngs
                )
            elif args.network == "unet":
                module = nnpde.networks.UNet(c_in, c_out, ndim=2, hidden=hidden, levels=2, periodic=periodic, rngs=rngs)
            else:
                modes = x.shape[-1] // 2
                module = nnpde.networks.FNO(c_in, c_out, ndim=2, width=hidden, depth=depth, modes=modes, rngs=rngs)
            net = nnpde.Network(module)
            fits[name] = fit(net, project, (x, y), (xh, yh), args) | {"parameters": net.n_params}
            print(
                f"a priori, from the {name}: unexplained {fits[name]['held_out']:.3f} held out "
                f"({fits[name]['train']:.3f} train), {args.fit_steps} steps, {fits[name]['seconds']:.0f} s",
                flush=True,
            )
    summary = {
        "config": args.config,
        "closure_over_tendency_rms": size,
        "memory": {str(k): v for k, v in memory.items()},
        "closure_known_once": once,
        "a_priori": fits,
        "a_priori_settings": {
            "network": {"kind": args.network, "hidden": task.attrs["hidden"], "depth": task.attrs["depth"]},
            "steps": args.fit_steps,
            "batch": args.batch,
            "learning_rate": args.learning_rate,
        },
        "environment": environment(),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "closure.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'closure.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
