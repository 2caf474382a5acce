# nbgrader configuration of a course built from sparsevd-lab (docs/grading.md): copy this file to the
# course's root folder, beside source/, and set the course id.
import os

c = get_config()  # noqa: F821  (nbgrader provides get_config)

c.CourseDirectory.course_id = "sparsevd"

# Grade in fast mode: the kernels that autograde starts inherit this environment, so every training
# cell takes seconds (A1: 3 epochs on 1,000 digits), not minutes, and no grade depends on a timeout.
# The locked parameters cell of each notebook reads it (nb.mode()): a student cannot change it.
os.environ["SPARSEVD_FAST"] = "1"
# The package's compiled CPU kernels are built here, once, before any notebook runs (cached by torch;
# the first build took 6 minutes on a busy machine, longer than a cell may run), so that no cell
# waits for it; without them notebook 06 took 503 s to autograde instead of 24 s. Where they cannot be built they are
# switched off for the notebooks: the fallback would warn on stderr inside a cell, and nbgrader
# scores stderr in a graded cell as a failure.
if os.environ.get("SPARSEVD_KERNELS", "auto") != "0":
    try:
        from sparsevd_lab import kernels

        if not kernels.kernels_enabled():
            os.environ["SPARSEVD_KERNELS"] = "0"
    except Exception:  # noqa: BLE001 - any failure: grade on the reference paths (same values)
        os.environ["SPARSEVD_KERNELS"] = "0"

# Seconds per cell before nbgrader interrupts it (its default, 30 s, is short for a busy machine; a
# cell still running at the limit stops that submission's autograde). In fast mode each notebook here
# ran in under 2 minutes in all (docs/grading.md).
c.Execute.timeout = 300
