"""Optimizers against their update formulas written out by hand (several steps, so the state
counts), clipping, weight decay, the learning-rate schedule, torch.optim when installed, and
argument errors."""

import math

import numpy as np
import pytest

from fastrnn import optim

GRADIENTS = [np.array([0.5, -2.0, 0.0, 1e-3]), np.array([-1.0, 3.0, 0.25, 1e-3]), np.array([0.2, 0.2, -4.0, 0.0])]
START = np.array([1.0, -1.0, 0.5, 2.0])


def run(optimizer, gradients=GRADIENTS):
    """START after stepping `optimizer` once per gradient (given copies: clipping and weight
    decay rewrite grads in place)."""
    values = START.copy()
    for gradient in gradients:
        optimizer.step([(values, gradient.copy())])
    return values


def test_sgd():
    lr = 0.1
    p = START.copy()
    for g in GRADIENTS:
        p = p - lr * g
    np.testing.assert_allclose(run(optim.SGD(lr=lr)), p, rtol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_and_weight_decay(nesterov):
    lr, momentum, decay = 0.1, 0.9, 0.01
    p, b = START.copy(), np.zeros(4)
    for g in GRADIENTS:
        g = g + decay * p
        b = momentum * b + g
        p = p - lr * (g + momentum * b if nesterov else b)
    result = run(optim.SGD(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=decay))
    np.testing.assert_allclose(result, p, rtol=1e-15)


def test_adam():
    lr, beta1, beta2, eps = 0.01, 0.8, 0.9, 1e-8
    p, m, v = START.copy(), np.zeros(4), np.zeros(4)
    for t, g in enumerate(GRADIENTS, 1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(run(optim.Adam(lr=lr, betas=(beta1, beta2), eps=eps)), p, rtol=1e-13)


def test_adam_first_step_moves_each_parameter_by_about_lr():
    g = GRADIENTS[0]   # m_hat = g, v_hat = g^2: the step is lr * g / (|g| + eps)
    np.testing.assert_allclose(run(optim.Adam(lr=0.01), [g]) - START, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop(momentum):
    lr, alpha, eps = 0.01, 0.9, 1e-8
    p, v, b = START.copy(), np.zeros(4), np.zeros(4)
    for g in GRADIENTS:
        v = alpha * v + (1 - alpha) * g * g
        b = momentum * b + g / (np.sqrt(v) + eps)
        p = p - lr * b
    result = run(optim.RMSprop(lr=lr, alpha=alpha, eps=eps, momentum=momentum))
    np.testing.assert_allclose(result, p, rtol=1e-13)


def test_adagrad():
    lr, eps = 0.1, 1e-10
    p, s = START.copy(), np.zeros(4)
    for g in GRADIENTS:
        s = s + g * g
        p = p - lr * g / (np.sqrt(s) + eps)
    np.testing.assert_allclose(run(optim.Adagrad(lr=lr)), p, rtol=1e-13)


def test_clip_value_clamps_each_element_before_the_update():
    g = GRADIENTS[1]
    result = run(optim.SGD(lr=1.0, clip_value=0.5), [g])
    np.testing.assert_allclose(result, START - np.clip(g, -0.5, 0.5), rtol=1e-15)


def test_clip_norm_rescales_all_buffers_together():
    first, second = np.array([3.0, 0.0]), np.array([0.0, 4.0])   # global norm 5
    values = [np.zeros(2), np.zeros(2)]
    optim.SGD(lr=1.0, clip_norm=1.0).step([(values[0], first.copy()), (values[1], second.copy())])
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(np.concatenate(values), -scale * np.array([3.0, 0.0, 0.0, 4.0]), rtol=1e-15)
    small = np.array([0.1, 0.1])
    values = np.zeros(2)
    optim.SGD(lr=1.0, clip_norm=1.0).step([(values, small.copy())])   # under the norm: untouched
    np.testing.assert_array_equal(values, -small)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay_schedule_drives_the_learning_rate(staircase):
    schedule = optim.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5, staircase=staircase)
    expected = [0.1 * 0.5 ** (math.floor(step / 2) if staircase else step / 2) for step in range(3)]
    optimizer = optim.SGD(lr=schedule)
    seen, values, p = [], START.copy(), START.copy()
    for g, lr in zip(GRADIENTS, expected):
        seen.append(optimizer.learning_rate)
        optimizer.step([(values, g.copy())])
        p = p - lr * g
    np.testing.assert_allclose(seen, expected, rtol=1e-15)
    np.testing.assert_allclose(values, p, rtol=1e-15)
    assert optim.Adam(lr=lambda step: 0.5 / (step + 1)).learning_rate == 0.5   # any callable works


def test_exponential_decay_never_overflows():
    # A rate above 1 used to be accepted; 1e308 ** (1000 / 10) raised OverflowError mid-training.
    with pytest.raises(ValueError, match=r"decay_rate: expected a value in \(0, 1\], got 1e\+308"):
        optim.ExponentialDecay(0.1, 10, 1e308)
    assert optim.ExponentialDecay(0.1, 10, 1.0)(10**6) == 0.1
    # A decay_steps this small makes the exponent inf: the learning rate decays to 0, no error.
    assert optim.ExponentialDecay(0.1, 1e-310, 0.5, staircase=True)(1) == 0.0


@pytest.mark.parametrize("bad, error, match", [
    (-0.1, ValueError, r"lr \(the schedule at step 2\): expected a value in \[0, inf\), got -0.1"),
    (math.nan, ValueError, r"lr \(the schedule at step 2\): expected a value in \[0, inf\), got nan"),
    ("0.1", TypeError, r"lr \(the schedule at step 2\): expected a number, got str"),
])
def test_a_schedule_value_that_is_no_learning_rate_stops_its_step(bad, error, match):
    optimizer = optim.SGD(lr=lambda step: 0.1 if step < 2 else bad)
    values = run(optimizer, GRADIENTS[:2])
    with pytest.raises(error, match=match):
        optimizer.step([(values, GRADIENTS[2].copy())])
    np.testing.assert_array_equal(values, run(optim.SGD(lr=0.1), GRADIENTS[:2]))


def test_the_same_optimizer_refuses_other_buffers():
    optimizer = optim.Adam()
    optimizer.step([(np.zeros(3), np.ones(3))])
    with pytest.raises(ValueError, match=r"buffers: this optimizer was stepped with buffers of shapes \[\(3,\)\]"):
        optimizer.step([(np.zeros(4), np.ones(4))])


@pytest.mark.parametrize("buffers, error, match", [
    ([(1, 2)], TypeError, r"buffers\[0\]: expected a pair \(values, grads\) of floating-point arrays, got int, int"),
    ([(np.zeros(3), np.zeros(3)), np.zeros(3)], TypeError,
     r"buffers\[1\]: expected a pair \(values, grads\) of floating-point arrays, got float64 array"),
    ([(np.zeros(3, np.int64), np.zeros(3, np.int64))], TypeError,
     r"buffers\[0\]: expected a pair .* got int64 array, int64 array"),
    ([(np.zeros(3), np.zeros(2))], ValueError, r"buffers\[0\]: expected values and grads of one shape, got \(3,\) and "
                                               r"\(2,\)"),
    (3, TypeError, r"buffers: expected a list of \(values, grads\) pairs, got int"),
])
def test_step_checks_its_buffers(buffers, error, match):
    # A pair of numbers raised AttributeError ('int' object has no attribute 'shape').
    with pytest.raises(error, match=match):
        optim.SGD().step(buffers)


def test_defaults_are_pytorchs():
    assert (optim.SGD().lr, optim.SGD().momentum) == (1e-3, 0.0)
    assert (optim.Adam().lr, optim.Adam().betas, optim.Adam().eps) == (1e-3, (0.9, 0.999), 1e-8)
    assert (optim.RMSprop().lr, optim.RMSprop().alpha, optim.RMSprop().eps) == (1e-2, 0.99, 1e-8)
    assert (optim.Adagrad().lr, optim.Adagrad().eps) == (1e-2, 1e-10)


@pytest.mark.parametrize("make, error, match", [
    (lambda: optim.get("adamw"), ValueError, r"optimizer: expected one of \['adagrad', 'adam', 'rmsprop', 'sgd'\]"),
    (lambda: optim.Adam(lr=-1), ValueError, r"lr: expected a value in \(0, inf\), got -1"),
    (lambda: optim.Adam(lr="fast"), TypeError, "lr: expected a number, got str"),
    (lambda: optim.Adam(betas=(0.9, 1.0)), ValueError, r"betas\[1\]: expected a value in \[0, 1\)"),
    (lambda: optim.SGD(nesterov=True), ValueError, "nesterov: Nesterov momentum needs momentum > 0"),
    (lambda: optim.SGD(clip_norm=0), ValueError, r"clip_norm: expected a value in \(0, inf\)"),
])
def test_argument_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("name, options", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5}),
    ("Adagrad", {"lr": 0.1}),
])
def test_matches_torch_optim(name, options):
    torch = pytest.importorskip("torch")
    parameter = torch.tensor(START, requires_grad=True)
    reference = getattr(torch.optim, name)([parameter], **options)
    for g in GRADIENTS:
        parameter.grad = torch.tensor(g)
        reference.step()
    np.testing.assert_allclose(run(getattr(optim, name)(**options)), parameter.detach().numpy(), rtol=1e-12)


def test_clip_norm_of_float32_gradients_whose_squares_overflow():
    # The squared norm of a float32 blow-up overflowed float32: a RuntimeWarning, and a scale of
    # 0 that skipped the step instead of clipping it.
    grads = np.array([3e19, -4e19, 0, 0], np.float32)
    optimizer = optim.SGD(lr=1.0, clip_norm=5.0)
    values = np.zeros(4, np.float32)
    optimizer.step([(values, grads)])
    np.testing.assert_allclose(values, [-3, 4, 0, 0], rtol=1e-6)
