import ast
import subprocess
from pathlib import Path

import pytest

from forager.tasks.mutations import (
    FAMILIES,
    Mutation,
    enumerate_mutations,
    functions_in,
    sample_mutations,
)

ACCOUNTS = Path(__file__).resolve().parents[2] / "forager/example_repo/files/src/ledger/accounts.py"

SAMPLE = '''\
"""Sample module."""

from __future__ import annotations

import math
import os
from os import path as osp


def area(radius):
    """Area of a circle."""
    scale = radius * radius
    return math.pi * scale


class Box:
    def __init__(self, width, height=1):
        self.width = width
        self.height = height

    def volume(self, depth):
        total = self.width * self.height
        result = total * depth
        return result

    def fits(self, other):
        return self.width <= other.width and not self.height > other.height

    @classmethod
    def unit(cls):
        return cls(1)


def join(a, b):
    return osp.join(a, b)


def nothing(x):
    if x:
        return
    return None
'''


def by_description(mutations: list[Mutation], description: str) -> Mutation:
    found = [m for m in mutations if m.description == description]
    assert len(found) == 1, [m.description for m in mutations]
    return found[0]


@pytest.fixture(scope="module")
def sample() -> list[Mutation]:
    return enumerate_mutations("pkg/sample.py", SAMPLE)


def git_apply(repo: Path, patch: str, *extra: str) -> subprocess.CompletedProcess:
    (repo / "change.diff").write_text(patch)
    return subprocess.run(["git", "apply", *extra, "change.diff"], cwd=repo, capture_output=True, text=True)


@pytest.fixture
def repo(tmp_path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def test_families_and_model_validation():
    assert FAMILIES == ("functions", "arguments", "variables", "statements", "operators")
    common = dict(path="a.py", symbol="f", line=1, description="d", original="x", mutated="y")
    with pytest.raises(ValueError):
        Mutation(family="typos", **common)
    with pytest.raises(ValueError):
        Mutation(family="functions", **{**common, "path": "/abs/a.py"})
    with pytest.raises(ValueError):
        enumerate_mutations("a.py", SAMPLE, families=("typos",))


def test_sample_module_yields_every_family(sample):
    assert {m.family for m in sample} == set(FAMILIES)
    assert all(m.path == "pkg/sample.py" and m.original == SAMPLE for m in sample)


def test_every_candidate_parses_and_differs(sample):
    for mutation in sample:
        assert mutation.mutated != mutation.original
        ast.parse(mutation.mutated)


def test_operator_binary_exact(sample):
    first, second = [m for m in sample if m.description == "replaced * with / in area"]
    assert first.mutated == SAMPLE.replace("radius * radius", "radius / radius")
    assert second.mutated == SAMPLE.replace("math.pi * scale", "math.pi / scale")
    assert (first.symbol, first.line, first.family, second.line) == ("area", 12, "operators", 13)


def test_operator_comparison_boolean_and_unary_exact(sample):
    fits = "        return self.width <= other.width and not self.height > other.height\n"
    expected = {
        "replaced <= with < in Box.fits": fits.replace("<=", "<"),
        "replaced <= with > in Box.fits": fits.replace("<=", ">"),
        "replaced > with >= in Box.fits": fits.replace(" > ", " >= "),
        "replaced and with or in Box.fits": fits.replace(" and ", " or "),
        "removed not in Box.fits": fits.replace("not ", ""),
    }
    for description, line in expected.items():
        assert by_description(sample, description).mutated == SAMPLE.replace(fits, line)


def test_operator_word_operators_get_spaces():
    source = "def same(a, b):\n    return a==b\n"
    mutations = enumerate_mutations("m.py", source, families=("operators",))
    assert [m.mutated for m in mutations] == ["def same(a, b):\n    return a!=b\n"]
    source = "def same(a, b):\n    return (a)is(b)\n"
    (mutation,) = enumerate_mutations("m.py", source, families=("operators",))
    assert mutation.mutated == "def same(a, b):\n    return (a) is not (b)\n"


def test_augmented_assignment_and_multibyte_columns():
    # "é" is two UTF-8 bytes: ast columns count bytes, so a str slice would cut one byte off
    source = "def tag(x):\n    s = 'é' + x  # ü\n    s += 'ö'\n    return s\n"
    mutations = enumerate_mutations("m.py", source, families=("operators",))
    assert [m.mutated for m in mutations] == [
        source.replace("'é' + x", "'é' - x"),
        source.replace("s += 'ö'", "s -= 'ö'"),
    ]


def test_body_removal_keeps_docstring(sample):
    mutation = by_description(sample, "replaced the body of area with pass")
    assert mutation.mutated == SAMPLE.replace(
        "    scale = radius * radius\n    return math.pi * scale\n", "    pass\n"
    )
    assert '"""Area of a circle."""' in mutation.mutated


def test_body_removal_without_docstring_and_one_liner():
    source = "def f(a): return a + 1\n\nclass C:\n    def m(self, x):\n        y = x\n        return y\n"
    mutations = enumerate_mutations("m.py", source, families=("functions",))
    bodies = {m.symbol: m.mutated for m in mutations if m.description.startswith("replaced the body")}
    assert bodies["f"] == source.replace("def f(a): return a + 1", "def f(a): pass")
    assert bodies["C.m"] == source.replace("        y = x\n        return y\n", "        pass\n")


def test_drop_one_statement_exact(sample):
    mutation = by_description(sample, "removed `scale = radius * radius` from area")
    assert mutation.mutated == SAMPLE.replace("    scale = radius * radius\n", "")
    functions = [m for m in sample if m.family == "functions"]
    # the docstring and the returns are never what a statement drop removes
    assert not any("Area of a circle" in m.description or "`return" in m.description for m in functions)


def test_parameter_drop_exact_and_self_never_dropped(sample):
    mutation = by_description(sample, "removed parameter height from Box.__init__")
    assert mutation.mutated == SAMPLE.replace("def __init__(self, width, height=1):", "def __init__(self, width):")
    dropped = [m.description for m in sample if m.description.startswith("removed parameter")]
    assert "removed parameter depth from Box.volume" in dropped
    assert not any(d.startswith(("removed parameter self ", "removed parameter cls ")) for d in dropped)
    for mutation in sample:
        assert "(self" in mutation.mutated.split("def __init__")[1].split(")")[0]


def test_parameter_drop_multiline_removes_the_line():
    source = "def f(\n    a,\n    b=2,\n    *rest,\n    **kw,\n):\n    return g(a, b, *rest, **kw)\n"
    mutations = enumerate_mutations("m.py", source, families=("arguments",))
    drops = {m.description: m.mutated for m in mutations if m.description.startswith("removed parameter")}
    assert drops["removed parameter a from f"] == source.replace("    a,\n", "")
    assert drops["removed parameter rest from f"] == source.replace("    *rest,\n", "")
    assert drops["removed parameter kw from f"] == source.replace("    **kw,\n", "")


def test_call_arguments_swap_exact(sample):
    mutation = by_description(sample, "swapped arguments 1 and 2 of osp.join() in join")
    assert mutation.mutated == SAMPLE.replace("osp.join(a, b)", "osp.join(b, a)")
    # max/min are commutative: swapping their arguments is no bug
    source = "def top(a, b):\n    return max(a, b) - min(a, b)\n"
    calls = enumerate_mutations("m.py", source, families=("arguments",))
    assert not any("swapped" in m.description for m in calls)


def test_variable_swap_exact_and_only_within_one_function(sample):
    mutation = by_description(sample, "swapped variables result and total in Box.volume")
    assert mutation.mutated == SAMPLE.replace(
        "        total = self.width * self.height\n        result = total * depth\n        return result\n",
        "        result = self.width * self.height\n        total = result * depth\n        return total\n",
    )
    spans = {name: (first, last) for name, first, last in functions_in(SAMPLE)}
    for mutation in (m for m in sample if m.family == "variables"):
        first, last = spans[mutation.symbol]
        changed = [
            number
            for number, (old, new) in enumerate(zip(SAMPLE.splitlines(), mutation.mutated.splitlines()), 1)
            if old != new
        ]
        assert changed and all(first <= number <= last for number in changed), mutation.description
        assert "self" not in mutation.description and "math" not in mutation.description


def test_variable_swap_leaves_attributes_and_globals():
    source = "LIMIT = 3\n\ndef f(a):\n    b = a.b + LIMIT\n    return b\n"
    (mutation,) = enumerate_mutations("m.py", source, families=("variables",))
    assert mutation.mutated == "LIMIT = 3\n\ndef f(a):\n    a = b.b + LIMIT\n    return a\n"


def test_statement_import_removal(sample):
    mutation = by_description(sample, "removed `import math`")
    assert mutation.symbol == "<module>" and mutation.line == 5
    assert mutation.mutated == SAMPLE.replace("import math\n", "")
    descriptions = [m.description for m in sample]
    assert not any("__future__" in d for d in descriptions)
    assert "removed `import os`" not in descriptions  # unused: removing it changes nothing


def test_statement_return_removal(sample):
    mutation = by_description(sample, "removed `return result` from Box.volume")
    assert mutation.mutated == SAMPLE.replace("        return result\n", "")
    # a bare return and `return None` change nothing when removed
    assert not any(m.symbol == "nothing" and m.family == "statements" for m in sample)
    # a return alone in its block becomes pass so the block stays valid
    source = "def sign(x):\n    if x < 0:\n        return -1\n    return 1\n"
    returns = enumerate_mutations("m.py", source, families=("statements",))
    assert returns[0].mutated == source.replace("        return -1", "        pass")


def test_bug_patch_applies_and_gold_patch_reverses(repo, sample):
    target = repo / "pkg/sample.py"
    target.parent.mkdir()
    for mutation in sample_mutations(sample, 10, seed=1):
        target.write_text(SAMPLE)
        patch = mutation.bug_patch()
        assert patch.startswith("--- a/pkg/sample.py\n+++ b/pkg/sample.py\n@@ ") and patch.endswith("\n")
        assert git_apply(repo, patch).returncode == 0
        assert target.read_text() == mutation.mutated
        assert git_apply(repo, mutation.gold_patch()).returncode == 0
        assert target.read_text() == SAMPLE
        assert git_apply(repo, mutation.bug_patch(), "--reverse", "--check").returncode != 0


def test_patch_for_file_without_final_newline(repo):
    source = "def f(a, b):\n    return a - b"
    (mutation,) = enumerate_mutations("m.py", source, families=("operators",))
    assert "\\ No newline at end of file\n" in mutation.bug_patch()
    (repo / "m.py").write_text(source)
    assert git_apply(repo, mutation.bug_patch()).returncode == 0
    assert (repo / "m.py").read_text() == "def f(a, b):\n    return a + b"


def test_diff_is_minimal(sample):
    for mutation in (m for m in sample if m.family in ("operators", "arguments")):
        body = mutation.bug_patch().splitlines()[2:]
        removed = [line for line in body if line.startswith("-")]
        added = [line for line in body if line.startswith("+")]
        assert len(removed) == 1 and len(added) <= 1, mutation.description


def test_symbol_filter(sample):
    only = enumerate_mutations("pkg/sample.py", SAMPLE, symbols={"Box.volume"})
    assert only and {m.symbol for m in only} == {"Box.volume"}
    assert only == [m for m in sample if m.symbol == "Box.volume"]
    imports = enumerate_mutations("pkg/sample.py", SAMPLE, symbols={"<module>"})
    assert imports and all(m.family == "statements" and m.symbol == "<module>" for m in imports)
    assert enumerate_mutations("pkg/sample.py", SAMPLE, symbols=set()) == []


def test_family_filter(sample):
    operators = enumerate_mutations("pkg/sample.py", SAMPLE, families=("operators",))
    assert operators == [m for m in sample if m.family == "operators"]


def test_deterministic_order(sample):
    again = enumerate_mutations("pkg/sample.py", SAMPLE)
    assert [m.model_dump() for m in again] == [m.model_dump() for m in sample]
    keys = [(m.line, FAMILIES.index(m.family)) for m in sample]
    assert keys == sorted(keys)


def test_unparsable_source_yields_nothing():
    assert enumerate_mutations("m.py", "def broken(:\n    pass\n") == []
    assert functions_in("def broken(:\n") == []


def test_functions_in():
    assert functions_in(SAMPLE) == [
        ("area", 10, 13),
        ("Box.__init__", 17, 19),
        ("Box.volume", 21, 24),
        ("Box.fits", 26, 27),
        ("Box.unit", 30, 31),
        ("join", 34, 35),
        ("nothing", 38, 41),
    ]
    nested = "def outer():\n    def inner():\n        return 1\n    return inner\n"
    assert functions_in(nested) == [("outer", 1, 4), ("outer.<locals>.inner", 2, 3)]


def test_sample_reproducible_by_seed(sample):
    first = sample_mutations(sample, 8, seed=7)
    assert [m.bug_patch() for m in first] == [m.bug_patch() for m in sample_mutations(sample, 8, seed=7)]
    assert [m.bug_patch() for m in first] != [m.bug_patch() for m in sample_mutations(sample, 8, seed=8)]
    assert len(first) == 8
    # within one family the seed picks which candidates come first, not only the family order
    picks = {
        tuple(m.description for m in sample_mutations(sample, 2, seed=seed, families=("operators",)))
        for seed in range(10)
    }
    assert len(picks) > 1


def test_sample_balanced_across_families(sample):
    chosen = sample_mutations(sample, 10, seed=3)
    counts = {family: sum(m.family == family for m in chosen) for family in FAMILIES}
    assert counts == dict.fromkeys(FAMILIES, 2)
    only_two = sample_mutations(sample, 6, seed=3, families=("operators", "statements"))
    assert sorted(m.family for m in only_two) == ["operators"] * 3 + ["statements"] * 3


def test_sample_skips_empty_families_and_runs_out():
    source = "def f(a, b):\n    return a - b\n"
    candidates = enumerate_mutations("m.py", source, families=("operators", "functions"))
    chosen = sample_mutations(candidates, 10, seed=0)
    assert len(chosen) == len(candidates) == 2
    assert sample_mutations(candidates, 0, seed=0) == []


def test_sample_deduplicates_identical_patches():
    # swapping the variables a and b and swapping the call's arguments make the same patch
    source = "def f(a, b):\n    return g(a, b)\n"
    candidates = enumerate_mutations("m.py", source, families=("arguments", "variables"))
    same = [m for m in candidates if m.mutated == "def f(a, b):\n    return g(b, a)\n"]
    assert {m.family for m in same} == {"arguments", "variables"}
    chosen = sample_mutations(candidates, 10, seed=0)
    patches = [m.bug_patch() for m in chosen]
    assert len(patches) == len(set(patches)) == len(candidates) - 1


def test_real_file_has_every_family():
    source = ACCOUNTS.read_text()
    mutations = enumerate_mutations("src/ledger/accounts.py", source)
    assert {m.family for m in mutations} == set(FAMILIES)
    symbols = {name for name, _, _ in functions_in(source)} | {"<module>"}
    assert {m.symbol for m in mutations} <= symbols
    assert "replaced += with -= in Account.apply" in {m.description for m in mutations}
    for mutation in mutations:
        ast.parse(mutation.mutated)
