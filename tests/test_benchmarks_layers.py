from benchmark_runs import run_quick


def test_quick_layers_benchmark_prints_json_summary():
    summary, _ = run_quick("layers", timeout=120)
    assert summary["benchmark"] == "layers"
    assert summary["quick"] is True
    layers = {row["layer"] for row in summary["rows"]}
    assert layers == {"PReLU", "ELU", "ELU(0.2)", "LeakyReLU", "SELU"}
    settings = {row["setting"] for row in summary["rows"]}
    # fwd+bwd on a large tensor and through a chain on a small one, XLA off
    # and on; and fit.
    assert len(settings) == 5
    assert sum(setting.startswith("20x16x32 jit=") for setting in settings) == 2
    expected_keys = {"kd_ms", "keras_ms", "relu_ms", "kd_over_keras", "kd_over_relu"}
    expected_keys |= {"kd_over_keras_cpu", "kd_over_relu_cpu"}
    for row in summary["rows"]:
        assert set(row) >= expected_keys
