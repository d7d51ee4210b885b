"""Batched robust fitting of log-sum-exp power-law models (the Epoch AI recipe).

Every law in this package is a sum of power-law terms fitted in log space, the
way Hoffmann et al. (2022) and Besiroglu et al. (2024, Epoch AI) fit
Chinchilla's approach 3::

    log L_hat_i = logsumexp_k( M[k, i, :] @ theta )

``theta`` holds log-coefficients (``e = log E``, ``a = log A``, ...) and
exponents; the design ``M`` (K terms x n points x P parameters) holds 1 for a
term's log-coefficient and ``-log x_i`` for its exponent, so term k is
``exp(a_k - alpha_k log x_i) = A_k / x_i^alpha_k``. The objective is the Huber
loss (delta = 1e-3) of the log residuals ``log L_hat_i - log L_i``, SUMMED over
points (a mean shrinks the gradient n-fold and quasi-Newton methods stop
early). Bootstrap replicas are the same objective with integer point weights.

Minimisation: every start runs to its own convergence, all starts at once as
one numpy batch (``minimize_batch``). Each start takes Levenberg-Marquardt
steps on the exact gradient and a curvature model: the exact second-order term
of the log-sum-exp plus, for the Huber part, the IRLS weight
``min(1, kappa*delta/|r|)`` per point. (Huber's true curvature is zero outside
+-delta, so with delta = 1e-3 nearly every point would contribute none and a
Newton model would be useless.) A step is kept only if it lowers the exact
objective; the damping of each start adapts on its own; a start stops when a
kept step gains less than ``rtol`` relative, or when no step of any damping
gains. ``polish`` then refines the best few endpoints with scipy's L-BFGS-B
on the exact objective and gradient with tight tolerances.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3
_KAPPA = 0.3  # IRLS curvature scale outside +-delta: < 1 allows longer steps.
_BLOCK = 16384  # points x starts per block: keeps temporaries in cache (2-3x faster).
_PARALLEL_WORK = 50_000  # starts x points above which forking workers pays for itself


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class BatchResult:
    """Endpoints of a batched minimisation, one row per start."""

    theta: np.ndarray  # (S, P)
    objective: np.ndarray  # (S,) summed Huber loss at theta
    converged: np.ndarray  # (S,) bool
    iterations: int  # batch iterations run


class LogSumExpModel:
    """The summed-Huber objective of one design, with its derivatives.

    ``M`` is (K, n, P); each parameter must appear in one term only. Columns
    that are all zero are skipped and all-one columns are broadcast, which
    keeps the per-point work to a few array passes per term.
    """

    def __init__(self, M: np.ndarray, log_y: np.ndarray, delta: float = HUBER_DELTA):
        M = np.asarray(M, dtype=float)
        self.log_y = np.asarray(log_y, dtype=float)
        self.delta = float(delta)
        K, n, P = M.shape
        self.n_params = P
        # Per term, its (parameter, feature) columns, features before the all-one (None) column.
        self.terms: list[list[tuple[int, np.ndarray | None]]] = []
        for k in range(K):
            cols = [(p, None if np.all(M[k, :, p] == 1) else M[k, :, p]) for p in range(P) if np.any(M[k, :, p] != 0)]
            self.terms.append(sorted(cols, key=lambda c: c[1] is None))
        ones = np.ones(n)
        self.grad_feats = [(np.array([p for p, _ in cols], dtype=int),
                            np.stack([ones if v is None else v for p, v in cols], axis=1))
                           for cols in self.terms]
        # Hessian blocks: for terms k <= l, products of their features per point.
        self.blocks = []
        for k in range(K):
            for l in range(k, K):
                (pk, fk), (pl, fl) = self.grad_feats[k], self.grad_feats[l]
                prod = (fk[:, :, None] * fl[:, None, :]).reshape(n, -1)
                rows, cols = np.repeat(pk, len(pl)), np.tile(pl, len(pk))
                self.blocks.append((k, l, rows, cols, prod))

    def log_predict(self, theta: np.ndarray) -> np.ndarray:
        """log L_hat for each row of ``theta``: (S, P) -> (S, n)."""
        theta = np.atleast_2d(theta)
        z = self._logits(theta)
        m = _elementwise_max(z)
        return m + np.log(sum(np.exp(zk - m) for zk in z))

    def _logits(self, theta: np.ndarray) -> list[np.ndarray]:
        out = []
        for cols in self.terms:
            z = None
            for p, v in cols:
                if v is not None:
                    z = np.multiply.outer(theta[:, p], v) if z is None else z + np.multiply.outer(theta[:, p], v)
                elif z is None:
                    z = np.repeat(theta[:, p, None], len(self.log_y), axis=1)
                else:
                    z += theta[:, p, None]
            out.append(z)
        return out

    def value(self, theta: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Summed Huber loss for each row of ``theta``."""
        r = self.log_predict(theta) - self.log_y
        c = np.minimum(np.abs(r), self.delta)
        rho = c * (np.abs(r) - 0.5 * c)
        return (rho if weights is None else weights * rho).sum(axis=1)

    def gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and exact gradient at one point (for L-BFGS-B)."""
        f, g, _ = self._block(np.atleast_2d(theta), None, hessian=False)
        return float(f[0]), g[0]

    def derivatives(self, theta: np.ndarray, weights: np.ndarray | None = None):
        """Objective, exact gradient and curvature model for each row of ``theta``."""
        S = len(theta)
        f, g, H = np.empty(S), np.empty((S, self.n_params)), np.empty((S, self.n_params, self.n_params))
        chunk = max(8, _BLOCK // len(self.log_y))
        for i in range(0, S, chunk):
            sl = slice(i, i + chunk)
            f[sl], g[sl], H[sl] = self._block(theta[sl], None if weights is None else weights[sl])
        return f, g, H

    def _block(self, theta: np.ndarray, weights: np.ndarray | None, hessian: bool = True):
        # In-place arithmetic: this loop is the whole cost of a fit.
        w = self._logits(theta)
        m = _elementwise_max(w)
        for zk in w:
            zk -= m
            np.exp(zk, out=zk)
        tot = sum(w[1:], w[0].copy())
        r = np.log(tot)
        r += m
        r -= self.log_y
        np.reciprocal(tot, out=tot)
        for zk in w:
            zk *= tot  # softmax weights of the terms
        a = np.abs(r, out=m)
        c = np.minimum(a, self.delta, out=tot)
        rho = a - 0.5 * c
        rho *= c
        psi = np.copysign(c, r, out=c)
        if weights is not None:
            rho *= weights
            psi *= weights
        f = rho.sum(axis=1)
        S, P = theta.shape
        g = np.zeros((S, P))
        pw = [psi * wk for wk in w]
        for (idx, feats), u in zip(self.grad_feats, pw):
            g[:, idx] += u @ feats
        if not hessian:
            return f, g, None
        # d2 rho/d theta2 = sum_i q_i grad r_i grad r_i^T + psi_i hess r_i, with
        # hess r = M^T (diag w - w w^T) M for the log-sum-exp.
        with np.errstate(divide="ignore"):
            q = np.divide(_KAPPA * self.delta, a, out=rho)
        np.minimum(q, 1.0, out=q)
        if weights is not None:
            q *= weights
        q -= psi
        v = [q * wk for wk in w]
        H = np.zeros((S, P, P))
        for k, l, rows, cols, prod in self.blocks:
            coef = v[k] * w[l]
            if k == l:
                coef += pw[k]
            t = coef @ prod
            H[:, rows, cols] += t
            if k != l:
                H[:, cols, rows] += t
        return f, g, H


def _elementwise_max(arrays: list[np.ndarray]) -> np.ndarray:
    m = arrays[0].copy()
    for a in arrays[1:]:
        np.maximum(m, a, out=m)
    return m


def _damped_step(g: np.ndarray, H: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Levenberg-Marquardt step on a Jacobi-scaled, eigen-regularised curvature.

    Scaling by the diagonal makes the damping independent of the parameters'
    units (exponents vs log-coefficients); absolute eigenvalues keep the step
    a descent direction where the curvature model is indefinite.
    """
    diag = np.abs(np.einsum("spp->sp", H))
    floor = 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300
    scale = 1.0 / np.sqrt(np.maximum(diag, floor))
    ev, Q = np.linalg.eigh(H * scale[:, :, None] * scale[:, None, :])
    coef = np.einsum("spq,sp->sq", Q, g * scale) / (np.abs(ev) + lam[:, None])
    return -np.einsum("spq,sq->sp", Q, coef) * scale


def minimize_batch(
    model: LogSumExpModel,
    starts: np.ndarray,
    weights: np.ndarray | None = None,
    max_iter: int = 400,
    rtol: float = 1e-9,
    workers: int = 1,
) -> BatchResult:
    """Minimise the model's objective from every row of ``starts`` at once.

    ``weights`` (S, n), if given, weights the points separately for each start
    (bootstrap replicas share one design this way). Starts are independent, so
    ``workers`` > 1 splits them over forked processes; the endpoints are the
    same up to floating-point rounding.
    """
    starts = np.asarray(starts, dtype=float)
    S = len(starts)
    workers = min(workers, S)
    if workers > 1 and S * len(model.log_y) >= _PARALLEL_WORK and _can_fork():
        parts = [np.arange(i, S, workers) for i in range(workers)]  # interleaved: similar starts are adjacent
        jobs = [(model, starts[p], None if weights is None else weights[p], max_iter, rtol) for p in parts]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_minimize, *zip(*jobs)))
        order = np.argsort(np.concatenate(parts))
        return BatchResult(np.concatenate([r.theta for r in results])[order],
                           np.concatenate([r.objective for r in results])[order],
                           np.concatenate([r.converged for r in results])[order],
                           max(r.iterations for r in results))
    return _minimize(model, starts, weights, max_iter, rtol)


def _can_fork() -> bool:
    """Fork only where it is cheap and safe: a platform that has it, and no other Python thread running."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _minimize(model: LogSumExpModel, starts: np.ndarray, weights: np.ndarray | None, max_iter: int,
              rtol: float) -> BatchResult:
    theta = np.array(starts, dtype=float)
    S = len(theta)
    # Residuals of ~1e-13 are float noise in log L: an objective below this is an exact fit.
    floor = 1e-26 * (len(model.log_y) if weights is None else weights.sum(axis=1))
    floor = np.broadcast_to(floor, (S,))
    with np.errstate(over="ignore", invalid="ignore"):
        f, g, H = model.derivatives(theta, weights)
        lam = np.full(S, 1.0)
        done = ~np.isfinite(f) | (f <= floor)
        it = 0
        for it in range(1, max_iter + 1):
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            trial = theta[act] + _damped_step(g[act], H[act], lam[act])
            ft, gt, Ht = model.derivatives(trial, None if weights is None else weights[act])
            ok = np.isfinite(ft) & (ft < f[act])
            acc, rej = act[ok], act[~ok]
            small = f[acc] - ft[ok] <= rtol * f[acc] + floor[acc]
            theta[acc], f[acc], g[acc], H[acc] = trial[ok], ft[ok], gt[ok], Ht[ok]
            lam[acc] = np.maximum(lam[acc] / 3.0, 1e-15)
            lam[rej] *= 8.0
            done[acc[small]] = True
            done[rej[lam[rej] > 1e10]] = True
    return BatchResult(theta, f, done, it)


def polish(model: LogSumExpModel, theta0: np.ndarray) -> tuple[np.ndarray, float]:
    """Refine one point with L-BFGS-B; returns the better of start and result.

    The objective is divided by its starting value: L-BFGS-B's relative
    tolerance is taken against max(|f|, 1), and the summed Huber loss is far
    below 1.
    """
    theta0 = np.asarray(theta0, dtype=float)
    f0, _ = model.gradient(theta0)
    scale = 1.0 / f0 if f0 > 0 else 1.0

    def fun(t: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = model.gradient(t)
        return f * scale, g * scale

    with np.errstate(over="ignore", invalid="ignore"):
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12})
        f1 = float(model.value(res.x[None])[0])
    return (res.x, f1) if np.isfinite(f1) and f1 < f0 else (theta0, f0)


def fit_from_starts(model: LogSumExpModel, starts: np.ndarray, keep: int = 4,
                    workers: int = 1) -> tuple[np.ndarray, float, np.ndarray]:
    """Minimise from every start, polish the ``keep`` best distinct endpoints, keep the best.

    Returns the best parameters, their objective, and the polished distinct
    endpoints (best first), which bootstrap refits use as warm starts.
    Endpoints count as distinct when their objectives differ by > 1e-7 relative.
    """
    res = minimize_batch(model, starts, workers=workers)
    fin = np.isfinite(res.objective)
    if not fin.any():
        raise FloatingPointError("no start reached a finite objective")
    endpoints: list[np.ndarray] = []
    seen: list[float] = []
    for i in np.argsort(np.where(fin, res.objective, np.inf))[: int(fin.sum())]:
        f = res.objective[i]
        if all(abs(f - s) > 1e-7 * abs(s) for s in seen):
            seen.append(f)
            endpoints.append(res.theta[i])
            if len(endpoints) == keep:
                break
    polished = sorted((polish(model, t) for t in endpoints), key=lambda p: p[1])
    return polished[0][0], polished[0][1], np.array([t for t, _ in polished])


def bootstrap_refits(model: LogSumExpModel, warm: np.ndarray, n_boot: int, rng: np.random.Generator,
                     workers: int = 1) -> np.ndarray:
    """Refit ``n_boot`` resamples of the points (with replacement) from each warm start.

    Resamples are integer point weights, so all replicas x starts run as one
    batch. Returns the best parameters of each replica, (n_boot, P).
    """
    n = len(model.log_y)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    k, P = warm.shape
    res = minimize_batch(model, np.tile(warm, (n_boot, 1)), np.repeat(counts, k, axis=0), max_iter=200, rtol=1e-8,
                         workers=workers)
    obj = np.where(np.isfinite(res.objective), res.objective, np.inf).reshape(n_boot, k)
    return res.theta.reshape(n_boot, k, P)[np.arange(n_boot), obj.argmin(axis=1)]

