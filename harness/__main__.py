"""`python -m harness`: the same CLI as the `harness` script, and the entry point for `torchrun -m harness`.

Under a multi-process launch only the main process prints, so the terminal shows one progress bar.
"""

from harness.cli import app
from harness.core.console import console
from harness.core.distributed import is_main_process

if not is_main_process():
    console.quiet = True
app(prog_name="harness")
