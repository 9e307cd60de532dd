"""Task integrity: what forager measures of a task beyond its validation, stored per task and carried with the
data: grading determinism (verify), the leak audit (audit), benchmark contamination (contamination), and
difficulty from rollouts (stats). See docs/integrity.md."""
