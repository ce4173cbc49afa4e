"""Instability statistics over the evaluated pairs, and the table the report writes.

Every function takes the evaluator's per-pair `metrics.json` dicts (or what `aggregate` makes of
them) and returns values; nothing here reads or writes files.
"""

import csv
import io

import numpy as np

from lmc_tf.evaluation import barrier

# Rows read train before test, as in the paper's figures; a new split sorts after these.
SPLIT_ORDER = ("train", "test")

COLUMNS = ("variant", "split", "rewind_step", "samples", "instability_mean", "instability_sd",
           "instability_median", "loss_barrier_mean", "endpoint_error_mean", "stable")


def sample_sd(values):
  """Sample standard deviation (ddof=1), 0 for one sample rather than NaN."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _mean_of(results, key):
  values = [r[key] for r in results if r.get(key) is not None]
  return float(np.mean(values)) if values else float("nan")


def variant_order(variants):
  """'standard' first (the paper's main experiment), then the others alphabetically."""
  return sorted(variants, key=lambda v: (v != "standard", v))


def split_order(splits):
  return sorted(splits, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER
                                       else len(SPLIT_ORDER), s))


def group(metrics_list):
  """{variant: {split: {rewind_step: [(metrics, metrics[split]), ...]}}} over the splits each
  pair has, in the order of `metrics_list`."""
  groups = {}
  for metrics in metrics_list:
    for split, result in metrics.items():
      # A split is a dict with an instability; `distances` and `per_epoch` are not splits.
      if not isinstance(result, dict) or "instability" not in result:
        continue
      by_step = groups.setdefault(metrics["variant"], {}).setdefault(split, {})
      by_step.setdefault(int(metrics["rewind_step"]), []).append((metrics, result))
  return groups


def aggregate(metrics_list):
  """Instability statistics per variant, split and rewind step.

  Args:
    metrics_list: the evaluator's per-pair metrics dicts; a pair may lack a split.

  Returns:
    {variant: {split: {rewind_step: stats}}}, ordered (standard first, train before test, k
    ascending), where stats holds instability_mean, instability_sd (ddof=1), instability_median,
    loss_barrier_mean, endpoint_error_mean, stable (instability_mean < 2 pp) and samples.
  """
  groups = group(metrics_list)
  agg = {}
  for variant in variant_order(groups):
    for split in split_order(groups[variant]):
      by_step = groups[variant][split]
      for step in sorted(by_step):
        results = [result for _, result in by_step[step]]
        instabilities = [float(r["instability"]) for r in results]
        mean = float(np.mean(instabilities))
        agg.setdefault(variant, {}).setdefault(split, {})[step] = {
            "instability_mean": mean,
            "instability_sd": sample_sd(instabilities),
            "instability_median": float(np.median(instabilities)),
            "loss_barrier_mean": _mean_of(results, "loss_barrier"),
            "endpoint_error_mean": _mean_of(results, "endpoint_error_mean"),
            "endpoint_error_sd": sample_sd([r["endpoint_error_mean"] for r in results
                                      if r.get("endpoint_error_mean") is not None]),
            "stable": barrier.is_stable(mean),
            "samples": len(instabilities),
        }
  return agg


def rows(agg):
  """`aggregate`'s nesting flattened to one dict per (variant, split, rewind_step), in order."""
  return [dict(variant=variant, split=split, rewind_step=step, **stats)
          for variant, by_split in agg.items()
          for split, by_step in by_split.items()
          for step, stats in by_step.items()]


def _cell(value, stable_words):
  if isinstance(value, bool):
    return stable_words[0] if value else stable_words[1]
  if isinstance(value, float):
    return f"{value:.2f}"
  return str(value)


_ALIGN = {"variant": "---", "split": "---", "stable": ":---:"}


def to_markdown(agg):
  """The aggregate as a Markdown table, numbers to 2 decimals, stable as yes/no."""
  lines = ["| " + " | ".join(COLUMNS) + " |",
           "|" + "|".join(_ALIGN.get(c, "---:") for c in COLUMNS) + "|"]
  for row in rows(agg):
    lines.append("| " + " | ".join(_cell(row[c], ("yes", "no")) for c in COLUMNS) + " |")
  return "\n".join(lines) + "\n"


def to_csv(agg):
  """The aggregate as CSV with a header row, numbers to 2 decimals, stable as true/false."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(COLUMNS)
  for row in rows(agg):
    writer.writerow([_cell(row[c], ("true", "false")) for c in COLUMNS])
  return out.getvalue()


def interpolation_curves(metrics_list):
  """Error along the linear path, mean and sd over pairs (Figure 2).

  Returns:
    {variant: {split: {rewind_step: {"alphas", "error_mean", "error_sd", "samples"}}}}.

  Raises:
    ValueError: if pairs of one group were evaluated at different α (the manifest fixes them,
      so this means results from two experiments were mixed).
  """
  curves = {}
  groups = group(metrics_list)
  for variant in variant_order(groups):
    for split in split_order(groups[variant]):
      for step, members in sorted(groups[variant][split].items()):
        members = [(m, r) for m, r in members if r.get("errors")]
        if not members:
          continue
        alphas = np.asarray(members[0][0]["alphas"], dtype=float)
        for metrics, _ in members:
          if len(metrics["alphas"]) != len(alphas) or not np.allclose(metrics["alphas"], alphas):
            raise ValueError(f"pair {metrics.get('id')!r} was interpolated at other alphas than "
                             f"pair {members[0][0].get('id')!r}; are two experiments mixed?")
        errors = np.asarray([r["errors"] for _, r in members], dtype=float)
        curves.setdefault(variant, {}).setdefault(split, {})[step] = {
            "alphas": alphas.tolist(),
            "error_mean": errors.mean(axis=0).tolist(),
            "error_sd": (errors.std(axis=0, ddof=1) if len(errors) > 1
                         else np.zeros(len(alphas))).tolist(),
            "samples": len(errors),
        }
  return curves


def per_epoch_curves(metrics_list):
  """Instability of the copies at the end of each epoch, mean and sd over pairs (Appendix C).

  Returns:
    {variant: {split: {rewind_step: {"epochs", "instability_mean", "instability_sd",
    "samples"}}}}, empty when no pair has `per_epoch` results. A pair still being evaluated
    may cover fewer epochs, so `samples` is a list, one count per epoch.
  """
  collected = {}
  for metrics in metrics_list:
    for entry in metrics.get("per_epoch") or ():
      for split, result in entry.items():
        if not isinstance(result, dict) or result.get("instability") is None:
          continue
        by_epoch = (collected.setdefault(metrics["variant"], {}).setdefault(split, {})
                    .setdefault(int(metrics["rewind_step"]), {}))
        by_epoch.setdefault(int(entry["epoch"]), []).append(float(result["instability"]))
  curves = {}
  for variant in variant_order(collected):
    for split in split_order(collected[variant]):
      for step, by_epoch in sorted(collected[variant][split].items()):
        epochs = sorted(by_epoch)
        curves.setdefault(variant, {}).setdefault(split, {})[step] = {
            "epochs": epochs,
            "instability_mean": [float(np.mean(by_epoch[e])) for e in epochs],
            "instability_sd": [sample_sd(by_epoch[e]) for e in epochs],
            "samples": [len(by_epoch[e]) for e in epochs],
        }
  return curves


# Table 2's columns: each variant and its label.
IMP_VARIANTS = (("imp", "IMP"), ("random_pruning", "Rand Prune"),
                ("random_reinit", "Rand Reinit"), ("snip", "SNIP"))


def imp_rows(summary):
  """One row per IMP level: density, test accuracy of IMP and each baseline, Δ IMP (vs the
  full network), matching (accuracy >= full - 0.2 pp), and test instability where measured."""
  full = summary["full_network_accuracy"]
  out = []
  for level in summary["levels"]:
    acc = level["test_accuracy"]
    row = {"level": level["level"], "density_percent": 100 * level["density"],
           "full": full}
    for variant, _ in IMP_VARIANTS:
      row[variant] = acc.get(variant)
    row["delta_imp"] = acc["imp"] - full if full is not None else None
    row["matching"] = barrier.is_matching(acc["imp"], full)
    for variant, by_k in level.get("instability", {}).items():
      for k, value in by_k.items():
        row[f"instability_{variant}_k{k}"] = value
    out.append(row)
  return out


def _imp_columns(rows_):
  base = ["level", "density_percent", "full"] + [v for v, _ in IMP_VARIANTS] + [
      "delta_imp", "matching"]
  extra = sorted({c for r in rows_ for c in r} - set(base))
  return base + extra


def imp_markdown(summary):
  rows_ = imp_rows(summary)
  columns = _imp_columns(rows_)
  lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
  for row in rows_:
    lines.append("| " + " | ".join("" if row.get(c) is None else _cell(row[c], ("Y", "N"))
                                   for c in columns) + " |")
  return "\n".join(lines) + "\n"


def imp_csv(summary):
  rows_ = imp_rows(summary)
  columns = _imp_columns(rows_)
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(columns)
  for row in rows_:
    writer.writerow(["" if row.get(c) is None else _cell(row[c], ("true", "false"))
                     for c in columns])
  return out.getvalue()


def first_k_medians(metrics_list, full_accuracy, split="test"):
  """Figure 9: per subnetwork, the median over samples of the first rewind step at which it is
  stable (instability < 2 pp) and at which it is matching (accuracy >= full - 0.2 pp).

  A sample is one (init seed, pair) across the rewind grid. As in the paper, a median is only
  given when most samples reach the criterion at some k; otherwise it is None.

  Returns:
    {variant: {"stable": k or None, "matching": k or None, "samples": n}}.
  """
  samples = {}
  for m in metrics_list:
    if split not in m:
      continue
    key = (m["init_seed"], m["pair"])
    samples.setdefault(m["variant"], {}).setdefault(key, []).append(
        (int(m["rewind_step"]), m[split]["instability"], 100.0 - m[split]["endpoint_error_mean"]))
  out = {}
  for variant, by_sample in samples.items():
    firsts = {"stable": [], "matching": []}
    for points in by_sample.values():
      points.sort()
      stable = [k for k, inst, _ in points if barrier.is_stable(inst)]
      matching = [k for k, _, acc in points if barrier.is_matching(acc, full_accuracy)]
      firsts["stable"].append(stable[0] if stable else None)
      firsts["matching"].append(matching[0] if matching else None)
    n = len(by_sample)
    out[variant] = {"samples": n}
    for criterion, ks in firsts.items():
      reached = [k for k in ks if k is not None]
      out[variant][criterion] = float(np.median(reached)) if len(reached) > n / 2 else None
  return out


def table2_lines(summary):
  """Table 2 of the LMC paper from IMP's summary: the last level, against the full network."""
  if not summary["levels"]:
    return []
  last = summary["levels"][-1]
  acc = last["test_accuracy"]
  full = summary["full_network_accuracy"]
  cells = [f"density {100 * last['density']:.1f}%", f"Full {full:.2f}"]
  for variant, name in IMP_VARIANTS:
    if variant in acc:
      cells.append(f"{name} {acc[variant]:.2f}")
  if "imp" in acc:
    cells.append(f"Δ IMP {acc['imp'] - full:+.2f}")
    cells.append(f"Matching? {'Y' if barrier.is_matching(acc['imp'], full) else 'N'}")
  return [" | ".join(cells)]
