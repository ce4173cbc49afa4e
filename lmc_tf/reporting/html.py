"""DIR/report/index.html: every figure and table of the report job on one static page.

The page also holds the experiment's operative config and links to its raw JSON (summary,
experiment record, manifest or IMP record, each pair's metrics). Figures and tables are found
by listing report/ (subfolders too), so a new figure shows up without touching this module.
Every link is relative and the CSS is inline, with no script and nothing fetched: the page
opens offline in any browser, from a copy of the directory as well.
"""

import html
import os
import re
import urllib.parse

from lmc_tf import files
from lmc_tf import layout
from lmc_tf.reporting import html_text

IMAGE_EXTENSIONS = (".png", ".svg", ".jpg", ".jpeg", ".gif")
TABLE_EXTENSIONS = (".md", ".csv")
_STATS = ("instability_mean", "instability_sd", "stable", "samples")
_MAX_SCALARS = 40

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1400px;padding:1em 2em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:1.8em} h3,h4{margin-bottom:.3em} .sub{color:#666;margin-top:0}
nav a{margin-right:1em} table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .45em;text-align:left;vertical-align:top}
th{background:#f2f2f2} tbody tr:nth-child(even){background:#fafafa}
td.right,th.right{text-align:right;font-variant-numeric:tabular-nums}
td.center,th.center{text-align:center} .scroll{overflow-x:auto}
figure{margin:1em 0 2em;display:inline-block;max-width:100%;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em} pre{background:#f6f8fa;padding:.8em;overflow:auto;max-height:32em;
font-size:.8em;border:1px solid #e1e4e8} code{background:#f2f2f2;padding:0 .2em}
.table-file{margin-bottom:2em} .files{font-size:.85em;color:#555}
ul.raw{columns:2;font-size:.9em} dl{display:grid;grid-template-columns:max-content auto;
gap:.1em 1em} dt{font-weight:600} dd{margin:0}
"""


def _esc(text):
  return html.escape(str(text), quote=True)


def _href(path, start):
  """`path` as a relative, URL-quoted link from the directory `start`."""
  return _esc(urllib.parse.quote(files.relative(path, start).replace(os.sep, "/")))


def _walk(directory, prefix=""):
  """The files under `directory`, as paths relative to it, sorted: the top level first."""
  found, folders = [], []
  for name in files.listdir(directory):
    if files.isdir(files.join(directory, name)):
      folders.append(name)
    else:
      found.append(prefix + name)
  for name in folders:
    found += _walk(files.join(directory, name), f"{prefix}{name}/")
  return found


def _caption(rel):
  stem = os.path.splitext(os.path.basename(rel))[0]
  words = stem.replace("_", " ")
  words = re.sub(r"^figure(\d+)", r"Figure \1:", words)
  words = re.sub(r"^appendix ([a-z])\b", lambda m: f"Appendix {m.group(1).upper()}:", words)
  return words.rstrip(":")


def _read_json(path):
  try:
    return files.read_json(path) if files.exists(path) else None
  except ValueError:
    return None


def parent_experiment(experiment_dir):
  """The IMP experiment that `experiment_dir` is a sub-experiment of, else None."""
  name = os.path.basename(os.path.normpath(experiment_dir))
  try:
    sub = layout.SubExperiment.parse(name)
  except ValueError:
    return None
  parent = files.join(experiment_dir, "..", "..")
  return parent if files.join(sub.directory(parent)) == files.join(experiment_dir) and (
      files.exists(layout.imp_record(parent))) else None


def title(experiment_dir):
  """'<directory>: <job>, <model> on <dataset>', from experiment.json where it is (an IMP
  sub-experiment's is its IMP experiment's)."""
  name = os.path.basename(os.path.normpath(experiment_dir)) or experiment_dir
  parent = parent_experiment(experiment_dir)
  if parent is not None:
    return f"{title(parent)}: {name}"
  record = _read_json(layout.experiment_record(experiment_dir)) or {}
  training = record.get("training", {})
  model = training.get("model", {}).get("name")
  dataset = training.get("dataset", {}).get("name")
  parts = [record.get("job")]
  if model or dataset:
    parts.append(" on ".join(p for p in (model, dataset) if p))
  described = ", ".join(p for p in parts if p)
  return f"{name}: {described}" if described else name


def _flatten(value, path=()):
  """(path, scalar) of a JSON value's leaves, and (path, stats dict) of the dicts holding an
  instability; lists are summed up, not spread out."""
  scalars, stats = [], []
  if isinstance(value, dict):
    if "instability_mean" in value:
      return scalars, [(path, value)]
    for key in sorted(value, key=str):
      s, t = _flatten(value[key], path + (str(key),))
      scalars += s
      stats += t
  elif isinstance(value, list):
    if all(not isinstance(v, (dict, list)) for v in value) and len(value) <= 8:
      scalars.append((path, ", ".join(map(str, value)) or "(none)"))
    else:
      noun = "entry" if len(value) == 1 else "entries"
      scalars.append((path, f"{len(value)} {noun} (in {layout.SUMMARY})"))
  else:
    scalars.append((path, "(none)" if value is None else value))
  return scalars, stats


def _number(value):
  if isinstance(value, bool):
    return "yes" if value else "no"
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def summary_section(summary):
  """Key numbers of summary.json: its scalars, and mean ± sd instability wherever it is."""
  scalars, stats = _flatten(summary)
  out = []
  if scalars:
    shown = scalars[:_MAX_SCALARS]
    out.append("<dl>" + "".join(f"<dt>{_esc('.'.join(p))}</dt><dd>{_esc(_number(v))}</dd>"
                                for p, v in shown) + "</dl>")
    if len(scalars) > len(shown):
      out.append(f"<p>… and {len(scalars) - len(shown)} more in {_esc(layout.SUMMARY)}.</p>")
  if stats:
    rows = [[" / ".join(p[:-1]), p[-1] if p else "",
             f"{s['instability_mean']:.2f} ± {s.get('instability_sd', 0.0):.2f}",
             _number(s.get("stable", "")), _number(s.get("samples", ""))] for p, s in stats]
    out.append(html_text.table(["where", "k", "instability (pp)", "stable", "samples"],
                               rows))
  return "\n".join(out)


def _tables_section(report_dir, rels):
  """Each table once: the .md (it explains its columns) with a link to its .csv, else the
  .csv itself."""
  by_stem = {}
  for rel in rels:
    stem, ext = os.path.splitext(rel)
    by_stem.setdefault(stem, {})[ext] = rel
  out = []
  for stem, kinds in by_stem.items():
    path = files.join(report_dir, kinds.get(".md") or kinds[".csv"])
    text = files.read_text(path)
    heading = "" if text.lstrip().startswith("#") else f"<h3>{_esc(_caption(stem))}</h3>\n"
    body = heading + (html_text.markdown(text) if ".md" in kinds else
                      html_text.csv_table(text))
    links = " · ".join(f'<a href="{_href(files.join(report_dir, r), report_dir)}">{_esc(r)}</a>'
                       for r in sorted(kinds.values()))
    out.append(f'<div class="table-file" id="{_esc("table-" + stem)}">\n{body}\n'
               f'<p class="files">{links}</p></div>')
  return "\n".join(out)


def _figures_section(report_dir, rels):
  out, folder = [], None
  for rel in rels:
    here = os.path.dirname(rel)
    if here != folder:
      folder = here
      if here:
        out.append(f"<h3>{_esc(here)}/</h3>")
    src = _href(files.join(report_dir, rel), report_dir)
    out.append(f'<figure><a href="{src}"><img src="{src}" alt="{_esc(_caption(rel))}" '
               f'loading="lazy"></a><figcaption>{_esc(_caption(rel))} '
               f"(<code>{_esc(rel)}</code>)</figcaption></figure>")
  return "\n".join(out)


def _config_section(experiment_dir):
  out = []
  for name in (layout.OPERATIVE_CONFIG, layout.EVALUATE_OPERATIVE_CONFIG):
    path = files.join(experiment_dir, name)
    if files.exists(path):
      out.append(f"<details open><summary><code>{_esc(name)}</code></summary>"
                 f"<pre>{_esc(files.read_text(path))}</pre></details>")
  return "\n".join(out)


def raw_files(experiment_dir):
  """The experiment's raw JSON that exists: summary, record, manifest, IMP record, and every
  metrics file of every pair."""
  paths = [p(experiment_dir) for p in (layout.summary, layout.experiment_record,
                                       layout.manifest, layout.imp_record)]
  paths = [p for p in paths if files.exists(p)]
  pairs = files.join(experiment_dir, layout.PAIRS)
  for pair_id in files.listdir(pairs):
    for align, mode in layout.metrics_keys(experiment_dir, pair_id):
      paths.append(layout.metrics(experiment_dir, pair_id, mode, align))
  return paths


def _subs_section(experiment_dir, report_dir):
  """Links to the report pages of IMP's sub-experiments (one per subnetwork)."""
  items = []
  for sub in layout.sub_experiments(experiment_dir):
    index = layout.report_index(sub.directory(experiment_dir))
    if files.exists(index):
      items.append(f'<li><a href="{_href(index, report_dir)}">{_esc(sub.name)}</a></li>')
  return "<ul>\n" + "\n".join(items) + "\n</ul>" if items else ""


def _raw_section(experiment_dir, report_dir, others):
  items = [f'<li><a href="{_href(p, report_dir)}">{_esc(files.relative(p, experiment_dir))}'
           "</a></li>" for p in raw_files(experiment_dir)]
  items += [f'<li><a href="{_href(files.join(report_dir, r), report_dir)}">report/{_esc(r)}'
            "</a></li>" for r in others]
  return '<ul class="raw">\n' + "\n".join(items) + "\n</ul>" if items else ""


def page(experiment_dir, heading=None):
  """The report page of `experiment_dir` as HTML text (reads, writes nothing), headed by
  `heading` (the report's title, e.g. 'LeNet-300-100 / MNIST') or else by `title`."""
  report_dir = layout.report_dir(experiment_dir)
  rels = [r for r in _walk(report_dir) if r != layout.REPORT_INDEX]
  images = [r for r in rels if r.lower().endswith(IMAGE_EXTENSIONS)]
  tables = [r for r in rels if r.lower().endswith(TABLE_EXTENSIONS)]
  others = [r for r in rels if r not in images and r not in tables
            and ".tmp-" not in os.path.basename(r)]
  summary = _read_json(layout.summary(experiment_dir))
  sections = [("summary", "Summary", summary_section(summary) if summary else ""),
              ("tables", "Tables", _tables_section(report_dir, tables)),
              ("figures", "Figures", _figures_section(report_dir, images)),
              ("subexperiments", "Sub-experiments", _subs_section(experiment_dir, report_dir)),
              ("config", "Operative config", _config_section(experiment_dir)),
              ("raw", "Raw data", _raw_section(experiment_dir, report_dir, others))]
  sections = [s for s in sections if s[2]]
  name = title(experiment_dir)
  nav = " ".join(f'<a href="#{key}">{_esc(heading)}</a>' for key, heading, _ in sections)
  body = "\n".join(f'<section id="{key}">\n<h2>{_esc(heading)}</h2>\n{content}\n</section>'
                   for key, heading, content in sections)
  counts = f"{len(images)} figures, {len(tables)} table files"
  where = f"{_esc(name)}. " if heading else ""
  parent = parent_experiment(experiment_dir)
  if parent is not None:
    up = _href(layout.report_index(parent), report_dir)
    nav = f'<a href="{up}">↑ {_esc(title(parent))}</a> ' + nav
  return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
          f"<title>{_esc(heading or name)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
          f"<h1>{_esc(heading or name)}</h1>\n"
          f"<p class=\"sub\">{where}The report job's outputs: {counts}.</p>\n"
          f"<nav>{nav}</nav>\n{body}\n</body>\n</html>\n")


def write_index(experiment_dir, heading=None):
  """Writes report/index.html atomically (and that of each IMP sub-experiment with a
  report/, first, so the page can link to them), headed by `heading` if given; returns its
  path."""
  for sub in layout.sub_experiments(experiment_dir):
    if files.isdir(layout.report_dir(sub.directory(experiment_dir))):
      write_index(sub.directory(experiment_dir), heading and f"{heading}: {sub.name}")
  path = layout.report_index(experiment_dir)
  files.write_text_atomic(path, page(experiment_dir, heading))
  return path

