"""Continual plasticity problems: sequences of supervised tasks on which a network that
loses plasticity learns each new task worse than a freshly initialized one.

* ``random-labels`` — :class:`RandomLabelDigits`: fixed digits, new random labels per task
  (Lyle et al. 2023, arXiv 2303.01486; the NaP paper's setting);
* ``permuted-inputs`` — :class:`PermutedDigits`: digits with a new pixel permutation per
  task (Permuted MNIST's shift);
* ``bit-flipping`` — :class:`SlowlyChangingRegression`: Dohare et al. 2024's
  slowly-changing regression (Nature 632:768).

``make_problem(name, **kwargs)`` builds one by name; ``PROBLEMS`` maps names to classes.
Each class states its paper's training protocol (``cls.protocol``).
"""
from normrl._lazy import lazy_exports

_EXPORTS = {
    "ContinualProblem": "base",
    "TaskData": "base",
    "Protocol": "base",
    "derive_seed": "base",
    "RandomLabelDigits": "random_labels",
    "PermutedDigits": "permuted_inputs",
    "SlowlyChangingRegression": "bit_flipping",
    "standardized_digits": "digits_inputs",
    "PROBLEMS": "registry",
    "make_problem": "registry",
    "problem_class": "registry",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
