"""Render report blocks (see `codetune.reporting.report.build_report`) as Markdown and as one HTML file.

The HTML is self-contained: inline CSS, images as base64 data URIs, no scripts, no external URLs.
Every piece of text (generated code included) is escaped.
"""

from __future__ import annotations

import html
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f5}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #eee}
details{border:1px solid #ddd;border-radius:4px;margin:.25rem 0;padding:.2rem .5rem}
summary{cursor:pointer;font-family:ui-monospace,Menlo,monospace;font-size:.85rem}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;font-size:.8rem;white-space:pre}
.valid{color:#1a7f37}.invalid{color:#cf222e}.unavailable{color:#9a6700}
"""

_GEN_FIELDS = (
    "syntax_status",
    "bleu",
    "codebleu",
    "trivial",
    "exec_status",
    "stop",
    "gen_cyclomatic",
    "ref_cyclomatic",
)


def _cell_md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _gen_fields(rec: dict) -> list[str]:
    return [f"{k}={rec[k]}" for k in _GEN_FIELDS if rec.get(k) is not None]


def render_markdown(blocks: list[tuple]) -> str:
    """Markdown: headings, paragraphs, pipe tables; images are links to their files beside the report
    (("img", alt, b64, file)) or point to report.html, which embeds every one."""
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(_cell_md(h) for h in header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(_cell_md(c) for c in row) + " |" for row in rows]
        elif kind == "img":
            # A figure written beside the report is linked; the others live only in report.html.
            if len(block) > 3:
                out.append(f"![{block[1]}]({block[3]})")
            else:
                out.append(f"_Figure: {block[1]} (embedded in report.html)._")
        elif kind == "gens":
            run = block[1]
            out.append(f"**{run.dirname}** ({run.label}): {len(run.records)} items")
            out.append("")
            out.append("| id | status | BLEU | CodeBLEU | stub |")
            out.append("|---|---|---|---|---|")
            for rec in run.records:
                out.append(
                    f"| {_cell_md(rec.get('id'))} | {rec.get('syntax_status')}"
                    f"{'/' + rec['exec_status'] if rec.get('exec_status') else ''} | {rec.get('bleu')} | "
                    f"{rec.get('codebleu')} | {rec.get('trivial')} |"
                )
        out.append("")
    return "\n".join(out)


def render_html(blocks: list[tuple], title: str) -> str:
    """One HTML page with inline CSS and base64 images."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{e(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(block[1])}</p>")
        elif kind == "table":
            header, rows = block[1], block[2]
            parts.append(
                "<table><thead><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr></thead><tbody>"
            )
            parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</tbody></table>")
        elif kind == "img":
            parts.append(
                f'<figure><img alt="{e(block[1])}" src="data:image/png;base64,{block[2]}">'
                f"<figcaption>{e(block[1])}</figcaption></figure>"
            )
        elif kind == "gens":
            parts.append(_gens_html(block[1]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _gens_html(run) -> str:
    e = html.escape
    out = [f'<h3>{e(run.dirname)} ({e(run.label)}): {len(run.records)} items</h3><div class="gens">']
    for rec in run.records:
        status = str(rec.get("syntax_status", ""))
        summary = f"#{rec.get('index')} {rec.get('id')} — " + ", ".join(_gen_fields(rec))
        msg = rec.get("syntax_message")
        out.append(
            f'<details class="sample"><summary class="{e(status)}">{e(summary)}</summary>'
            f"<p>Prompt</p><pre>{e(str(rec.get('prompt', '')))}</pre>"
            f"<p>Reference</p><pre>{e(str(rec.get('reference', '')))}</pre>"
            f"<p>Completion</p><pre>{e(str(rec.get('completion', '')))}</pre>"
            + (f"<p>Syntax message: {e(str(msg))}</p>" if msg else "")
            + "</details>"
        )
    out.append("</div>")
    return "\n".join(out)
