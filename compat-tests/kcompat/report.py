"""The client-by-scenario matrix: collected from test reports, printed, and written as Markdown and HTML.

Registered by conftest.py in the controlling pytest process only. Every test item carries its client,
scenario label and the scenario's collection order in ``user_properties``, which pytest-xdist ships
back with each report, so this works the same with ``-n 2`` (the controller sees every worker's
reports through ``pytest_runtest_logreport``) as without.

A cell is the worst of a test's phases: a failure in setup, call or teardown is "fail"; a skip is
"skip" with its reason; otherwise "pass".
"""

from __future__ import annotations

import datetime
import html
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

PASS, FAIL, SKIP = "pass", "fail", "skip"
SYMBOL = {PASS: "pass", FAIL: "**FAIL**", SKIP: "skip"}


@dataclass
class Cell:
    outcome: str
    detail: str = ""
    nodeid: str = ""


@dataclass
class Matrix:
    clients: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    order: dict[str, float] = field(default_factory=dict)
    target: str = ""
    stable_target: str = ""  # without the kbroker commit, for the committed Markdown
    advertised: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def scenarios(self) -> list[str]:
        return sorted(self.order, key=lambda s: self.order[s])

    def counts(self, client: str | None = None) -> dict[str, int]:
        out = {PASS: 0, FAIL: 0, SKIP: 0}
        for (c, _), cell in self.cells.items():
            if client is None or c == client:
                out[cell.outcome] += 1
        return out

    def reasons(self) -> list[str]:
        """Distinct skip reasons in the order they first appear in the matrix, for footnotes."""
        seen: list[str] = []
        for s in self.scenarios():
            for c in self.clients:
                cell = self.cells.get((c, s))
                if cell and cell.outcome == SKIP and cell.detail not in seen:
                    seen.append(cell.detail)
        return seen


def _skip_reason(report) -> str:
    lr = report.longrepr
    if isinstance(lr, (tuple, list)) and len(lr) == 3:
        text = str(lr[2])
    else:
        text = str(lr)
    return re.sub(r"^Skipped: ", "", text).strip()


def _failure(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1:]
    text = text if isinstance(text, str) else " ".join(text)
    where = "" if report.when == "call" else f"(in {report.when}) "
    return where + " ".join(text.split())[:600]


class ReportPlugin:
    def __init__(self, config, clients: list[str], out_dir: Path | None, target_label: str, basename: str,
                 stable_target_label: str = ""):
        self.config = config
        self.matrix = Matrix(clients, target=target_label, stable_target=stable_target_label or target_label)
        self.out_dir = out_dir
        self.basename = basename
        self.written: list[Path] = []

    # -- collecting ---------------------------------------------------------------

    def pytest_runtest_logreport(self, report):
        props = dict(report.user_properties)
        client, scenario = props.get("compat_client"), props.get("compat_scenario")
        if client is None or scenario is None:
            return
        self.matrix.order.setdefault(scenario, float(props.get("compat_order", 1e9)))
        if props.get("compat_advertised"):
            self.matrix.advertised = props["compat_advertised"]
        key = (client, scenario)
        cell = self.matrix.cells.get(key)
        if report.failed:
            if cell is None or cell.outcome != FAIL:
                self.matrix.cells[key] = Cell(FAIL, _failure(report), report.nodeid)
        elif report.skipped:
            if cell is None:
                self.matrix.cells[key] = Cell(SKIP, _skip_reason(report), report.nodeid)
        elif report.when == "call" and cell is None:
            self.matrix.cells[key] = Cell(PASS, "", report.nodeid)

    # -- writing ------------------------------------------------------------------

    def pytest_sessionfinish(self, session):
        if not self.matrix.cells:
            return
        from .clients import CLIENTS

        for name in self.matrix.clients:
            cls = CLIENTS[name]
            try:
                missing = cls.missing()
                self.matrix.versions[name] = f"not available: {missing}" if missing else cls.version()
            except Exception as e:  # a version string must not break the report
                self.matrix.versions[name] = f"? ({e})"
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        md = self.out_dir / f"{self.basename}.md"
        md.write_text(to_markdown(self.matrix))
        page = self.out_dir / f"{self.basename}.html"
        page.write_text(to_html(self.matrix))
        data = self.out_dir / f"{self.basename}.json"  # for the side-by-side report (git-ignored)
        data.write_text(json.dumps(to_data(self.matrix), indent=1))
        self.written = [md, page, data]

    def pytest_terminal_summary(self, terminalreporter):
        if not self.matrix.cells:
            return
        tr = terminalreporter
        tr.section("kbroker compatibility matrix")
        for line in to_text(self.matrix).splitlines():
            tr.write_line(line)
        for path in self.written:
            tr.write_line(f"written: {path}")


# -- renderings ---------------------------------------------------------------------


def to_text(m: Matrix) -> str:
    reasons = m.reasons()
    width = max([len(s) for s in m.scenarios()] + [8])
    cols = [max(len(c), 9) for c in m.clients]
    lines = [f"target: {m.target}", "",
             " " * width + "  " + "  ".join(c.ljust(w) for c, w in zip(m.clients, cols, strict=True))]
    for s in m.scenarios():
        row = []
        for c, w in zip(m.clients, cols, strict=True):
            cell = m.cells.get((c, s))
            if cell is None:
                text = "-"
            elif cell.outcome == SKIP:
                text = f"skip[{reasons.index(cell.detail) + 1}]"
            else:
                text = cell.outcome.upper() if cell.outcome == FAIL else cell.outcome
            row.append(text.ljust(w))
        lines.append(s.ljust(width) + "  " + "  ".join(row))
    total = m.counts()
    lines += ["", f"{total[PASS]} pass, {total[FAIL]} fail, {total[SKIP]} skip"]
    if reasons:
        lines.append("skip reasons:")
        lines += [f"  [{i}] {r}" for i, r in enumerate(reasons, 1)]
    fails = [(c, s, cell) for (c, s), cell in m.cells.items() if cell.outcome == FAIL]
    if fails:
        lines.append("failures:")
        lines += [f"  {c} / {s}: {cell.detail[:300]}" for c, s, cell in sorted(fails, key=lambda x: m.order[x[1]])]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(m: Matrix) -> str:
    # No date and no kbroker commit: the file is committed and `make test` rewrites it, so it should
    # change only when the results do (the HTML, which git ignores, carries both).
    reasons = m.reasons()
    out = ["# Client compatibility matrix", "",
           "Generated by `compat-tests/` (`python -m pytest compat-tests`); see compat-tests/README.md.", "",
           f"- Target: {m.stable_target or m.target}"]
    if m.advertised:
        out.append(f"- Advertised (ApiVersions): {m.advertised}")
    total = m.counts()
    out += [f"- Cells: {total[PASS]} pass, {total[FAIL]} fail, {total[SKIP]} skip", "", "## Clients", "",
            "| Client | Version | pass | fail | skip |", "|---|---|---|---|---|"]
    for c in m.clients:
        n = m.counts(c)
        out.append(f"| {c} | {_md_escape(m.versions.get(c, '?'))} | {n[PASS]} | {n[FAIL]} | {n[SKIP]} |")
    out += ["", "## Matrix", "", "| Scenario | " + " | ".join(m.clients) + " |",
            "|---|" + "---|" * len(m.clients)]
    for s in m.scenarios():
        row = []
        for c in m.clients:
            cell = m.cells.get((c, s))
            if cell is None:
                row.append("-")
            elif cell.outcome == SKIP:
                row.append(f"skip [{reasons.index(cell.detail) + 1}]")
            else:
                row.append(SYMBOL[cell.outcome])
        out.append(f"| {_md_escape(s)} | " + " | ".join(row) + " |")
    if reasons:
        out += ["", "## Skip reasons", ""]
        out += [f"{i}. {_md_escape(r)}" for i, r in enumerate(reasons, 1)]
    fails = sorted(((c, s, cell) for (c, s), cell in m.cells.items() if cell.outcome == FAIL),
                   key=lambda x: (m.order[x[1]], m.clients.index(x[0])))
    if fails:
        out += ["", "## Failures", ""]
        out += [f"- **{c}** / {_md_escape(s)}: `{_md_escape(cell.detail)[:500]}`" for c, s, cell in fails]
    return "\n".join(out) + "\n"


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.pass { background: #d9f2d9; } td.fail { background: #f8d0d0; font-weight: bold; }
td.skip { background: #eeeeee; color: #555; } td.none { color: #999; }
ol li, ul li { margin: 2px 0; } code { font-size: 12px; }
"""


def to_html(m: Matrix) -> str:
    e = html.escape
    reasons = m.reasons()
    total = m.counts()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>kbroker compatibility</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>Client compatibility matrix</h1>",
             f"<p>Target: {e(m.target)}<br>Generated: {e(when)}<br>"
             f"Cells: {total[PASS]} pass, {total[FAIL]} fail, {total[SKIP]} skip</p>"]
    if m.advertised:
        parts.append(f"<p>Advertised (ApiVersions): {e(m.advertised)}</p>")
    parts.append("<h2>Clients</h2><table><tr><th>Client</th><th>Version</th><th>pass</th><th>fail</th>"
                 "<th>skip</th></tr>")
    for c in m.clients:
        n = m.counts(c)
        parts.append(f"<tr><td>{e(c)}</td><td>{e(m.versions.get(c, '?'))}</td><td>{n[PASS]}</td>"
                     f"<td>{n[FAIL]}</td><td>{n[SKIP]}</td></tr>")
    parts.append("</table><h2>Matrix</h2><table><tr><th>Scenario</th>"
                 + "".join(f"<th>{e(c)}</th>" for c in m.clients) + "</tr>")
    for s in m.scenarios():
        parts.append(f"<tr><th>{e(s)}</th>")
        for c in m.clients:
            cell = m.cells.get((c, s))
            if cell is None:
                parts.append("<td class='none'>-</td>")
            elif cell.outcome == SKIP:
                i = reasons.index(cell.detail) + 1
                parts.append(f"<td class='skip' title='{e(cell.detail)}'>skip <a href='#r{i}'>[{i}]</a></td>")
            elif cell.outcome == FAIL:
                parts.append(f"<td class='fail' title='{e(cell.detail)}'>FAIL</td>")
            else:
                parts.append("<td class='pass'>pass</td>")
        parts.append("</tr>")
    parts.append("</table>")
    if reasons:
        parts.append("<h2>Skip reasons</h2><ol>")
        parts += [f"<li id='r{i}'>{e(r)}</li>" for i, r in enumerate(reasons, 1)]
        parts.append("</ol>")
    fails = sorted(((c, s, cell) for (c, s), cell in m.cells.items() if cell.outcome == FAIL),
                   key=lambda x: (m.order[x[1]], m.clients.index(x[0])))
    if fails:
        parts.append("<h2>Failures</h2><ul>")
        parts += [f"<li><b>{e(c)}</b> / {e(s)}: <code>{e(cell.detail)}</code><br><small>{e(cell.nodeid)}</small></li>"
                  for c, s, cell in fails]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# -- kbroker and Apache Kafka side by side ----------------------------------------------------------------

def to_data(m: Matrix) -> dict:
    return {"target": m.stable_target or m.target, "clients": m.clients, "order": m.order,
            "versions": m.versions,
            "cells": [{"client": c, "scenario": s, "outcome": cell.outcome, "detail": cell.detail}
                      for (c, s), cell in m.cells.items()]}


def from_data(d: dict) -> Matrix:
    m = Matrix(d["clients"], target=d["target"], stable_target=d["target"], versions=d.get("versions", {}))
    m.order = d["order"]
    for cell in d["cells"]:
        m.cells[(cell["client"], cell["scenario"])] = Cell(cell["outcome"], cell["detail"])
    return m


def side_by_side(ours: Matrix, kafka: Matrix) -> tuple[str, str]:
    """Markdown and HTML: one row per scenario, one column per client, each cell 'kbroker / Kafka'."""
    clients = [c for c in ours.clients if c in kafka.clients] or ours.clients
    scenarios = sorted(set(ours.order) | set(kafka.order), key=lambda s: ours.order.get(s, kafka.order.get(s, 1e9)))

    def word(m: Matrix, c: str, s: str) -> str:
        cell = m.cells.get((c, s))
        return "-" if cell is None else cell.outcome

    differing = [(s, c) for s in scenarios for c in clients if word(ours, c, s) != word(kafka, c, s)]
    md = ["# kbroker and Apache Kafka, side by side", "",
          "Generated by `make compat REAL_KAFKA=1`: the same scenarios, the same clients, against each broker.",
          "Each cell is `kbroker / Kafka`; **bold** where they differ.", "",
          f"- kbroker: {ours.stable_target}", f"- Kafka: {kafka.stable_target}",
          f"- kbroker cells: {_counts(ours)}; Kafka cells: {_counts(kafka)}; {len(differing)} cells differ", "",
          "| Scenario | " + " | ".join(clients) + " |", "|---|" + "---|" * len(clients)]
    for s in scenarios:
        row = []
        for c in clients:
            a, b = word(ours, c, s), word(kafka, c, s)
            row.append(f"**{a} / {b}**" if a != b else f"{a} / {b}")
        md.append(f"| {_md_escape(s)} | " + " | ".join(row) + " |")
    if differing:
        md += ["", "## Where they differ", ""]
        for s, c in differing:
            for name, m in (("kbroker", ours), ("Kafka", kafka)):
                cell = m.cells.get((c, s))
                if cell and cell.detail:
                    md.append(f"- {_md_escape(s)} / {c} / {name}: {cell.outcome}: `{_md_escape(cell.detail)[:300]}`")
    e = html.escape
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>kbroker and Kafka</title>"
            f"<style>{_CSS} td.diff {{ outline: 2px solid #c00; }}</style></head><body>",
            "<h1>kbroker and Apache Kafka, side by side</h1>",
            f"<p>kbroker: {e(ours.target)}<br>Kafka: {e(kafka.target)}<br>{len(differing)} cells differ</p>",
            "<table><tr><th rowspan='2'>Scenario</th>" + "".join(f"<th colspan='2'>{e(c)}</th>" for c in clients)
            + "</tr><tr>" + "<th>kbroker</th><th>Kafka</th>" * len(clients) + "</tr>"]
    for s in scenarios:
        page.append(f"<tr><th>{e(s)}</th>")
        for c in clients:
            for m in (ours, kafka):
                cell = m.cells.get((c, s))
                w = word(m, c, s)
                cls = (w if w != "-" else "none") + (" diff" if word(ours, c, s) != word(kafka, c, s) else "")
                title = e(cell.detail) if cell and cell.detail else ""
                page.append(f"<td class='{cls}' title='{title}'>{e(w)}</td>")
        page.append("</tr>")
    page.append("</table></body></html>\n")
    return "\n".join(md) + "\n", "\n".join(page)


def _counts(m: Matrix) -> str:
    n = m.counts()
    return f"{n[PASS]} pass, {n[FAIL]} fail, {n[SKIP]} skip"


def write_side_by_side(report_dir: Path) -> list[Path]:
    missing = [n for n in ("compat.json", "compat-kafka.json") if not (report_dir / n).exists()]
    if missing:
        print(f"side-by-side report not written: {', '.join(missing)} missing in {report_dir} "
              "(run make compat and make compat-kafka)")
        return []
    ours = from_data(json.loads((report_dir / "compat.json").read_text()))
    kafka = from_data(json.loads((report_dir / "compat-kafka.json").read_text()))
    md, page = side_by_side(ours, kafka)
    out = [report_dir / "compat-side-by-side.md", report_dir / "compat-side-by-side.html"]
    out[0].write_text(md)
    out[1].write_text(page)
    return out


if __name__ == "__main__":  # python compat-tests/kcompat/report.py --side-by-side compat-tests/report
    if len(sys.argv) != 3 or sys.argv[1] != "--side-by-side":
        raise SystemExit("usage: report.py --side-by-side REPORT_DIR")
    for path in write_side_by_side(Path(sys.argv[2])):
        print(f"written: {path}")
