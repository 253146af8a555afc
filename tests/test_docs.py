"""The pages a newcomer reads (README.md, docs/*.md, BENCHMARKS.md) point only at things that exist.

- every relative Markdown link (and image) resolves to a file or directory next to the page, and a
  ``#anchor`` matches a heading of the target page (GitHub's heading slugs);
- every ``make <target>`` in a code span or code block is a target of the Makefile;
- every dotted params path in a code span or code block (``kd.T``, ``-S kd.alpha=0.9``,
  ``GRID="kd.T=1,2"``, ``data.transfer.augment``) exists in the schema of ``distillery/params.py``.

Fast and offline: it reads files and the params schema, nothing else.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from distillery.errors import DistilleryError
from distillery.params import param_field

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]

# The top-level blocks of params.yaml: a dotted token starting with one of these names a param.
BLOCKS = ("cpu_threads", "compute", "data", "teacher", "teachers", "student", "train", "kd", "evaluate", "tune",
          "diff", "preset")
# A token whose last part is one of these is a file name (train.csv, kd.py), not a param.
FILE_SUFFIXES = {"py", "md", "yaml", "yml", "json", "jsonl", "csv", "tsv", "parquet", "gz", "npz", "npy", "png",
                 "txt", "db", "lock", "toml", "cfg", "ini", "sh", "safetensors", "bin", "arrow"}
PLACEHOLDER = re.compile(r"[<>*…]|\.\.\.")


# ---------------------------------------------------------------------------------------------- parsing

@dataclass
class Code:
    """A piece of code on a page: a fenced block (``lang`` its info string) or an inline span (``lang`` None)."""

    line: int
    text: str
    lang: str | None


def split_page(text: str) -> tuple[str, list[Code]]:
    """The page's prose (fenced blocks and code spans blanked, line numbers kept) and its code."""
    prose, code = unfence(text)

    def blank(match: re.Match) -> str:
        code.append(Code(prose.count("\n", 0, match.start()) + 1, match.group(2), None))
        return re.sub(r"[^\n]", " ", match.group(0))

    prose = re.sub(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", blank, prose, flags=re.S)
    return prose, code


def unfence(text: str) -> tuple[str, list[Code]]:
    """The page with its fenced code blocks blanked (line numbers kept), and those blocks."""
    prose_lines, code, fence = [], [], None
    for number, line in enumerate(text.split("\n"), start=1):
        opening = re.match(r" {0,3}(`{3,}|~{3,})\s*([^\s`]*)", line)
        if fence is None and opening:
            fence, lang, start, body = opening.group(1), opening.group(2).lower(), number + 1, []
            prose_lines.append("")
        elif fence is not None:
            if re.fullmatch(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*", line):
                code.append(Code(start, "\n".join(body), lang))
                fence = None
            else:
                body.append(line)
            prose_lines.append("")
        else:
            prose_lines.append(line)
    return "\n".join(prose_lines), code


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown page; repeated headings get -1, -2, ... as on GitHub."""
    prose, _ = unfence(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for match in re.finditer(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", prose, flags=re.M):
        slug = github_slug(match.group(1))
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)


def link_problems(page: Path) -> list[str]:
    """Relative links (and images) of ``page`` that point at nothing, or at a heading the target lacks."""
    prose, _ = split_page(page.read_text(encoding="utf-8"))
    problems = []
    for match in [*LINK.finditer(prose), *REFERENCE.finditer(prose)]:
        target, line = match.group(1), prose.count("\n", 0, match.start()) + 1
        if not target or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target):  # http:, https:, mailto:, ...
            continue
        file_part, _, anchor = unquote(target).partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        where = f"{_name(page)}:{line}: link ({target})"
        if not resolved.exists():
            problems.append(f"{where}: {file_part} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: {_name(resolved)} has no heading with the anchor #{anchor}")
    return problems


def makefile_targets(makefile: Path = REPO / "Makefile") -> set[str]:
    targets = set()
    for match in re.finditer(r"^([^\s#:=$][^:=#]*?)\s*:(?![=:])", makefile.read_text(), flags=re.M):
        targets.update(match.group(1).split())
    return targets


def make_targets_named(code: Code) -> list[tuple[int, str]]:
    """The ``make`` targets a piece of code runs: the first word after ``make`` that is not a VAR=value."""
    found = []
    for offset, line in enumerate(code.text.split("\n")):
        for command in re.split(r"&&|\|\||[;|(]", re.sub(r"(^|\s)#.*", "", line)):
            words = command.split()
            for i, word in enumerate(words):
                if word == "make" and (i == 0 or words[i - 1] in ("time", "sudo", "$")):
                    rest = [w for w in words[i + 1:] if "=" not in w and not w.startswith(("-", "["))]
                    if rest:
                        found.append((code.line + offset, rest[0]))
                    break
    return found


def make_problems(page: Path, targets: set[str] | None = None) -> list[str]:
    targets = makefile_targets() if targets is None else targets
    _, code = split_page(page.read_text(encoding="utf-8"))
    return [f"{_name(page)}:{line}: `make {target}`: the Makefile has no target {target!r}"
            for piece in code for line, target in make_targets_named(piece) if target not in targets]


PARAM = re.compile(rf"(?<![\w./:@-])((?:{'|'.join(BLOCKS)})(?:\.(?:[\w<>*…]+|\.\.))+)")


def params_named(code: Code) -> list[tuple[int, str]]:
    """Dotted params paths in a piece of code (Python code is skipped: its dots are attributes)."""
    if code.lang in ("python", "py", "pycon"):
        return []
    found = []
    for match in PARAM.finditer(code.text):
        token = match.group(1).rstrip(".")
        if PLACEHOLDER.search(token.split(".", 2)[-1] if token.startswith("teachers.") else token):
            continue
        if token.rsplit(".", 1)[-1].lower() in FILE_SUFFIXES:
            continue
        found.append((code.line + code.text.count("\n", 0, match.start()), token))
    return found


def _metric_paths() -> set[str]:
    """The dotted keys of the committed reports/metrics.json (`tune.metric` names one, e.g. kd.validation_accuracy)."""
    def walk(node, prefix):
        for key, value in node.items():
            yield f"{prefix}{key}"
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")

    path = REPO / "reports" / "metrics.json"
    return set(walk(json.loads(path.read_text()), "")) if path.exists() else set()


METRICS = _metric_paths()


def param_problems(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    _, code = split_page(text)
    problems = []
    for piece in code:
        for line, token in params_named(piece):
            path = token
            if token.startswith("teachers."):  # teachers.<name>.X overrides teacher.X
                parts = token.split(".")
                if len(parts) <= 2:
                    continue
                path = ".".join(["teacher", *parts[2:]])
            try:
                param_field(path, f"{_name(page)}:{line}")
            except DistilleryError as exc:
                if "is a param group" in str(exc) or token in METRICS:
                    continue
                if re.search(re.escape(token) + r"['`]?[:;]?\s*did you mean", text):
                    continue  # the page shows the error message for this very typo
                problems.append(f"{_name(page)}:{line}: param `{token}`: {exc}")
    return problems


def _name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return path.name


# ---------------------------------------------------------------------------------------------- the repo's pages

def _ids(pages):
    return [_name(p) for p in pages]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_relative_links_resolve(page):
    problems = link_problems(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_make_targets_exist(page):
    problems = make_problems(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_params_named_exist_in_the_schema(page):
    problems = param_problems(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_no_path_of_one_machine(page):
    text = page.read_text(encoding="utf-8")
    found = re.findall(r"(?<![\w.~-])/(?:work|tmp|home|Users|root|mnt)/\S*", text)
    assert not found, f"{_name(page)} names paths of one machine: {found}"


def test_readme_is_short_and_maps_every_page():
    readme = REPO / "README.md"
    assert len(readme.read_text().splitlines()) <= 200
    prose, _ = split_page(readme.read_text())
    linked = {(REPO / unquote(m.group(1)).partition("#")[0]).resolve() for m in LINK.finditer(prose)}
    missing = [_name(p) for p in sorted((REPO / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md's map of the docs does not link {missing}"


def test_the_checks_see_the_docs():
    """The extraction finds what the pages name, so the checks above cannot pass on nothing."""
    code = [piece for page in PAGES for piece in split_page(page.read_text())[1]]
    params = {token for piece in code for _, token in params_named(piece)}
    targets = {target for piece in code for _, target in make_targets_named(piece)}
    assert {"kd.T", "kd.alpha", "data.transfer.augment", "compute.processes", "teacher.logits_top_k",
            "diff.tolerance"} <= params
    assert {"repro", "test", "sweep", "tune", "diff", "preset", "pull", "push"} <= targets
    assert {"repro", "test", "test-fast", "sweep", "bench"} <= makefile_targets()


# ---------------------------------------------------------------------------------------------- the checker itself

BAD_PAGE = """# A page

## Real heading (`kd.T`)

See [the other page](other.md), [its heading](other.md#real-heading), [this one](#real-heading-kdt),
[nothing](missing.md), [no heading](other.md#no-such-heading) and ![a plot](plots/none.png).
[a site](https://example.com) and [mail](mailto:someone@example.com) are not files.

```
make repro
make frobnicate GRID="kd.T=1,2"
dvc exp run -S kd.temprature=2 -S ++kd.dkd.beta=4
```

`make sweep GRID="kd.alfa=0.5"`, `data.transfer` (a group), `teachers.wide.model.hidden_sizes`,
`teachers.wide.modle.x`, `kd.<method>.*`, `train.csv`, `stages/teacher.py`, `data/prepared`, `kd.T=...`.

```python
METHOD = Method(name="kd.nonsense")  # Python: dots are attributes, not params
```
"""


@pytest.fixture
def bad_page(tmp_path):
    (tmp_path / "other.md").write_text("# Real heading\n\ntext\n")
    page = tmp_path / "page.md"
    page.write_text(BAD_PAGE)
    return page


def test_a_broken_link_is_reported(bad_page):
    problems = link_problems(bad_page)
    assert len(problems) == 3, problems
    assert any("missing.md does not exist" in p for p in problems)
    assert any("#no-such-heading" in p and "other.md" in p for p in problems)
    assert any("plots/none.png does not exist" in p for p in problems)
    assert all(p.startswith("page.md:") for p in problems)


def test_an_unknown_make_target_is_reported(bad_page):
    problems = make_problems(bad_page)
    assert len(problems) == 1 and "frobnicate" in problems[0] and problems[0].startswith("page.md:11:"), problems


def test_an_unknown_param_is_reported(bad_page):
    problems = param_problems(bad_page)
    assert len(problems) == 3, problems
    assert any(p.startswith("page.md:12:") and "`kd.temprature`" in p for p in problems)
    assert any("`kd.alfa`" in p and "did you mean 'kd.alpha'" in p for p in problems)
    assert any("`teachers.wide.modle.x`" in p for p in problems)


def test_param_extraction():
    def tokens(text, lang=None):
        return [token for _, token in params_named(Code(1, text, lang))]

    assert tokens('make sweep GRID="kd.T=1,2 kd.alpha=0.5,0.9; kd.alpha=0"') == ["kd.T", "kd.alpha", "kd.alpha"]
    assert tokens("dvc exp run -S ++kd.dkd.beta=4 -S data.source=npz:../shared/data/mnist.npz") == \
        ["kd.dkd.beta", "data.source"]
    assert tokens("distillery.training.teacher.load_teacher_and_tokenizer train.csv data/prepared kd.py") == []
    assert tokens("kd.<method>.* student.model.* teachers.<name> tune.space.<param>") == []
    assert tokens("teachers.<name>.train.batch_size") == ["teachers.<name>.train.batch_size"]
    assert tokens("extra_teacher@wide kd-T-alpha kd_int8 accuracy.kd") == []
    assert tokens("x = kd.T", "python") == []


def test_github_slugs():
    assert github_slug("Results on the default (digits, 5 seeds)") == "results-on-the-default-digits-5-seeds"
    assert github_slug("Several processes or GPUs for one run (`compute.processes`)") == \
        "several-processes-or-gpus-for-one-run-computeprocesses"
    assert github_slug("The `Trainer` against a plain PyTorch loop — `python bench/trainer_overhead.py`") == \
        "the-trainer-against-a-plain-pytorch-loop--python-benchtrainer_overheadpy"
    assert github_slug("See [the layout](docs/layout.md)") == "see-the-layout"


def test_the_preset_table_lists_every_preset_and_only_presets():
    """docs/params.md's table of presets (its first column: the names in code spans) and presets/*.yaml agree: two
    presets had been added without a row."""
    text = (REPO / "docs/params.md").read_text(encoding="utf-8")
    table = text[text.index("| preset | teacher → student |"):].split("\n\n")[0]
    named = {name for row in table.splitlines()[2:] for name in re.findall(r"`([\w-]+)`", row.split("|")[1])}
    assert named == {path.stem for path in (REPO / "presets").glob("*.yaml")}


def test_the_readme_results_are_the_committed_metrics():
    """README.md's results table and the figures beside it are reports/metrics.json's: a change that moves the
    committed results and leaves the README's figures as they were fails here."""
    metrics = json.loads((REPO / "reports/metrics.json").read_text())
    section = (REPO / "README.md").read_text().split("## Results on the default")[1].split("\n## ")[0]
    prose = " ".join(section.split())  # the prose's line breaks as spaces

    def students(kind: str, key: str) -> str:
        block = metrics[kind]
        return f"{block[key]:.4f} ± {block[f'{key}_std']:.4f}"

    rows = {"test accuracy": "accuracy", "macro-F1": "macro_f1", "NLL": "nll", "ECE (15 bins)": "ece",
            "agreement with the teacher": "agreement"}
    for label, key in rows.items():
        teacher = "—" if key == "agreement" else f"{metrics['teacher'][key]:.4f}"
        row = f"| {label} | {teacher} | {students('kd', key)} | {students('hard', key)} |"
        assert row in section, f"README.md's results table lacks the committed row {row}"
    sizes = " | ".join(f"{metrics[kind]['params']:,}" for kind in ("teacher", "kd", "hard"))
    assert f"| parameters | {sizes} |" in section
    comparison = metrics["comparison"]
    figures = [f"+{100 * comparison['kd_minus_hard_accuracy']:.2f} points",
               f"+{100 * comparison['kd_minus_hard_ci_low']:.2f} to +{100 * comparison['kd_minus_hard_ci_high']:.2f} "
               "points",
               f"McNemar p < 0.05 on {comparison['mcnemar_significant_seeds']} of the {metrics['kd']['seeds']} seeds",
               f"({metrics['kd']['validation_accuracy']:.4f} vs {metrics['hard']['validation_accuracy']:.4f}",
               f"the teacher {metrics['teacher']['validation_accuracy']:.4f}",
               f"on test the teacher ({metrics['teacher']['accuracy']:.4f})"]
    missing = [figure for figure in figures if figure not in prose]
    assert not missing, f"README.md's results prose lacks the committed figures {missing}"
