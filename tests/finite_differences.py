"""Central finite differences in float64, shared by the tests of layers, losses and models."""

import numpy as np

EPS = 1e-6
# Central differences with EPS = 1e-6 have truncation error ~EPS^2 |L'''| / 6 ~ 1e-12 and
# round-off error ~|L| * 1e-16 / EPS ~ 1e-9 for losses of order 1-10; observed errors are <= 1e-8.
# A missing or wrong term in a gradient is O(1e-2 .. 1), so a mixed tolerance
# |a - b| <= 1e-6 (1 + |b|) is 100x above the noise and far below a bug.
TOLERANCE = 1e-6


def probe_directions(rng, shape, elements):
    """Unit directions to differentiate along: `elements` random single elements (all, for a
    small tensor), then one random direction that involves every element."""
    size = int(np.prod(shape))
    directions = []
    for index in rng.permutation(size)[:elements]:
        one_hot = np.zeros(size)
        one_hot[index] = 1
        directions.append(one_hot.reshape(shape))
    random_direction = rng.normal(size=shape)
    return directions + [random_direction / np.linalg.norm(random_direction)]


def check_gradient(loss, array, analytic, rng, elements=8):
    """Asserts that `analytic` is d loss() / d array: along `elements` random single elements
    (all of a small array) and one random direction through all of them. `array` is moved in
    place and restored."""
    saved = array.copy()
    for direction in probe_directions(rng, array.shape, elements):
        array[...] = saved + EPS * direction
        loss_plus = loss()
        array[...] = saved - EPS * direction
        loss_minus = loss()
        array[...] = saved
        numerical = (loss_plus - loss_minus) / (2 * EPS)
        expected = float(np.sum(analytic * direction))
        assert abs(numerical - expected) <= TOLERANCE * (1 + abs(numerical)), (numerical, expected)
