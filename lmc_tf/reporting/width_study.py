"""The width study (Git Re-Basin, Ainsworth et al. 2023, Figure 4: ResNet-20 on CIFAR-10 at
width ×1 to ×32): the barrier between naive and aligned networks against the network's width,
over several experiments, one per width.

Each experiment's width is the `*.width_multiplier` binding of its training config, read from
its operative_config.gin or experiment.json. Experiments of one width are pooled: their pairs
are the samples. Every function takes values and returns values; the `report` job reads them.
"""

import csv
import io
import re

from lmc_tf.reporting import aligned_tables
from lmc_tf.reporting import tables

# The bindings that scale a model's width, the CIFAR ResNets' first (the study's network). An
# operative config lists the bindings of the model that was built only.
WIDTH_BINDINGS = ("resnet_cifar.width_multiplier", "vgg.width_multiplier",
                  "resnet_imagenet.width_multiplier", "inception_v3.width_multiplier")
DEFAULT_WIDTH = 1.0
COLUMNS = ("width", "experiments") + aligned_tables.COLUMNS


def width_from_config(text):
  """The width multiplier an operative_config.gin binds, or None if it binds none."""
  for binding in WIDTH_BINDINGS:
    match = re.search(r"^\s*%s\s*=\s*([-+0-9.eE]+)\s*$" % re.escape(binding), text,
                      re.MULTILINE)
    if match:
      return float(match.group(1))
  return None


def width_from_record(record):
  """The width multiplier in an experiment.json's training fingerprint, or None."""
  training = (record or {}).get("training") or {}
  for binding in WIDTH_BINDINGS:
    configurable, param = binding.split(".")
    value = (training.get(configurable) or {}).get(param)
    if value is not None:
      return float(value)
  return None


def width_of(config_text=None, record=None):
  """An experiment's width: its operative config's, else its experiment.json's, else 1."""
  for width in (width_from_config(config_text or ""), width_from_record(record)):
    if width is not None:
      return width
  return DEFAULT_WIDTH


def width_text(width):
  """'×1', '×0.25'."""
  return f"×{width:g}"


def aggregate(by_width):
  """{width: `aligned_tables.aggregate`} of {width: {(align, mode): [metrics]}}, widths
  ascending."""
  return {width: aligned_tables.aggregate(by_width[width]) for width in sorted(by_width)}


def rows(agg_by_width, names_by_width=None):
  """One dict per (variant, split, rewind_step, align, bn_mode, width): each key's series
  against width, widths ascending."""
  names_by_width = names_by_width or {}
  out = []
  for width, agg in agg_by_width.items():
    for row in aligned_tables.rows(agg):
      out.append(dict(row, width=width, experiments=" ".join(names_by_width.get(width, ()))))
  variants = tables.variant_order({r["variant"] for r in out})
  splits = tables.split_order({r["split"] for r in out})
  keys = list(dict.fromkeys(k for agg in agg_by_width.values() for k in agg))
  return sorted(out, key=lambda r: (variants.index(r["variant"]), splits.index(r["split"]),
                                    r["rewind_step"], keys.index((r["align"], r["bn_mode"])),
                                    r["width"]))


def to_markdown(agg_by_width, names_by_width=None):
  table = rows(agg_by_width, names_by_width)
  return aligned_tables.markdown_rows(
      table, lead=(("width", lambda r: width_text(r["width"])),
                   ("experiments", lambda r: r["experiments"])))


def to_csv(agg_by_width, names_by_width=None):
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(COLUMNS)
  for row in rows(agg_by_width, names_by_width):
    writer.writerow([f"{row['width']:g}", row["experiments"]]
                    + aligned_tables.csv_cells(row))
  return out.getvalue()


def drawn(agg_by_width):
  """(variant, rewind step) the figure shows: the main variant ('standard', else the first
  in `tables.variant_order`, as 'inits') at the smallest k every width has.

  Raises:
    ValueError: if no k of that variant is measured at every width.
  """
  variants = tables.variant_order({v for agg in agg_by_width.values()
                                   for by_variant in agg.values() for v in by_variant})
  if not variants:
    raise ValueError("no experiment of the width study has a finished pair")
  variant = variants[0]
  common = None
  for agg in agg_by_width.values():
    steps = {k for by_variant in agg.values()
             for by_step in by_variant.get(variant, {}).values() for k in by_step}
    common = steps if common is None else common & steps
  if not common:
    raise ValueError(f"no rewind step of variant {variant!r} is measured at every width "
                     f"({', '.join(width_text(w) for w in agg_by_width)})")
  return variant, min(common)
