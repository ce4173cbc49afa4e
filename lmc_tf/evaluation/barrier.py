"""Instability (SPEC §6): the error barrier along the linear path between two copies."""

import numpy as np

STABLE_THRESHOLD_PP = 2.0  # stable: instability under 2 percentage points (Section 2)
MATCHING_MARGIN_PP = 0.2  # matching: accuracy within 0.2 pp of the full network's (Section 5)


def is_stable(instability):
  return bool(instability < STABLE_THRESHOLD_PP)


def is_matching(accuracy, full_accuracy):
  """A subnetwork is matching when its accuracy is at least the full network's - 0.2 pp."""
  return bool(full_accuracy is not None and accuracy >= full_accuracy - MATCHING_MARGIN_PP)


def alphas(num_alphas):
  """`num_alphas` evenly spaced interpolation weights in [0, 1], endpoints included."""
  if num_alphas < 2:
    raise ValueError(f"need at least 2 alphas (the endpoints), got {num_alphas}")
  return np.linspace(0.0, 1.0, num_alphas)


def barrier(values):
  """max over alpha of values(alpha) - mean(values(0), values(1)).

  On errors in percent this is the instability in percentage points; on losses, the loss
  barrier. It is never negative: the endpoints are on the path.
  """
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1 or len(values) < 2:
    raise ValueError("a barrier needs a 1-D curve with both endpoints")
  return float(values.max() - 0.5 * (values[0] + values[-1]))


def curve_metrics(errors, losses):
  """Everything the paper reads off one interpolation curve of one split."""
  instability = barrier(errors)
  return {"instability": instability,
          "loss_barrier": barrier(losses),
          "stable": is_stable(instability),
          "endpoint_error_mean": float(0.5 * (errors[0] + errors[-1])),
          "errors": [float(e) for e in errors],
          "losses": [float(l) for l in losses]}
