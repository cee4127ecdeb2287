"""Exception and warning classes of the package.

Every error raised for bad user input derives from both our base class and the builtin that a
caller would expect (``except ValueError`` keeps working), as in sklearn and networkx.
"""

from __future__ import annotations

__all__ = [
    "UserError",
    "TokenTreeError",
    "InvalidInputError",
    "InvalidTypeError",
    "EmptyTreeError",
    "ConfigError",
    "ZeroMassWarning",
]


class UserError(Exception):
    """Mixin of every error that a user's input causes (a bad config value, a missing file or model).

    The ``elasticity`` command prints such an error as one line on stderr and exits with 2; any
    other exception is an internal error and keeps its traceback. The message must name what is
    wrong and the fix.
    """


class TokenTreeError(Exception):
    """Base class of every exception raised by this package."""


class InvalidInputError(TokenTreeError, ValueError):
    """Raised when an argument has the right type but a wrong value (negative mass, depth < 1, ...)."""


class InvalidTypeError(TokenTreeError, TypeError):
    """Raised when an argument is the wrong kind of object (a string where an array is expected, ...)."""


class EmptyTreeError(InvalidInputError):
    """Raised when a dataset or tree holds no mass at all (an empty list of sequences)."""


class ConfigError(TokenTreeError, UserError, ValueError):
    """Raised for a bad configuration: an unknown key, a wrong type or a value out of range.

    The message always carries the dotted key (``train.learning_rate``).
    """


class ZeroMassWarning(UserWarning):
    """Warned when a legal input makes a quantity infinite, e.g. a zero-mass leaf's code length."""
