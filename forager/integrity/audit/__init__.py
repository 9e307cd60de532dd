"""The leak audit: probes run in the container an agent would get, each looking for a way to the answer.

    report = audit_image(engine, settings, store, image)      # the image's start state, then each task's
    results = run_probes(sandbox, task, image)                 # or the probes on a sandbox already started

A start state is audited in a `Sandbox` started as an episode starts it (a task's bug patch as the start patch;
none for the image). Four probes, each a script run in that container and a pure parser of what it printed; every
search leaves out /proc, /sys and /dev (kernel views and devices, not files):

- `git`: anything in the repository's git data beyond the start commit (refs, reflogs, stashes, unreachable
  objects, remotes, leftover ORIG_HEAD-style files, other repositories on the filesystem).
- `pre-bug-source`: copies of the files the fix changes in the form the fix leaves them (for a mutate-fix task:
  the source before the bug): identical files anywhere, bytecode compiled from them or gone stale beside them,
  install and build copies (site-packages, build/lib) that differ from the start state. For the image: copies
  of tracked sources outside the repository, and bytecode beside them (what every later task would inherit).
- `gold-lines`: the gold patch's added lines searched for on the whole filesystem.
- `caches`: caches and temporary folders with their sizes (reported), and archives of the project itself
  (wheels, sdists, unpacked copies: failing).

A finding fails its probe or is only reported (`Finding.fails`); a probe fails when one of its findings does.
A task whose start state fails a probe becomes invalid (`leak audit: PROBE: FINDING`); one that an earlier audit
made invalid becomes valid again when it passes. Results are stored in `images.audit` and in the task's
`integrity["audit"]`.

The modules: `models` (findings, verdicts, reports), `subject` (the start state as data), `probe` (what a probe
is), one per probe (`git`, `source`, `gold`, `caches`; the programs they run in the container are in
`scripts/`), and `run` (the container edge). All but `run` are pure.
"""

from forager.integrity.audit.caches import CACHES, parse_caches, render_caches
from forager.integrity.audit.git import GIT, parse_git, render_git
from forager.integrity.audit.gold import COMMON_FILES, GOLD, classify_matches, match_pairs, parse_gold, vendored
from forager.integrity.audit.models import LEAK_PREFIX, AuditReport, Finding, ProbeResult, SubjectAudit, Verdict
from forager.integrity.audit.probe import Probe, ProbeOutputError, apply_outcome
from forager.integrity.audit.run import (
    PROBE_NAMES, PROBES, audit_image, audit_start_state, record_image, record_task, run_probes, survey,
    tasks_to_audit,
)
from forager.integrity.audit.source import SOURCE, chunked, parse_source, render_source, source_spec
from forager.integrity.audit.subject import (
    MIN_LINE, AuditSubject, added_lines, fixed_text, gold_lines, make_subject,
)

__all__ = [
    "CACHES", "COMMON_FILES", "GIT", "GOLD", "LEAK_PREFIX", "MIN_LINE", "PROBES", "PROBE_NAMES", "SOURCE",
    "AuditReport", "AuditSubject", "Finding", "Probe", "ProbeOutputError", "ProbeResult", "SubjectAudit", "Verdict",
    "added_lines", "apply_outcome", "audit_image", "audit_start_state", "chunked", "classify_matches", "fixed_text",
    "gold_lines", "make_subject", "match_pairs", "parse_caches", "parse_git", "parse_gold", "parse_source",
    "record_image", "record_task", "render_caches", "render_git", "render_source", "run_probes", "source_spec",
    "survey", "tasks_to_audit", "vendored",
]
