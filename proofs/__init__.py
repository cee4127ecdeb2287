"""Machine-checked derivations of the theory (sympy), one statement per module."""
