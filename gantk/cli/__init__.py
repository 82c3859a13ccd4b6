"""Command-line plumbing shared by ``python -m gantk.run`` and ``python -m gantk.figures``.

- :mod:`gantk.cli.errors`: the exceptions a CLI turns into one line and an exit status.
- :mod:`gantk.cli.paths`: run-folder names, recognising and replacing a run folder safely.
- :mod:`gantk.cli.checkpoint`: checkpoints that are validated against their configuration.
- :mod:`gantk.cli.interrupts`: Ctrl-C handling (deferred during the writes that must finish).

Exit statuses of every gantk command: 0 success; 1 a failure during a run (divergence, a
write that failed half-way; what was written stays); 2 a bad argument or unusable input
(one line naming it; nothing written or modified); 130 interrupted (Ctrl-C).
"""

from gantk.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RunError,
    UsageError,
)

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "RunError", "UsageError"]
