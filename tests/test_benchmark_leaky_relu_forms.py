from benchmark_runs import positive_finite, run_quick

FORMS = {
    "keras",
    "kd",
    "branch only",
    "x*where(x>0,1,s)",
    "maximum(x,s*x)",
    "where(x>0,x,s*x)",
}


def test_quick_leaky_relu_forms_benchmark_prints_json_summary():
    summary, table = run_quick("leaky_relu_forms", timeout=120)
    assert summary["benchmark"] == "leaky_relu_forms"
    assert summary["quick"] is True
    settings = {row["setting"] for row in summary["rows"]}
    assert settings == {"20x16x32", "1x64x32"}  # a chain, and one layer
    for setting in settings:
        rows = [row for row in summary["rows"] if row["setting"] == setting]
        assert {row["form"] for row in rows} == FORMS
        (keras_row,) = [row for row in rows if row["form"] == "keras"]
        assert keras_row["over_keras"] == 1.0
        assert keras_row["us_per_call_over_keras"] == 0.0
        for row in rows:
            assert positive_finite(row["ms"]) and positive_finite(row["over_keras"])
    assert len(table) == 3 + len(summary["rows"])  # title, header, rule, rows
