"""The Stabilizing paper's Figures 3 and 10 over several experiments: one line per network,
ours over the paper's, from each experiment's summary.json (after its --job=report, which
records the paper's row, report.stabilizing_row).

  .venv/bin/python tools/stabilizing_table.py DIR [DIR ...] [--out FILE.md]
"""

import sys

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.reporting import stabilizing_tables


def main(argv):
  args = argv[1:]
  out = None
  if "--out" in args:
    at = args.index("--out")
    out, args = args[at + 1], args[:at] + args[at + 2:]
  if not args:
    sys.exit(__doc__)
  summaries = []
  for directory in args:
    path = layout.summary(directory)
    if not files.exists(path):
      sys.exit(f"{path}: missing; run --job=report on {directory} first")
    summary = files.read_json(path)
    summaries.append((summary.get("stabilizing_row"), summary))
  text = "\n".join(stabilizing_tables.networks_markdown(summaries, metric)
                   for metric in ("l2", "angle_deg"))
  if out:
    files.write_text_atomic(out, text)
  print(text)


if __name__ == "__main__":
  main(sys.argv)
