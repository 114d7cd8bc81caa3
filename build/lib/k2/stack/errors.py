"""The one error type the stack tooling raises for a broken environment."""

from __future__ import annotations


class StackError(Exception):
    """A problem a user can fix, told in one line: what is wrong, then what to do.

    The CLI prints it without a traceback, because the traceback would only bury the fix.
    """

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}: {fix}")
        self.problem = problem
        self.fix = fix
