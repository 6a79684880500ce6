r"""Forced 2-D turbulence: Kolmogorov flow on the periodic square ``[0, 2 pi]^2``.

The incompressible Navier-Stokes equations with a steady shear forcing and a linear
(Rayleigh) drag,

    du/dt + (u . grad) u = -grad p + nu laplacian u + f - alpha u,   div u = 0,
    f = (A sin(k y), 0),

in the setting of Kochkov et al., PNAS 118 (2021) e2101784118 ("Kolmogorov flow",
their Re = 1000 case): ``k = 4``, ``A = 1``, ``nu = 1e-3``, ``alpha = 0.1``. The laminar
solution ``u = A sin(k y) / (nu k^2 + alpha)`` is unstable; the flow settles into
statistically stationary 2-D turbulence whose energy is fed at ``k = 4`` and removed by
the drag (at large scales) and the viscosity (at small scales). Between the forcing
and the dissipation scale the forward enstrophy cascade gives ``E(k) ~ k^-3``
(Kraichnan, Phys. Fluids 10 (1967) 1417).

The drag is added here, not in the solver: ``solvers.NavierStokes2D`` takes a body force
``f(t)`` that cannot depend on the state, so ``DampedNavierStokes2D`` wraps it and adds
``-alpha u`` to the right-hand side (and ``alpha`` to the real spectral radius that sets
the explicit time-step limit). The drag is linear and commutes with the projection, so
the projected Runge-Kutta steps (``nnpde.ProjectedRK``) need nothing else.

Initial velocity (``initial_velocity``): a random, seeded stream function ``psi`` with
Gaussian Fourier coefficients shaped so that the energy spectrum is
``E(k) ~ k^4 exp(-2 (k / k_p)^2)`` (peak near ``k_p``), sampled at the cell corners;
``u = d psi / dy``, ``v = -d psi / dx`` by one-sided differences onto the MAC faces, so
the MAC divergence vanishes identically (to round-off). Scaled to a given maximum speed.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import nnpde
from nnpde import AbstractProjectedEquation, ProjectedRK
from solvers.navier_stokes import NavierStokes2D, kolmogorov_forcing

EXTENT = ((0.0, 2 * math.pi), (0.0, 2 * math.pi))

# Kochkov et al. (2021), Kolmogorov flow at Re = 1000.
VISCOSITY = 1e-3
WAVENUMBER = 4
AMPLITUDE = 1.0
DRAG = 0.1


def make_grid(resolution: int) -> nnpde.Grid:
    """``resolution`` cells per axis on ``[0, 2 pi]^2``."""
    if not (isinstance(resolution, int) and resolution >= 4):
        raise ValueError(f"resolution must be an int >= 4, got {resolution!r}.")
    return nnpde.Grid((resolution, resolution), extent=EXTENT)


class DampedNavierStokes2D(AbstractProjectedEquation):
    """``NavierStokes2D`` plus a linear drag ``-drag * u`` on the right-hand side.

    Everything else (advection, viscosity, forcing, projection, diagnostics) is the
    wrapped ``flow``'s. ``drag >= 0`` adds ``drag`` to the real spectral radius.
    """

    flow: NavierStokes2D
    drag: float
    grid: nnpde.Grid = eqx.field(static=True)

    def __init__(self, flow: NavierStokes2D, drag: float = DRAG):
        if not isinstance(flow, NavierStokes2D):
            raise TypeError(f"flow must be a solvers.NavierStokes2D, got {type(flow).__name__}.")
        drag = float(drag)
        if not (math.isfinite(drag) and drag >= 0):
            raise ValueError(f"drag must be finite and >= 0, got {drag}.")
        self.flow, self.drag, self.grid = flow, drag, flow.grid

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.flow.state_shape

    def __call__(self, t, u, args=None):
        rate = self.flow(t, u, args)
        return rate - self.drag * u if self.drag else rate

    def project(self, u, t=0.0):
        return self.flow.project(u, t)

    def advective_radius(self, t, u):
        return self.flow.advective_radius(t, u)

    def spectral_radius(self, t, u):
        return self.flow.spectral_radius(t, u) + self.drag

    def forward_euler_rate(self, t, u):
        rate = self.flow.forward_euler_rate(t, u)
        return None if rate is None else rate + self.drag

    def kinetic_energy(self, u):
        return self.flow.kinetic_energy(u)

    def vorticity(self, u):
        return self.flow.vorticity(u)

    @property
    def reconstruction(self):
        """The flow's face reconstruction (``nnpde.learned_interpolation`` replaces it)."""
        return self.flow.reconstruction

    @property
    def reconstruction_targets(self):
        return self.flow.reconstruction_targets

    @property
    def advecting_targets(self):
        return self.flow.advecting_targets

    def with_reconstruction(self, reconstruction):
        """This damped flow with ``reconstruction`` in its momentum fluxes."""
        return eqx.tree_at(lambda e: e.flow, self, self.flow.with_reconstruction(reconstruction))

    def divergence(self, u):
        return self.flow.divergence(u)


def make_equation(
    grid: nnpde.Grid,
    *,
    viscosity: float = VISCOSITY,
    wavenumber: int = WAVENUMBER,
    amplitude: float = AMPLITUDE,
    drag: float = DRAG,
    advection: str = "van_leer",
    bc: nnpde.BoundaryConditions | None = None,
) -> DampedNavierStokes2D:
    """The forced, damped flow on ``grid`` (defaults: Kochkov et al. 2021). ``bc``:
    periodic by default; a ``Decomposition``'s boundary conditions run the flow on one
    rank's block (``grid`` its ``local_grid``: the forcing is evaluated at the block's
    own cell centres)."""
    forcing = kolmogorov_forcing(grid, wavenumber=wavenumber, amplitude=amplitude)
    flow = NavierStokes2D(grid, viscosity=viscosity, forcing=forcing, advection=advection, bc=bc)
    return DampedNavierStokes2D(flow, drag)


def _wavenumbers(grid: nnpde.Grid):
    """Angular wavenumber meshes ``(kx, ky)`` of ``numpy.fft.fftn`` on ``grid``."""
    ks = [2 * np.pi * np.fft.fftfreq(n, d=h) for n, h in zip(grid.shape, grid.spacing)]
    return np.meshgrid(*ks, indexing="ij")


def initial_velocity(
    grid: nnpde.Grid,
    seed: int = 0,
    *,
    peak_wavenumber: float = 4.0,
    max_velocity: float = 3.0,
):
    """A seeded random divergence-free velocity ``(2, nx, ny)`` on the MAC faces.

    Energy spectrum ``~ k^4 exp(-2 (k / peak_wavenumber)^2)``, zero mean, scaled so
    that ``max(|u|, |v|) = max_velocity``. Built from a stream function at the cell
    corners, so the MAC divergence is zero to round-off. Same ``seed``, same field.
    """
    if not (max_velocity > 0 and math.isfinite(max_velocity)):
        raise ValueError(f"max_velocity must be positive and finite, got {max_velocity}.")
    kx, ky = _wavenumbers(grid)
    k = np.hypot(kx, ky)
    # E(k) ~ 2 pi k * k^2 |psi_k|^2 per shell  =>  |psi_k| ~ sqrt(E(k) / k^3).
    amplitude = np.where(k > 0, np.sqrt(k * np.exp(-2.0 * (k / peak_wavenumber) ** 2)), 0.0)
    key_re, key_im = jax.random.split(jax.random.PRNGKey(seed))
    noise = jax.random.normal(key_re, grid.shape) + 1j * jax.random.normal(key_im, grid.shape)
    psi = jnp.real(jnp.fft.ifftn(jnp.asarray(amplitude) * noise))  # real part: a real field, same spectrum shape
    hx, hy = grid.spacing
    u = (jnp.roll(psi, -1, axis=1) - psi) / hy  # at (x_i, y_{j+1/2})
    v = -(jnp.roll(psi, -1, axis=0) - psi) / hx  # at (x_{i+1/2}, y_j)
    velocity = jnp.stack([u, v])
    return velocity * (max_velocity / jnp.max(jnp.abs(velocity)))


def energy_spectrum(velocity, grid: nnpde.Grid):
    """Isotropic kinetic energy spectrum ``(k, E)``: ``E[s]`` sums ``|u_hat|^2 / 2`` over
    the Fourier modes whose ``|k|`` rounds to shell ``s`` (width ``2 pi / L``).

    ``velocity``: ``(2, nx, ny)`` (each component on its own staggered positions: the
    half-cell offsets change only phases) or a batch ``(..., 2, nx, ny)``. Normalised by
    Parseval so that ``E.sum(-1)`` equals ``NavierStokes2D.kinetic_energy`` (``sum(u^2)
    / 2`` times the cell area). Shells run from 0 to the corner of the spectrum,
    ``ceil(sqrt(kx_max^2 + ky_max^2))``; ``k = s * 2 pi / L``. Differentiable.
    """
    velocity = jnp.asarray(velocity)
    if velocity.shape[-3:] != (2, *grid.shape):
        raise ValueError(f"velocity must have shape (..., 2, {grid.shape[0]}, {grid.shape[1]}), got {velocity.shape}.")
    if not np.allclose(grid.lengths[0], grid.lengths[1]):
        raise ValueError(f"energy_spectrum needs a square domain, got lengths {grid.lengths}.")
    dk = 2 * np.pi / grid.lengths[0]
    kx, ky = _wavenumbers(grid)
    shell = np.rint(np.hypot(kx, ky) / dk).astype(int)
    n_shells = int(shell.max()) + 1
    power = jnp.sum(jnp.abs(jnp.fft.fftn(velocity, axes=(-2, -1))) ** 2, axis=-3)  # (..., nx, ny)
    power = power * (0.5 * grid.cell_volume / grid.size)
    flat = power.reshape(*power.shape[:-2], -1)
    summed = jax.ops.segment_sum(jnp.moveaxis(flat, -1, 0), jnp.asarray(shell.ravel()), num_segments=n_shells)
    spectrum = jnp.moveaxis(summed, 0, -1)
    return np.arange(n_shells) * dk, spectrum


SYMMETRIES = 4  # the identity, the shift-reflection, the rotation by pi and their product


def symmetry(velocity, element, *, wavenumber: int = WAVENUMBER):
    """A MAC velocity ``(..., 2, n, n)`` mapped by ``element`` of the forced flow's
    symmetry group beyond translations (which a convolution already respects):

    - ``0``: the identity;
    - ``1``: the shift-reflection ``(u, v)(x, y) -> (-u, v)(-x, y + pi / k)``;
    - ``2``: the rotation by pi, ``(u, v)(x, y) -> (-u, -v)(-x, -y)``;
    - ``3``: the two composed.

    Each maps a solution of the forced, damped equations (forcing ``sin(k y)`` in ``x``) to
    another one: the reflection flips the forcing's sign and the shift by half its
    wavelength flips it back; the rotation flips both the force and ``y``. On the MAC grid
    (``u[i, j]`` at ``(x_i, y_{j+1/2})``, ``v[i, j]`` at ``(x_{i+1/2}, y_j)``) both are exact
    index permutations, so a step of the solver commutes with them to rounding. ``element``
    may be traced (an integer array of the batch shape ``...``, or a scalar): a random
    element per window augments training data 4-fold (``random_symmetry``)."""
    velocity = jnp.asarray(velocity)
    if velocity.ndim < 3 or velocity.shape[-3] != 2 or velocity.shape[-2] != velocity.shape[-1]:
        raise ValueError(f"velocity must be a square MAC state (..., 2, n, n), got shape {velocity.shape}.")
    n = velocity.shape[-1]
    if n % (2 * wavenumber):
        raise ValueError(
            f"the shift-reflection moves y by pi / {wavenumber}, {n / (2 * wavenumber)} cells of a {n}^2 grid: "
            f"not whole. Fix: a resolution divisible by {2 * wavenumber}."
        )
    element = jnp.asarray(element)
    if element.dtype.kind not in "iu":
        raise TypeError(f"element must be an integer in 0..{SYMMETRIES - 1}, got dtype {element.dtype}.")
    if nnpde.is_concrete(element) and not bool(jnp.all((element >= 0) & (element < SYMMETRIES))):
        raise ValueError(f"element must be in 0..{SYMMETRIES - 1}, got {np.asarray(element)}.")

    def lower(f, axis):  # f(-x) for values on the lower faces x_i = i h: index (-i) mod n
        return jnp.roll(jnp.flip(f, axis), 1, axis)

    def centred(f, axis):  # f(-x) at the cell centres x_{i+1/2}: index n - 1 - i
        return jnp.flip(f, axis)

    shift = n // (2 * wavenumber)  # pi / k in cells

    def shift_reflect(w):
        u, v = w[..., 0, :, :], w[..., 1, :, :]
        return jnp.stack([-jnp.roll(lower(u, -2), -shift, -1), jnp.roll(centred(v, -2), -shift, -1)], -3)

    def rotate(w):
        u, v = w[..., 0, :, :], w[..., 1, :, :]
        return jnp.stack([-centred(lower(u, -2), -1), -lower(centred(v, -2), -1)], -3)

    rotated = rotate(velocity)
    pick = element.reshape(element.shape + (1,) * (velocity.ndim - element.ndim))
    out = jnp.where(pick == 1, shift_reflect(velocity), velocity)
    out = jnp.where(pick == 2, rotated, out)
    return jnp.where(pick == 3, shift_reflect(rotated), out)


def random_symmetry(key, trajectories, *, wavenumber: int = WAVENUMBER):
    """``trajectories`` ``(batch, ..., 2, n, n)``, each batch member (a whole window,
    every state the same way) mapped by a random element of ``symmetry``'s group."""
    trajectories = jnp.asarray(trajectories)
    element = jax.random.randint(key, (trajectories.shape[0],), 0, SYMMETRIES)
    return symmetry(trajectories, element, wavenumber=wavenumber)


def reference_speed(viscosity=VISCOSITY, wavenumber=WAVENUMBER, amplitude=AMPLITUDE, drag=DRAG) -> float:
    """The laminar Kolmogorov amplitude ``A / (nu k^2 + alpha)``: the speed scale of the forced flow."""
    return amplitude / (viscosity * wavenumber**2 + drag)


def setup(
    resolution: int = 64,
    *,
    seed: int = 0,
    viscosity: float = VISCOSITY,
    wavenumber: int = WAVENUMBER,
    amplitude: float = AMPLITUDE,
    drag: float = DRAG,
    advection: str = "van_leer",
    method: str = "rk4",
    dt: float | None = None,
    safety: float = 0.5,
    max_velocity: float = 3.0,
    peak_wavenumber: float = 4.0,
):
    """Grid, equation, stepper and initial velocity: ``(grid, equation, stepper, u0)``.

    ``dt`` defaults to ``safety`` times the explicit (CFL) limit for a flow whose speed
    reaches ``max(max|u0|, reference_speed(...))`` on both axes; the laminar amplitude
    bounds the turbulent speeds seen in practice, and ``ProjectedRK`` still checks the
    limit at every step (a run that outgrows it stops with an error, never blows up
    silently).
    """
    grid = make_grid(resolution)
    eq = make_equation(
        grid, viscosity=viscosity, wavenumber=wavenumber, amplitude=amplitude, drag=drag, advection=advection
    )
    u0 = initial_velocity(grid, seed, peak_wavenumber=peak_wavenumber, max_velocity=max_velocity)
    u0 = eq.project(u0)  # already divergence-free; removes the last round-off
    if dt is None:
        speed = max(float(jnp.max(jnp.abs(u0))), reference_speed(viscosity, wavenumber, amplitude, drag))
        dt = nnpde.stable_dt(eq, method, safety=safety, u=jnp.full_like(u0, speed))
    stepper = ProjectedRK(eq, dt=dt, method=method)
    return grid, eq, stepper, u0


def solve(
    resolution: int = 64,
    t_end: float = 10.0,
    seed: int = 0,
    *,
    n_saves: int = 11,
    n_energy: int = 201,
    spectrum_after: float | None = None,
    progress: bool = False,
    **kwargs,
):
    """Integrate from the seeded initial field to ``t_end``; return an ``xarray.Dataset``.

    ``kwargs`` go to ``setup``. The step is shortened so that ``n_energy - 1`` equal
    intervals end at ``t_end``; snapshots are kept at ``n_saves`` equally spaced times
    (``n_saves - 1`` must divide ``n_energy - 1``).

    Variables: ``u(time, x_face, y)``, ``v(time, x, y_face)`` (each component on its own
    MAC faces, lower faces ``x_face = i h``), ``vorticity(time, x_face, y_face)`` (at the
    cell corners), ``kinetic_energy(t)``, ``enstrophy(t)`` and ``max_divergence(t)`` at
    the ``n_energy`` sample times ``t``, and ``energy_spectrum(k)``: the isotropic
    spectrum averaged over the samples with ``t >= spectrum_after`` (default: the second
    half of the run). Parameters in ``attrs``.
    """
    import xarray as xr

    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be positive and finite, got {t_end}.")
    if not (isinstance(n_saves, int) and n_saves >= 2 and isinstance(n_energy, int) and n_energy >= 2):
        raise ValueError(f"n_saves and n_energy must be ints >= 2, got {n_saves!r}, {n_energy!r}.")
    if (n_energy - 1) % (n_saves - 1):
        raise ValueError(f"n_saves - 1 = {n_saves - 1} must divide n_energy - 1 = {n_energy - 1}.")
    grid, eq, stepper, u0 = setup(resolution, seed=seed, **kwargs)
    interval = t_end / (n_energy - 1)
    per_sample = max(1, math.ceil(interval / stepper.dt - 1e-9))
    stepper = ProjectedRK(eq, dt=interval / per_sample, method=stepper.tableau)
    spectrum_after = 0.5 * t_end if spectrum_after is None else spectrum_after

    @jax.jit
    def advance(u, t0):
        u = nnpde.rollout(stepper, u, per_sample, t0=t0, trajectory=False)
        w = eq.vorticity(u)
        diag = (
            eq.kinetic_energy(u),
            0.5 * jnp.sum(w**2) * grid.cell_volume,
            jnp.max(jnp.abs(eq.divergence(u))),
            energy_spectrum(u, grid)[1],
        )
        return u, diag

    w0 = eq.vorticity(u0)
    diags = [
        (
            eq.kinetic_energy(u0),
            0.5 * jnp.sum(w0**2) * grid.cell_volume,
            jnp.max(jnp.abs(eq.divergence(u0))),
            energy_spectrum(u0, grid)[1],
        )
    ]
    snapshots, every = [u0], (n_energy - 1) // (n_saves - 1)
    u = u0
    samples = range(n_energy - 1)
    if progress:
        from tqdm.auto import tqdm

        samples = tqdm(samples, desc=f"kolmogorov {resolution}^2", unit="sample")
    for i in samples:
        u, diag = advance(u, i * interval)
        diags.append(diag)
        if (i + 1) % every == 0:
            snapshots.append(u)
        if progress:
            samples.set_postfix(E=f"{float(diag[0]):.3g}", refresh=False)
    energy, enstrophy, divergence, spectra = (np.asarray(jnp.stack(d)) for d in zip(*diags))
    t = np.arange(n_energy) * interval
    states = np.asarray(jnp.stack(snapshots))
    vort = np.asarray(jax.vmap(eq.vorticity)(jnp.stack(snapshots)))
    k = energy_spectrum(u0, grid)[0]
    averaged = t >= spectrum_after - 1e-9 * t_end
    x, y = grid.axis_centres(0), grid.axis_centres(1)
    x_face, y_face = grid.axis_faces(0)[:-1], grid.axis_faces(1)[:-1]
    return xr.Dataset(
        {
            "u": (("time", "x_face", "y"), states[:, 0]),
            "v": (("time", "x", "y_face"), states[:, 1]),
            "vorticity": (("time", "x_face", "y_face"), vort),
            "kinetic_energy": ("t", energy),
            "enstrophy": ("t", enstrophy),
            "max_divergence": ("t", divergence),
            "energy_spectrum": ("k", spectra[averaged].mean(axis=0)),
        },
        coords={
            "time": t[::every],
            "t": t,
            "k": k,
            "x": x,
            "y": y,
            "x_face": x_face,
            "y_face": y_face,
        },
        attrs={
            "problem": "kolmogorov",
            "resolution": resolution,
            "seed": seed,
            "viscosity": eq.flow.viscosity,
            "forcing_wavenumber": kwargs.get("wavenumber", WAVENUMBER),
            "forcing_amplitude": kwargs.get("amplitude", AMPLITUDE),
            "drag": eq.drag,
            "advection": eq.flow.advection,
            "method": stepper.tableau.name,
            "t_end": t_end,
            "dt": stepper.dt,
            "n_steps": per_sample * (n_energy - 1),
            "spectrum_after": spectrum_after,
            "n_spectra_averaged": int(averaged.sum()),
            "staggering": "u at (x_face, y), v at (x, y_face), vorticity at (x_face, y_face): lower faces",
        },
    )
