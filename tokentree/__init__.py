r"""Token trees, the compression protocol and the elasticity law (numpy + numba only).

The paper's Section 3 and Definition 4.1 as code: a token tree (Def. 3.1) over any vocabulary,
pruning and Huffman coding (Def. 3.3), the ideal code length (Thm 3.4), joint trees of several
datasets (§3.2), compression rates in the cross-entropy form and normalized rates (Def. 4.1).
Logs are base 2 everywhere: quantities carry ``_bits``.

| paper | code |
|---|---|
| 𝒯_𝒟 | ``TokenTree`` |
| d (pruning depth) | ``depth`` |
| p_lj (EOS leaf mass at layer l, node j) | ``tree.eos_mass[tree.find(prefix)]`` |
| M (leaves of the pruned tree) | ``n_leaves`` |
| γ, γ^{𝒟_i/𝒟} | ``compression_rate``, ``normalized_compression_rate`` |
| H_× (cross-entropy in γ) | ``cross_entropy_bits`` |
| \|𝒟_i\| | ``sizes`` of ``joint_tree`` |
"""

from .coding import (
    IdealCodeLength as IdealCodeLength,
    expected_code_length as expected_code_length,
    huffman_code_lengths as huffman_code_lengths,
    ideal_code_length as ideal_code_length,
    kraft_sum as kraft_sum,
)
from .errors import (
    ConfigError as ConfigError,
    EmptyTreeError as EmptyTreeError,
    InvalidInputError as InvalidInputError,
    InvalidTypeError as InvalidTypeError,
    TokenTreeError as TokenTreeError,
    ZeroMassWarning as ZeroMassWarning,
)
from .mixture import joint_tree as joint_tree, mixture_weights as mixture_weights
from .prune import prune as prune, prune_eos_masses as prune_eos_masses
from .rates import (
    compression_rate as compression_rate,
    cross_entropy_bits as cross_entropy_bits,
    entropy_bits as entropy_bits,
    kl_divergence_bits as kl_divergence_bits,
    leaf_masses as leaf_masses,
    n_leaves as n_leaves,
    normalized_compression_rate as normalized_compression_rate,
)
from .synth import (
    complete_tree_structure as complete_tree_structure,
    markov_tree as markov_tree,
    pareto_masses as pareto_masses,
    pareto_tree as pareto_tree,
    uniform_tree as uniform_tree,
)
from .tree import TokenTree as TokenTree

__all__ = [
    "TokenTree",
    "pareto_tree",
    "uniform_tree",
    "markov_tree",
    "pareto_masses",
    "complete_tree_structure",
    "prune",
    "prune_eos_masses",
    "joint_tree",
    "mixture_weights",
    "leaf_masses",
    "n_leaves",
    "huffman_code_lengths",
    "expected_code_length",
    "kraft_sum",
    "IdealCodeLength",
    "ideal_code_length",
    "entropy_bits",
    "cross_entropy_bits",
    "kl_divergence_bits",
    "compression_rate",
    "normalized_compression_rate",
    "TokenTreeError",
    "InvalidInputError",
    "InvalidTypeError",
    "EmptyTreeError",
    "ConfigError",
    "ZeroMassWarning",
]
