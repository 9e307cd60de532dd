"""The repositories of the public SWE-bench family: what `forager tasks contamination` checks without a file.

Only the repository is known here, not the instances: with no benchmark file, the contamination report can
say that a task's repository is a benchmark's (and so that training on it may teach the benchmark's code),
but not when the benchmark's instances were made nor whether a patch matches one. For those, pass the
benchmark's instances (`--against FILE`).

Each list is the set of `repo` values in the benchmark's released instances, as the benchmark spells them.
Left out on purpose:
- SWE-bench's train split (19,008 instances from 35 repositories): training data, not an evaluation set.
- Multi-SWE-bench (Zan et al., 2025, arXiv 2504.02605): Java, TypeScript, JavaScript, Go, Rust, C and C++;
  it has no Python part.
- SWE-rebench (Badertdinov et al., 2025, arXiv 2505.20411): 21,336 tasks from 3,468 repositories, refreshed
  monthly; too many to list and not fixed. Check against its released instances with `--against`.
"""

from __future__ import annotations

from pydantic import BaseModel


class ReferenceBenchmark(BaseModel):
    """One benchmark (or split) of the reference list: its name, where it is described, its repositories."""

    name: str
    source: str
    repos: tuple[str, ...]


# SWE-bench, its test split (2,294 instances): Jimenez et al., "SWE-bench: Can Language Models Resolve
# Real-World GitHub Issues?", ICLR 2024 (arXiv 2310.06770). SWE-bench Lite (300 instances, same paper's
# repository, swebench.com/lite) and SWE-bench Verified (500 instances, OpenAI, "Introducing SWE-bench
# Verified", 2024) are subsets of this split over the same 12 repositories.
SWE_BENCH_REPOS = (
    "astropy/astropy", "django/django", "matplotlib/matplotlib", "mwaskom/seaborn", "pallets/flask", "psf/requests",
    "pydata/xarray", "pylint-dev/pylint", "pytest-dev/pytest", "scikit-learn/scikit-learn", "sphinx-doc/sphinx",
    "sympy/sympy",
)
# SWE-bench's dev split (225 instances), same paper and dataset (princeton-nlp/SWE-bench, split "dev").
SWE_BENCH_DEV_REPOS = (
    "marshmallow-code/marshmallow", "pvlib/pvlib-python", "pydicom/pydicom", "pylint-dev/astroid",
    "pyvista/pyvista", "sqlfluff/sqlfluff",
)
# SWE-Gym: Pan et al., "Training Software Engineering Agents and Verifiers with SWE-Gym", ICML 2025
# (arXiv 2412.21139): 2,438 released instances from 11 Python repositories.
SWE_GYM_REPOS = (
    "Project-MONAI/MONAI", "bokeh/bokeh", "conan-io/conan", "dask/dask", "facebookresearch/hydra", "getmoto/moto",
    "iterative/dvc", "modin-project/modin", "pandas-dev/pandas", "pydantic/pydantic", "python/mypy",
)
# SWE-bench Multimodal: Yang et al., "SWE-bench Multimodal: Do AI Systems Generalize to Visual Software
# Domains?", ICLR 2025 (arXiv 2410.03859): JavaScript repositories, 510 test instances from 12 and 102 dev
# instances from 5. Listed for completeness: forager makes Python tasks, so none should be of these.
SWE_BENCH_MULTIMODAL_REPOS = (
    "GoogleChrome/lighthouse", "PrismJS/prism", "alibaba-fusion/next", "bpmn-io/bpmn-js",
    "carbon-design-system/carbon", "eslint/eslint", "grommet/grommet", "highlightjs/highlight.js",
    "openlayers/openlayers", "prettier/prettier", "quarto-dev/quarto-cli", "scratchfoundation/scratch-gui",
    # dev split
    "Automattic/wp-calypso", "chartjs/Chart.js", "diegomura/react-pdf", "markedjs/marked", "processing/p5.js",
)

REFERENCE = (
    ReferenceBenchmark(name="SWE-bench (test, Lite, Verified)", source="Jimenez et al., ICLR 2024, arXiv 2310.06770",
                       repos=SWE_BENCH_REPOS),
    ReferenceBenchmark(name="SWE-bench (dev)", source="Jimenez et al., ICLR 2024, arXiv 2310.06770",
                       repos=SWE_BENCH_DEV_REPOS),
    ReferenceBenchmark(name="SWE-Gym", source="Pan et al., ICML 2025, arXiv 2412.21139", repos=SWE_GYM_REPOS),
    ReferenceBenchmark(name="SWE-bench Multimodal", source="Yang et al., ICLR 2025, arXiv 2410.03859",
                       repos=SWE_BENCH_MULTIMODAL_REPOS),
)


def reference_repos() -> dict[str, list[str]]:
    """Each reference repository as a lower-case "owner/name" -> the names of the benchmarks that hold it."""
    repos: dict[str, list[str]] = {}
    for benchmark in REFERENCE:
        for repo in benchmark.repos:
            repos.setdefault(repo.lower(), []).append(benchmark.name)
    return repos
