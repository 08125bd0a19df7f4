from benchmark_runs import run_quick


def test_quick_dashboard_benchmark_prints_json_summary():
    summary, _ = run_quick("dashboard", timeout=300)
    assert summary["benchmark"] == "dashboard" and summary["quick"] is True
    assert {(row["provider"], row["route"]) for row in summary["rows"]} == {
        (provider, route)
        for provider in ("python", "rust")
        for route in ("overview", "overview/200", "site")
    }
    for row in summary["rows"]:
        assert row["median_s"] > 0 and row["load_s"] >= 0
