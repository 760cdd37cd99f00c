"""Central finite differences in float64, shared by the tests of layers, losses and models."""

import numpy as np

EPS = 1e-6
# Same budget as tests/test_reference.py: truncation ~EPS^2 and round-off ~1e-16 / EPS errors
# stay below 1e-8 for losses of order 1-10; a wrong or missing term is O(1e-2) or more.
TOLERANCE = 1e-6


def check_gradient(loss, array, analytic, rng, elements=8):
    """Asserts that `analytic` is d loss() / d array: along `elements` random single elements
    (all of a small array) and one random direction through all of them. `array` is moved in
    place and restored."""
    saved = array.copy()
    flat_size = array.size
    directions = []
    for index in rng.permutation(flat_size)[:elements]:
        direction = np.zeros(flat_size)
        direction[index] = 1
        directions.append(direction.reshape(array.shape))
    random_direction = rng.normal(size=array.shape)
    directions.append(random_direction / np.linalg.norm(random_direction))
    for direction in directions:
        array[...] = saved + EPS * direction
        loss_plus = loss()
        array[...] = saved - EPS * direction
        loss_minus = loss()
        array[...] = saved
        numerical = (loss_plus - loss_minus) / (2 * EPS)
        expected = float(np.sum(analytic * direction))
        assert abs(numerical - expected) <= TOLERANCE * (1 + abs(numerical)), (numerical, expected)
