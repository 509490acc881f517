"""A price catalogue installed (or rolled back) with `ai-usage pricing
update` while a Python monitor runs is taken up by
`refresh_price_catalogue()`, without a restart."""

import json
from decimal import Decimal

from ai_usage_monitor import AIUsageMonitor
from conftest import need_program, run

# A LiteLLM price list in miniature, with a model no built-in table knows.
MODEL = "brand-new-llm"
INPUT_PER_TOKEN = "1e-06"
OUTPUT_PER_TOKEN = "4e-06"
LITELLM = {
    "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0,
                    "litellm_provider": "one of litellm's providers"},
    MODEL: {"input_cost_per_token": float(INPUT_PER_TOKEN),
            "output_cost_per_token": float(OUTPUT_PER_TOKEN),
            "litellm_provider": "newco", "mode": "chat"},
}


def test_refresh_price_catalogue_takes_up_an_install_and_a_rollback(records_dir, tmp_path):
    cli = need_program("ai-usage", "build the CLI (cargo build -p ai-usage-cli) and set AI_USAGE_BIN")
    m = AIUsageMonitor(records_dir)
    try:
        before = m.record_usage(MODEL, "qa", 1_000_000, 250_000)
        assert not before.priced and before.cost == 0.0
        assert m.refresh_price_catalogue() is False, "nothing installed yet"

        prices = tmp_path / "model_prices_and_context_window.json"
        prices.write_text(json.dumps(LITELLM))
        r = run([cli, "--dir", str(records_dir), "pricing", "update", "--from", str(prices)])
        assert r.returncode == 0, r.stderr

        assert m.refresh_price_catalogue() is True
        assert m.refresh_price_catalogue() is False, "no change since the last look"
        after = m.record_usage(MODEL, "qa", 1_000_000, 250_000)
        want = Decimal(INPUT_PER_TOKEN) * 1_000_000 + Decimal(OUTPUT_PER_TOKEN) * 250_000
        assert after.priced and after.currency == "USD"
        assert Decimal(str(after.cost)) == want
        assert m.health()["pricing_catalogue"]["kind"] == "updated"

        # Back to the built-in prices: the model is unknown again.
        r = run([cli, "--dir", str(records_dir), "pricing", "update", "--rollback"])
        assert r.returncode == 0, r.stderr
        assert m.refresh_price_catalogue() is True
        again = m.record_usage(MODEL, "qa", 1_000_000, 250_000)
        assert not again.priced and again.cost == 0.0
        assert m.health()["pricing_catalogue"]["kind"] == "built-in"
    finally:
        m.shutdown()
