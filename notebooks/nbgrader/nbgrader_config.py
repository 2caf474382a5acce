# nbgrader configuration of a course built from sparsevd-lab (docs/grading.md): copy this file to the
# course's root folder, beside source/, and set the course id.
import os

c = get_config()  # noqa: F821  (nbgrader provides get_config)

c.CourseDirectory.course_id = "sparsevd"

# Grade in fast mode: the kernels that autograde starts inherit this environment, so every training
# cell takes seconds (A1: 3 epochs on 1,000 digits), not minutes, and no grade depends on a timeout.
# The locked parameters cell of each notebook reads it (nb.mode()): a student cannot change it.
os.environ["SPARSEVD_FAST"] = "1"
# The package's compiled CPU kernels off (the reference PyTorch paths, same values): their first build
# takes minutes on a busy machine, longer than a cell may run, and where no compiler is found the
# fallback warns on stderr, which nbgrader scores as a failed cell.
os.environ["SPARSEVD_KERNELS"] = "0"

# Seconds per cell before nbgrader interrupts it (its default, 30 s, is short for a busy machine: a
# timed-out check cell scores 0). In fast mode the slowest cell takes a few seconds.
c.Execute.timeout = 300
