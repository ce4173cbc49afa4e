"""The report's Markdown and CSV tables as HTML fragments, every piece of text escaped.

Only what the report's own .md files use: headings, paragraphs, `- ` lists, pipe tables (with
their column alignment) and inline `code`, **strong** and *emphasis*. No Markdown library:
the page must open offline, and the report's .md files are simple.
"""

import csv
import html
import io
import re

_INLINE = ((re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
           (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
           (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"))
_NUMBER = re.compile(r"^[-+−]?\d[\d.,]*(?:e[-+]?\d+)?%?(?:\s*±\s*[\d.]+)?(?:\s*\(n = \d+\))?$")
_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def inline(text):
  """`text` escaped, with Markdown's inline code, strong and emphasis as tags."""
  out = html.escape(text, quote=False)
  for pattern, replacement in _INLINE:
    out = pattern.sub(replacement, out)
  return out


def _cells(line):
  line = line.strip()
  if line.startswith("|"):
    line = line[1:]
  if line.endswith("|"):
    line = line[:-1]
  return [cell.strip() for cell in line.split("|")]


def _alignments(separator):
  aligns = []
  for cell in _cells(separator):
    if cell.startswith(":") and cell.endswith(":"):
      aligns.append("center")
    elif cell.endswith(":"):
      aligns.append("right")
    else:
      aligns.append(None)
  return aligns


def table(header, rows, aligns=None, cell=html.escape):
  """An HTML table; a column without an alignment is right-aligned if all its cells are
  numbers. `cell` turns a cell's text into HTML."""
  width = len(header)
  rows = [list(r) + [""] * (width - len(r)) for r in rows]
  aligns = list(aligns or []) + [None] * width
  for c in range(width):
    if aligns[c] is None and rows and all(_NUMBER.match(r[c]) or not r[c] for r in rows):
      aligns[c] = "right"

  def attr(c):
    return f' class="{aligns[c]}"' if aligns[c] in ("right", "center") else ""

  head = "".join(f"<th{attr(c)}>{cell(h)}</th>" for c, h in enumerate(header))
  body = "\n".join("<tr>" + "".join(f"<td{attr(c)}>{cell(v)}</td>"
                                    for c, v in enumerate(r[:width])) + "</tr>"
                   for r in rows)
  return (f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
          f"<tbody>\n{body}\n</tbody>\n</table></div>")


def csv_table(text):
  """A CSV file (header row first) as an HTML table."""
  rows = [r for r in csv.reader(io.StringIO(text)) if r]
  if not rows:
    return "<p><em>(empty)</em></p>"
  return table(rows[0], rows[1:])


def markdown(text, heading_offset=2):
  """A report .md file as HTML; '# x' becomes <h{1 + heading_offset}>, so the page's own
  headings stay above the file's."""
  out, paragraph, items = [], [], []
  lines = text.splitlines()

  def flush():
    if paragraph:
      out.append("<p>" + inline(" ".join(paragraph)) + "</p>")
      paragraph.clear()
    if items:
      out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
      items.clear()

  i = 0
  while i < len(lines):
    line = lines[i].rstrip()
    heading = re.match(r"^(#{1,6})\s+(.*)$", line)
    if heading:
      flush()
      level = min(6, len(heading.group(1)) + heading_offset)
      out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
    elif (line.lstrip().startswith("|") and i + 1 < len(lines)
          and _SEPARATOR.match(lines[i + 1].strip())):
      flush()
      header, aligns, rows = _cells(line), _alignments(lines[i + 1]), []
      i += 2
      while i < len(lines) and lines[i].strip().startswith("|"):
        rows.append(_cells(lines[i]))
        i += 1
      out.append(table(header, rows, aligns, cell=inline))
      continue
    elif re.match(r"^\s*[-*]\s+", line):
      if paragraph:
        flush()
      items.append(re.sub(r"^\s*[-*]\s+", "", line))
    elif not line.strip():
      flush()
    elif items and line.startswith("  "):
      items[-1] += " " + line.strip()
    else:
      if items:
        flush()
      paragraph.append(line.strip())
    i += 1
  flush()
  return "\n".join(out)
