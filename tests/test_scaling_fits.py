"Scaling-law fits on bad and good inputs: they raise with a reason instead of extrapolating."
import warnings
import numpy as np
import pytest
from llama3_nb.scaling_laws import (SweepConfig, fit_parabola, fit_power_law, fit_sigmoid, sigmoid_acc, isoflop_optima,
                                    bootstrap_alpha, two_step_forecast, power_law)

X = np.geomspace(1e5, 1e7, 5)

def test_parabola_too_few_points():
    with pytest.raises(ValueError, match="at least 3 distinct"): fit_parabola(X[:2], [2.0, 1.9])
    with pytest.raises(ValueError, match="at least 3 distinct"): fit_parabola([1e5, 1e5, 1e6], [2.0, 2.1, 1.9])

def test_parabola_opening_downwards():
    with pytest.raises(ValueError, match="opens downwards"): fit_parabola(X, -(np.log10(X) - 6) ** 2)

def test_parabola_minimum_outside_sampled_sizes():
    with pytest.raises(ValueError, match="outside the sampled range"): fit_parabola(X, (np.log10(X) - 7.5) ** 2)
    with pytest.raises(ValueError, match="outside the sampled range"): fit_parabola(X, 1 / np.log10(X))  # convex, still falling

def test_parabola_recovers_vertex():
    assert fit_parabola(X, 0.3 * (np.log10(X) - 6.3) ** 2 + 1.7)["x_opt"] == pytest.approx(10 ** 6.3, rel=1e-9)

def test_power_law_too_few_budgets_and_bad_values():
    with pytest.raises(ValueError, match="at least 3 budgets"): fit_power_law([1e11, 1e12], [1e6, 3e6])
    with pytest.raises(ValueError, match="positive"): fit_power_law([1e11, 1e12, 1e13], [1e6, -3e6, 1e7])

def test_sigmoid_bad_inputs_and_recovery():
    x = np.linspace(0.5, 3, 10)
    with pytest.raises(ValueError, match="hardly varies"): fit_sigmoid(x, np.full(10, 0.6))
    with pytest.raises(ValueError, match="near chance"): fit_sigmoid(x, np.linspace(0.17, 0.26, 10))  # all at the floor
    with pytest.raises(ValueError, match="at least 3"): fit_sigmoid(x[:2], [0.3, 0.8])
    assert fit_sigmoid(x, sigmoid_acc(x, 1.2, 4.0)) == pytest.approx((1.2, 4.0), rel=1e-4)

def _rows(alpha=0.5, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [dict(budget=b, tokens=float(t), params=float(b / (6 * t)),
                 eval_loss=float(0.4 * (np.log10(t) - np.log10(power_law(b, 1.0, alpha))) ** 2 + 3 + noise * rng.normal()))
            for b in (1e11, 1e12, 1e13, 1e14) for t in np.geomspace(0.1, 10, 5) * power_law(b, 1.0, alpha)]

def test_isoflop_optima_names_the_bad_budget():
    rows = _rows() + [dict(budget=5e15, tokens=t, params=1.0, eval_loss=l) for t, l in zip(X, np.linspace(3, 2, 5))]
    with pytest.raises(ValueError, match="budget 5e\\+15"): isoflop_optima(rows)
    with pytest.warns(UserWarning, match="left out"): opt = isoflop_optima(rows, strict=False)
    assert sorted(opt) == [1e11, 1e12, 1e13, 1e14]

def test_bootstrap_alpha_brackets_truth():
    b = bootstrap_alpha(_rows(0.55, noise=0.01), n=200)
    assert b["lo"] <= 0.55 <= b["hi"] and b["std"] < 0.05 and b["n"] + b["failed"] == 200

def test_bootstrap_refuses_when_optimum_is_never_bracketed():
    rows = [dict(budget=b, tokens=t, params=1.0, eval_loss=float(l)) for b in (1e11, 1e12, 1e13)
            for t, l in zip(X, np.linspace(3, 2, 5))]
    with pytest.raises(ValueError, match="not determined"): bootstrap_alpha(rows, n=20)

def test_forecast_needs_three_budgets():
    rows = [dict(r, spell_nll=1.0, spell_acc=0.5) for r in _rows() if r["budget"] < 1e13]
    with pytest.raises(ValueError, match="at least 3 budgets"): two_step_forecast(rows, 1e15)

def test_sweep_config_checks():
    with pytest.raises(ValueError, match="sizes"): SweepConfig(sizes=0)
    with pytest.raises(ValueError, match="multiple of seq_len"): SweepConfig(batch_tokens=500)
    with pytest.raises(ValueError, match="budgets"): SweepConfig(budgets=[-1.0])
