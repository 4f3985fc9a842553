"""The README's Python snippets run as written and print what their comments say; its commands exist.

**Python blocks.** Every ```python block of README.md runs, in order, in ONE namespace (as a reader
pastes them into one session: later blocks use the names of earlier ones), in a fresh interpreter
with JAX's defaults (float32: x64 off, whatever this session's conftest enabled), in a temporary
working directory. Each ``print`` line carries a comment with what it prints::

    print(td.critical_exponents(ens)["beta"].value)   # 0.5000
    print(Tc, dTc)                                     # 2.25 3.0  (T_c = a^2, dT_c/da = 2a)
    print(gap)                                         # < 0.04
    print(T_s)                                         # 3.0 ± 0.3

The expected part of a comment ends at the first " (" or ";" (a remark follows). Its numbers are
compared, in order, with the numbers of the printed text: a bare number within a relative
``DEFAULT_RTOL`` (inf and nan compare literally), ``v ± tol`` (or ``v +- tol``) within an absolute
``tol``, ``< b`` and ``> b`` as bounds; brackets, commas and words are ignored, and the counts must
be equal. Every top-level expression statement of a block must be such a print (outside a REPL a
bare expression prints nothing: the old README's ``td.critical_exponents(ens)["beta"].value  # 0.5``
hid what float32 gave), each print fits on one line and runs exactly once.

**Shell.** ```bash blocks are not run; every ``thermodiff <command> --option`` they or the README's
inline code spans mention must exist in ``thermodiff <command> --help`` (with the choices the
README lists), and likewise ``python -m benchmarks``'s options and benchmark names.
"""

from __future__ import annotations

import ast
import io
import json
import math
import os
import re
import subprocess
import sys
import time
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEFAULT_RTOL = 2e-3
# Measured on the shared 2-core CPU: the blocks take 8, 10 and 43 s of CPU (61 s; most of it XLA
# compilation: compare_to_exact alone compiles ~190 programs), 2.5-3 minutes of wall time at a load of 7-9.
SNIPPET_TIMEOUT_S = 600

_NUM = r"(?<![\w.])(?:[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan)(?![\w.])"
_PRINTED_NUMBER = re.compile(_NUM)
_EXPECTED_ITEM = re.compile(
    rf"(?P<op>[<>])\s*(?P<bound>{_NUM})"
    rf"|(?P<value>{_NUM})(?:\s*(?:±|\+-|\+/-)\s*(?P<tol>{_NUM}))?"
)


# ---------------------------------------------------------------------------------- parsing
def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number in README.md, source) of every ```python block."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start, i = i + 1, i + 1
            while lines[i].strip() != "```":
                i += 1
            out.append((start + 1, "\n".join(lines[start:i]) + "\n"))
        i += 1
    return out


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", text, re.S | re.M)


def comments_by_line(source: str, first: int) -> dict[int, str]:
    """README line -> the comment text on it (tokenized: a '#' inside a string is not a comment)."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[first + tok.start[0] - 1] = tok.string[1:].strip()
    return out


def expected_part(comment: str) -> str:
    """The part of a comment that states what is printed (a remark starts at ' (' or ';')."""
    return re.split(r"\s\(|;", " " + comment, maxsplit=1)[0].strip()


def expected_items(comment: str) -> list[tuple]:
    """('value', v, tol or None) / ('<', b) / ('>', b) items of a print comment, in order."""
    items = []
    for m in _EXPECTED_ITEM.finditer(expected_part(comment)):
        if m.group("op"):
            items.append((m.group("op"), float(m.group("bound"))))
        else:
            tol = float(m.group("tol")) if m.group("tol") else None
            items.append(("value", float(m.group("value")), tol))
    return items


def printed_numbers(text: str) -> list[float]:
    return [float(s) for s in _PRINTED_NUMBER.findall(text)]


def check_printed(text: str, comment: str, rtol: float = DEFAULT_RTOL) -> None:
    """Raise AssertionError unless the printed text matches the comment (module docstring)."""
    got, want = printed_numbers(text), expected_items(comment)
    assert want, f"the comment {comment!r} states no printed value"
    assert len(got) == len(want), f"printed {text!r} ({len(got)} numbers), comment {comment!r} ({len(want)})"
    for g, w in zip(got, want):
        if w[0] == "<":
            ok = g < w[1]
        elif w[0] == ">":
            ok = g > w[1]
        else:
            v, tol = w[1], w[2]
            if math.isnan(v) or math.isinf(v):
                ok = (math.isnan(g) and math.isnan(v)) or g == v
            else:
                ok = abs(g - v) <= (tol if tol is not None else rtol * abs(v))
        assert ok, f"printed {text!r}: {g!r} does not match {w} of the comment {comment!r}"


def print_lines(blocks) -> dict[int, str]:
    """README line -> comment of every print call in the python blocks; checks the block rules."""
    out = {}
    for first, src in blocks:
        tree = ast.parse(src)
        comments = comments_by_line(src, first)
        for stmt in tree.body:
            if isinstance(stmt, ast.Expr):
                call = stmt.value
                is_print = isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"
                assert is_print, (f"README.md:{first + stmt.lineno - 1}: a bare expression prints nothing "
                                  "outside a REPL; print it with a comment stating the value")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                line = first + node.lineno - 1
                assert node.lineno == node.end_lineno, f"README.md:{line}: keep each print on one line"
                assert line in comments and expected_items(comments[line]), (
                    f"README.md:{line}: a print needs a comment with the value it prints")
                out[line] = comments[line]
    return out


# ---------------------------------------------------------------------------------- the checker has teeth
def test_checker_accepts_and_rejects():
    check_printed("0.4999999611942453", "0.5000")
    check_printed("[0.5370496]", "[0.53705]  (= tanh(0.3/0.5))")
    check_printed("2.25 3.0", "2.25 3.0; T_c = a^2")
    check_printed("[[99.99821]] [[0.99999964]]", "[[99.998]] [[1.0]]")
    check_printed("0.0318 2.957", "< 0.04, 2.9 ± 0.2")
    check_printed("inf 1.5", "inf 1.5")
    check_printed("-0.0706", "-0.0706")
    with pytest.raises(AssertionError, match="does not match"):
        check_printed("2.7e-07", "0.5")  # the float32 beta
    with pytest.raises(AssertionError, match="does not match"):
        check_printed("0.5011", "0.5000")  # beyond the default 2e-3 relative
    with pytest.raises(AssertionError, match="does not match"):
        check_printed("3.2", "2.9 ± 0.2")
    with pytest.raises(AssertionError, match="does not match"):
        check_printed("0.05", "< 0.04")
    with pytest.raises(AssertionError, match="does not match"):
        check_printed("nan", "0.5")
    with pytest.raises(AssertionError, match="numbers"):
        check_printed("1.0 2.0", "1.0")
    with pytest.raises(AssertionError, match="states no printed value"):
        check_printed("1.0", "(a remark only)")


def test_block_rules_have_teeth():
    with pytest.raises(AssertionError, match="a bare expression prints nothing"):
        print_lines([(10, 'x = 1\ntd.critical_exponents(ens)["beta"].value  # 0.5\n')])
    with pytest.raises(AssertionError, match="README.md:11: a print needs a comment"):
        print_lines([(10, "x = 1\nprint(x)\n")])
    assert print_lines([(10, "x = 1\nprint(x, '#')  # 1 (one)\n")]) == {11: "1 (one)"}


# ---------------------------------------------------------------------------------- python blocks
_RUNNER = r"""
import builtins, json, sys
_print = builtins.print

def print(*args, sep=" ", end="\n", file=None, flush=False):
    frame = sys._getframe(1)
    if file is None and frame.f_code.co_filename == "README.md":
        text = (" " if sep is None else sep).join(str(a) for a in args)
        _print("@@README " + json.dumps({"line": frame.f_lineno, "text": text}), flush=True)
    else:
        _print(*args, sep=sep, end=end, file=file, flush=flush)

import time
ns = {"__name__": "__main__", "print": print}
for first, src in json.loads(sys.stdin.read()):
    t0, c0 = time.perf_counter(), time.process_time()
    exec(compile("\n" * (first - 1) + src, "README.md", "exec"), ns)
    _print(f"@@TIME block at README.md:{first}: {time.perf_counter() - t0:.1f} s wall, "
           f"{time.process_time() - c0:.1f} s CPU", flush=True)
"""


@pytest.fixture(scope="module")
def snippet_run(tmp_path_factory):
    blocks = python_blocks(README.read_text())
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)  # JAX's defaults, as a user runs the README
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(blocks), capture_output=True,
                          text=True, cwd=tmp_path_factory.mktemp("readme"), env=env, timeout=SNIPPET_TIMEOUT_S)
    wall = time.perf_counter() - t0
    printed: dict[int, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("@@README "):
            rec = json.loads(line[len("@@README "):])
            printed.setdefault(rec["line"], []).append(rec["text"])
    return blocks, proc, printed, wall


def test_readme_has_python_blocks():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3
    assert any("critical_exponents" in src for _, src in blocks)


def test_readme_snippets_run_in_float32_and_print_what_they_say(snippet_run):
    blocks, proc, printed, wall = snippet_run
    assert proc.returncode == 0, f"the README's snippets failed ({wall:.0f} s):\n{proc.stderr[-4000:]}"
    expected = print_lines(blocks)
    assert expected, "no print lines in the README's python blocks"
    failures = []
    for line, comment in sorted(expected.items()):
        texts = printed.get(line, [])
        if len(texts) != 1:
            failures.append(f"README.md:{line}: printed {len(texts)} times, expected once")
            continue
        try:
            check_printed(texts[0], comment)
        except AssertionError as e:
            failures.append(f"README.md:{line}: {e}")
    assert not failures, "\n".join(failures)
    assert set(printed) <= set(expected), f"prints on lines without a checked comment: {sorted(set(printed) - set(expected))}"


@pytest.mark.xfail(strict=True, reason=(
    "library: jax.value_and_grad of td.critical_temperature with x64 off warns 'Explicitly requested dtype "
    "float64 requested in dot is not available' (the backward pass of its float64-internal solve runs "
    "outside x64); remove this marker when fixed"))
def test_readme_snippets_run_without_warnings(snippet_run):
    blocks, proc, printed, _ = snippet_run
    assert proc.returncode == 0
    warnings = [line for line in proc.stderr.splitlines() if re.search(r"\w*Warning: ", line)]
    assert not warnings, warnings


def test_readme_critical_exponent_is_correct_in_float32(snippet_run):
    """The issue's headline: beta printed by the README is 0.5 in JAX's default float32."""
    blocks, proc, printed, _ = snippet_run
    assert proc.returncode == 0
    lines = [first + i for first, src in blocks for i, code in enumerate(src.splitlines())
             if 'critical_exponents(ens)["beta"].value' in code]
    assert len(lines) == 1
    (text,) = printed[lines[0]]
    assert abs(float(text) - 0.5) < 1e-3, text


# ---------------------------------------------------------------------------------- shell commands
def _cli_mentions(text: str, program: str) -> list[str]:
    """Every mention of ``program ...`` in shell blocks and inline code spans of the README."""
    out = []
    for block in shell_blocks(text):
        for part in re.split(r"&&|\n|;", block):
            if program in part:
                out.append(part[part.index(program):].strip())
    for span in re.findall(r"`([^`\n]+)`", text):
        if span.startswith(program + " ") or span == program:
            out.append(span)
    return out


def _help(args: list[str], module: str = "thermodiff") -> str:
    proc = subprocess.run([sys.executable, "-m", module, *args, "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, (args, proc.stderr[-2000:])
    return proc.stdout


def test_readme_cli_commands_and_options_exist():
    text = README.read_text()
    mentions = _cli_mentions(text, "thermodiff")
    assert any(m.startswith("thermodiff analyze") for m in mentions)
    top = _help([])
    commands = set(re.search(r"\{([a-z,-]+)\}", top).group(1).split(","))
    helps, checked = {}, 0
    for m in mentions:
        words = m.replace("\\|", "|").split()
        if len(words) > 1 and not words[1].startswith(("-", "[", ".")):
            cmd = words[1]
            assert cmd in commands, f"README mentions `thermodiff {cmd}`: not a command ({sorted(commands)})"
            if cmd not in helps:
                helps[cmd] = _help([cmd])
            help_text = helps[cmd]
        else:
            help_text = top
        for opt in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", m):
            if opt == "--help":
                continue
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", help_text), f"`{m}`: {opt} is not an option"
            checked += 1
        # listed choices, e.g. [--scale raw|unit-variance|minus-one-one], are the parser's choices
        for opt, choices in re.findall(r"(--[a-z][a-z0-9-]*) ([a-z][a-z0-9-]*(?:\|[a-z][a-z0-9-]*)+)", m.replace("\\|", "|")):
            listed = re.search(rf"{re.escape(opt)} \{{([^}}]*)\}}", help_text)
            assert listed, f"`{m}`: {opt} has no choices in --help"
            assert set(choices.split("|")) == set(listed.group(1).split(",")), (opt, choices, listed.group(1))
    assert checked >= 8, mentions
    # a bare option in the prose (`--resume`, `--quick`) is an option of some command
    all_help = top + "".join(_help([c]) for c in sorted(commands)) + _help([], module="benchmarks")
    for opt in set(re.findall(r"`(--[a-z][a-z0-9-]*)`", text)):
        assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", all_help), f"README mentions `{opt}`: no such option"
    # the ensembles the README lists are the ones the commands accept
    listed = re.search(r"Ensembles: ([a-z, -]+?)\s*\(", text)
    assert listed, "the README's 'Ensembles: ...' list of the command line"
    helps.setdefault("phase-diagram", _help(["phase-diagram"]))
    accepted = re.search(r"one of ([a-z, -]+?)\s+--", " ".join(helps["phase-diagram"].split()))
    assert {s.strip() for s in listed.group(1).split(",")} == {s.strip() for s in accepted.group(1).split(",")}


def test_readme_benchmark_commands_exist():
    text = README.read_text()
    mentions = _cli_mentions(text, "python -m benchmarks")
    assert mentions
    help_text = _help([], module="benchmarks")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--list"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    registered = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    for m in mentions:
        for opt in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", m):
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", help_text), f"`{m}`: {opt} is not an option"
        for name in re.findall(r"--only ([a-z_]+)", m):
            assert name in registered, f"`{m}`: no benchmark {name!r} ({sorted(registered)})"
    # every row of the README's benchmark table names a registered benchmark, and vice versa
    table = text[text.index("## Benchmarks"):]
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert rows == registered, (sorted(rows), sorted(registered))
