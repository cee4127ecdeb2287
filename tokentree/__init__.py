"""Token trees, the compression protocol and the elasticity law (numpy + numba only)."""
