r"""The single ReLU unit of relu.single_unit in closed form: the expected update of Douglas &
Yu's rule, its spectrum and the convergence time as a function of Pr[y > 0] (Eqs. 1-6). The
analysis is derived here (only the paper's abstract and model equations were available).

**Model.** y = w^T x + b, f(y) = max(0, y), inputs x ~ N(0, I_d). With theta = (w, b) and
x~ = (x, 1): y = theta^T x~. The unit is trained by Douglas & Yu's rule

    theta <- theta + mu e 1[y > 0] x~,   e = t - f(y).                               (1)

**Target.** A linear teacher t = theta*^T x~ (our choice). On the active set f(y) = y, so
e 1[y>0] = -delta^T x~ 1[y>0] with delta = theta - theta*, *exactly*: the expected update
is linear in delta for any theta, the fixed point theta* is unique whenever p > 0, and the
only thing that slows learning is how often the unit is active. A ReLU teacher
t = max(0, theta*^T x~) gives the same dynamics to first order near theta*: y and y* differ
in sign only on a set of probability O(||delta||), where the error is O(||delta||).

**Expected update.** Taking expectations of (1):

    E[Delta theta] = -mu H(theta) delta,   H(theta) = E[1[y > 0] x~ x~^T].          (2)

With w_hat = w / ||w||, a = b / ||w||, p = Pr[y > 0] = Phi(a), phi = standard normal density,
and u = w_hat^T x ~ N(0, 1) (y > 0 <=> u > -a), the truncated Gaussian moments E[1] = p,
E[1 u] = phi(a), E[1 u^2] = p - a phi(a), E[1 x_perp x_perp^T] = p (I - w_hat w_hat^T) give

    H = [[p (I - w_hat w_hat^T) + (p - a phi(a)) w_hat w_hat^T,  phi(a) w_hat],
         [phi(a) w_hat^T,                                        p           ]]     (3)

(in particular E[1[y > 0] x] = phi(a) w_hat, Eq. 3a).

**Spectrum.** H has the eigenvalue p on the (d - 1)-dimensional subspace {(v, 0): v _|_ w_hat},
and in the (w_hat, bias) plane the eigenvalues

    lambda_+/- = p - a phi / 2 +/- sqrt((a phi / 2)^2 + phi^2).                      (4)

As p -> 0 (a -> -inf, p ~ phi / |a|): lambda_+ ~ a^2 p and lambda_- ~ p / a^4.

**Convergence rate (linearisation at theta*).** For theta near theta*,
H(theta) = H(theta*) + O(||delta||), so E[delta_{t+1}] ~ (I - mu H*) E[delta_t]. An initial
error off the (w*, bias) plane is an eigenvector with eigenvalue p* = Pr[y* > 0] and decays
as (1 - mu p)^t: the effective step size is mu p, and the time to shrink it by a factor eps is

    T(p) = ln(1 / eps) / -ln(1 - mu p)  ~  ln(1 / eps) / (mu p),                     (5)

the 1/p law. Assumptions: Gaussian inputs; ||delta_0|| << ||w*|| (the corrections are of
relative order ||delta_0|| / ||w*||, through the rotation of w_hat); mu lambda_max < 2 for
stability; and (5) is for the *mean* E[theta_t]. Single runs fluctuate multiplicatively
(the noise of (1) is proportional to delta): for an off-plane error,
E||delta_{t+1}||^2 = (1 - 2 mu p + mu^2 (p (d + 3) - a phi(a))) ||delta_t||^2, so one run's
squared error decays a relative O(mu d / 2) slower than the mean's. In-plane errors decay at
the rates mu lambda_+/-, and lambda_- << p when p is small: the trade-off between the bias
and the length of w is the slowest mode of a dying unit.

**Far from theta*.** Eq. (2) still holds exactly, but H changes along the way, so the
expected dynamics are iterated numerically (mean field, neglecting the spread of theta
across runs, E[H(theta) delta] ~ H(E theta) E delta):

    theta_{t+1} = theta_t - mu H(theta_t) (theta_t - theta*).                        (6)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def truncated_gaussian_terms(w: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """For y = w^T x + b with x ~ N(0, I): unit direction w_hat = w / ||w||, a = b / ||w||,
    p = Pr[y > 0] = Phi(a) and phi(a), the standard normal density at a. Batched over
    leading dimensions of ``w`` (..., d) and ``b`` (...)."""
    norm = w.norm(dim=-1)
    a = b / norm
    return {
        "w_hat": w / norm.unsqueeze(-1),
        "a": a,
        "p": torch.special.ndtr(a),  # p = Phi(b / ||w||)
        "phi": torch.exp(-0.5 * a**2) / math.sqrt(2 * math.pi),
    }


def activation_matrix(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """H(theta) = E[1[y > 0] x~ x~^T] in closed form (Eq. 3), shape (..., d+1, d+1).

    With u = w_hat^T x ~ N(0, 1) and x_perp = x - u w_hat independent of u, y > 0 <=> u > -a:
    E[1] = p, E[1 u] = phi(a), E[1 u^2] = p - a phi(a), E[1 x_perp x_perp^T] = p (I - w_hat
    w_hat^T), cross terms zero. So
        H = [[p (I - w_hat w_hat^T) + (p - a phi) w_hat w_hat^T,  phi w_hat],
             [phi w_hat^T,                                        p        ]].           (3)
    """
    g = truncated_gaussian_terms(w, b)
    d = w.shape[-1]
    p, a, phi, w_hat = g["p"], g["a"], g["phi"], g["w_hat"]
    outer = w_hat.unsqueeze(-1) * w_hat.unsqueeze(-2)
    eye = torch.eye(d, dtype=w.dtype, device=w.device)
    h = torch.zeros(*w.shape[:-1], d + 1, d + 1, dtype=w.dtype, device=w.device)
    pp, radial = p[..., None, None], (p - a * phi)[..., None, None]
    h[..., :d, :d] = pp * (eye - outer) + radial * outer
    h[..., :d, d] = phi.unsqueeze(-1) * w_hat  # E[1[y>0] x] = phi(a) w_hat              (3a)
    h[..., d, :d] = phi.unsqueeze(-1) * w_hat
    h[..., d, d] = p
    return h


def expected_update(
    w: torch.Tensor, b: torch.Tensor, w_star: torch.Tensor, b_star: torch.Tensor, mu: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """E[delta w], E[delta b] of rule (1) for the linear teacher (w*, b*), in closed form:
    E[Delta theta] = mu E[(t - y) 1[y > 0] x~] = -mu H(theta) (theta - theta*)        (2)
    (exact: where y > 0, f(y) = y, so e = -(theta - theta*)^T x~)."""
    d = w.shape[-1]
    delta = torch.cat([w - w_star, (b - b_star).unsqueeze(-1)], dim=-1)
    step = -mu * (activation_matrix(w, b) @ delta.unsqueeze(-1)).squeeze(-1)
    return step[..., :d], step[..., d]


def activation_spectrum(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two eigenvalues lambda_+/- of H in the (w_hat, bias) plane at Pr[y > 0] = p (Eq. 4);
    the other d - 1 eigenvalues are p."""
    a = torch.special.ndtri(p)
    phi = torch.exp(-0.5 * a**2) / math.sqrt(2 * math.pi)
    centre, radius = p - a * phi / 2, torch.sqrt((a * phi / 2) ** 2 + phi**2)
    return centre + radius, centre - radius


def linearised_convergence_time(p: torch.Tensor, mu: float, tolerance: float) -> torch.Tensor:
    """Steps for the expected error off the (w_hat, bias) plane to shrink by ``tolerance``
    near the optimum (Eq. 5): (1 - mu p)^T = tolerance, T = ln(1/tol) / -ln(1 - mu p)."""
    return math.log(1 / tolerance) / -torch.log1p(-mu * p)


def mean_field_convergence_time(
    theta0: torch.Tensor, theta_star: torch.Tensor, mu: float, tolerance: float, max_steps: int
) -> torch.Tensor:
    """First t with ||theta_t - theta*|| <= tolerance ||theta_0 - theta*|| under the expected
    dynamics theta_{t+1} = theta_t - mu H(theta_t) (theta_t - theta*) (Eq. 6), for each row of
    ``theta0`` (K, d+1); ``max_steps`` where it is not reached."""
    theta, d = theta0.clone(), theta0.shape[-1] - 1
    threshold = tolerance**2 * ((theta0 - theta_star) ** 2).sum(-1)
    alive = torch.ones(len(theta), dtype=torch.bool)
    steps = torch.zeros(len(theta), dtype=torch.long)
    for _ in range(max_steps):
        delta = theta - theta_star
        theta = (
            theta - mu * (activation_matrix(theta[:, :d], theta[:, d]) @ delta[..., None])[..., 0]
        )
        alive &= ((theta - theta_star) ** 2).sum(-1) > threshold
        steps += alive
        if not alive.any():
            break
    return steps + 1 - alive.long()  # the step at which it crossed (1-based)


@dataclass
class ConvergenceTimes:
    """Convergence times per initial Pr[y > 0] = ``p``: predicted and simulated (run mean and
    median run), near the optimum (Eq. 5) and from far initialisations (Eq. 6)."""

    p: torch.Tensor
    predicted_near: torch.Tensor
    sim_near: torch.Tensor
    median_near: torch.Tensor
    predicted_far: torch.Tensor
    sim_far: torch.Tensor
    median_far: torch.Tensor

    @property
    def gap_near(self) -> torch.Tensor:
        """Relative gap, simulated vs predicted, near the optimum."""
        return ((self.sim_near - self.predicted_near) / self.predicted_near).abs()

    @property
    def gap_far(self) -> torch.Tensor:
        """Relative gap, simulated vs predicted, from far initialisations."""
        return ((self.sim_far - self.predicted_far) / self.predicted_far).abs()

    def exponent(self, times: torch.Tensor, where: torch.Tensor | None = None) -> float:
        """Fitted exponent of T against p on log-log axes (over ``where``): -1 is the 1/p law
        of Eq. (5); NaN with fewer than two points."""
        keep = torch.ones(len(self.p), dtype=torch.bool) if where is None else where
        if keep.sum() < 2:
            return float("nan")
        x, y = np.log(self.p[keep].numpy()), np.log(times[keep].numpy())
        return float(np.polyfit(x, y, 1)[0])
