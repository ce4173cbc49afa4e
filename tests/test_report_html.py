"""report/index.html (reporting/html.py): every figure and table, escaped, relative links."""

import html.parser
import json
import os
import shutil
import subprocess
import urllib.parse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import pytest

from lmc_tf import layout
from lmc_tf.reporting import html as report_html
from lmc_tf.reporting import html_text

CHROMIUM = "/usr/bin/chromium"


def _png(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig, ax = plt.subplots(figsize=(3, 2))
  ax.plot([0, 1], [1, 0])
  fig.savefig(path)
  plt.close(fig)


@pytest.fixture
def experiment(tmp_path):
  """A small reported experiment: figures (one in a subfolder), .md + .csv, a lone .csv."""
  d = str(tmp_path / "exp")
  report = os.path.join(d, layout.REPORT)
  _png(os.path.join(report, "figure3_instability.png"))
  _png(os.path.join(report, "pairs", "standard-k0-pair0.png"))
  with open(os.path.join(report, "instability.md"), "w") as f:
    f.write("# Instability: <LeNet> & co\n\nStable means *mean* < 2 `pp`.\n\n"
            "| variant | split | instability_mean |\n|---|---|---:|\n"
            "| standard | test | 2.83 |\n| <b>x</b> | train | 1.00 |\n")
  with open(os.path.join(report, "instability.csv"), "w") as f:
    f.write("variant,split,instability_mean\nstandard,test,2.83\n")
  with open(os.path.join(report, "width.csv"), "w") as f:
    f.write("width,barrier\n1,<3>\n2,0.5\n")
  summary = {"pairs_done": 1, "pairs_total": 2,
             "test": {"0": {"instability_mean": 2.83, "instability_sd": 0.1, "stable": False,
                            "samples": 1}}}
  with open(layout.summary(d), "w") as f:
    json.dump(summary, f)
  with open(layout.experiment_record(d), "w") as f:
    json.dump({"job": "instability", "training": {"model": {"name": "lenet_300_100"},
                                                  "dataset": {"name": "mnist"}}}, f)
  with open(layout.manifest(d), "w") as f:
    json.dump({"pairs": []}, f)
  with open(layout.operative_config(d), "w") as f:
    f.write("training.steps = '60it'  # <not a tag>\n")
  os.makedirs(layout.pair_dir(d, "standard-k0-pair0"))
  with open(layout.metrics(d, "standard-k0-pair0"), "w") as f:
    json.dump({}, f)
  return d


class _Links(html.parser.HTMLParser):

  def __init__(self):
    super().__init__()
    self.images, self.hrefs, self.tags = [], [], []

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    self.tags.append(tag)
    if tag == "img":
      self.images.append(attrs["src"])
    if tag == "a" and not attrs["href"].startswith("#"):
      self.hrefs.append(attrs["href"])


def _parse(text):
  parser = _Links()
  parser.feed(text)
  parser.close()
  return parser


def test_page_shows_every_figure_and_table(experiment):
  path = report_html.write_index(experiment)
  assert path == layout.report_index(experiment)
  text = open(path, encoding="utf-8").read()
  parsed = _parse(text)
  assert sorted(parsed.images) == ["figure3_instability.png", "pairs/standard-k0-pair0.png"]
  assert "<title>exp: instability, lenet_300_100 on mnist</title>" in text
  assert "Figure 3: instability" in text
  assert text.count("<table>") == 3  # the summary's, instability.md's, width.csv's
  assert "2.83 ± 0.10" in text
  assert ">standard</td>" in text and ">0.5</td>" in text
  assert "<em>mean</em>" in text and "<code>pp</code>" in text
  for section in ("summary", "tables", "figures", "config", "raw"):
    assert f'<section id="{section}">' in text
  order = [text.index(f'<section id="{s}">') for s in ("summary", "tables", "figures",
                                                       "config", "raw")]
  assert order == sorted(order)
  assert "<script" not in text and "http" not in text


def test_text_is_escaped(experiment):
  text = report_html.page(experiment)
  assert "&lt;LeNet&gt; &amp; co" in text
  assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>" not in text
  assert "&lt;3&gt;" in text
  assert "# &lt;not a tag&gt;" in text


def test_links_are_relative_and_exist(experiment):
  report_dir = layout.report_dir(experiment)
  parsed = _parse(report_html.page(experiment))
  targets = {urllib.parse.unquote(h) for h in parsed.hrefs + parsed.images}
  for target in targets:
    assert not os.path.isabs(target) and "://" not in target
    assert os.path.exists(os.path.join(report_dir, target)), target
  assert {"../summary.json", "../experiment.json", "../instability.json",
          "../pairs/standard-k0-pair0/metrics.json", "instability.csv",
          "width.csv"} <= targets
  assert "../imp.json" not in targets  # only files that exist


def test_new_figures_appear_without_code(experiment):
  _png(os.path.join(layout.report_dir(experiment), "figure99_new.png"))
  assert "figure99_new.png" in _parse(report_html.page(experiment)).images


def test_the_report_title_heads_the_page_and_the_directory_is_named_below(experiment):
  text = report_html.page(experiment, "ResNet-20 (standard) / CIFAR-10 & co")
  assert "<title>ResNet-20 (standard) / CIFAR-10 &amp; co</title>" in text
  assert "<h1>ResNet-20 (standard) / CIFAR-10 &amp; co</h1>" in text
  assert f'<p class="sub">{report_html.title(experiment)}. The report' in text


def test_missing_summary_and_record_still_render(tmp_path):
  d = str(tmp_path / "bare")
  _png(os.path.join(layout.report_dir(d), "barrier_vs_width.png"))
  text = report_html.page(d)
  assert "<title>bare</title>" in text and '<section id="summary">' not in text
  assert _parse(text).images == ["barrier_vs_width.png"]


def test_markdown_table_alignment_and_csv():
  out = html_text.markdown("| a | b |\n|:---|---:|\n| x | 1 |\n")
  assert "<td>x</td>" in out and '<td class="right">1</td>' in out
  assert "<th>a</th>" in html_text.csv_table("a\nx\n")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no headless chromium")
def test_renders_in_headless_chromium(experiment, tmp_path):
  index = report_html.write_index(experiment)
  shot = tmp_path / "shot.png"
  common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
  subprocess.run(common + [f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           "--window-size=1200,2000", f"file://{index}"],
                 check=True, capture_output=True, timeout=120)
  assert shot.exists() and shot.stat().st_size > 20_000  # a blank page is ~ 10 kB
  dom = subprocess.run(common + [f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom",
                                 f"file://{index}"],
                       check=True, capture_output=True, text=True, timeout=120).stdout
  assert dom.count("<img ") == 2 and "instability_mean" in dom
  shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_imp_pages_link_sub_experiments_both_ways(experiment):
  with open(layout.imp_record(experiment), "w") as f:
    json.dump({}, f)
  sub = layout.SubExperiment("imp", 3, 0, 0).directory(experiment)
  _png(os.path.join(layout.report_dir(sub), "figure2_interpolation.png"))
  with open(layout.manifest(sub), "w") as f:
    json.dump({"pairs": []}, f)
  report_html.write_index(experiment)
  top = _parse(open(layout.report_index(experiment), encoding="utf-8").read())
  assert "../instability/imp-level03-init0-k0/report/index.html" in top.hrefs
  text = open(layout.report_index(sub), encoding="utf-8").read()
  assert "<title>exp: instability, lenet_300_100 on mnist: imp-level03-init0-k0</title>" in text
  up = "../../../report/index.html"
  assert up in _parse(text).hrefs
  assert os.path.exists(os.path.join(layout.report_dir(sub), up))
