"""Metric labels have bounded values and never carry an account, key, user or secret."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from keyledger.adapters.ratelimit import Allowance
from keyledger.authn.authenticator import AuthResult, Principal
from keyledger.observability.metrics import LABEL_NAMES, WebMetrics
from keyledger.policies.decision import Decision
from keyledger.web.auth import Verdict

PRINCIPAL = Principal(
    account_id="acct5ecret1d",
    account_key_id="00aa11bb22cc33dd",
    secret_key_id="00ee11ff22aa33bb",
    account_name="Private Corp",
    key_name="private-key-name",
    user_id="user5ecret1d",
    user_name="Private Person",
    role="Owner",
)


def rendered(metrics: WebMetrics) -> str:
    metrics.flush()
    return generate_latest(metrics.registry).decode()


def samples(metrics: WebMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(rendered(metrics)):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_every_label_name_is_one_of_the_bounded_few() -> None:
    metrics = WebMetrics(CollectorRegistry())
    for family in metrics.registry.collect():
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= LABEL_NAMES, sample


def test_an_admitted_request_counts_without_naming_who_made_it() -> None:
    metrics = WebMetrics(CollectorRegistry())
    metrics.decided(Verdict(AuthResult(Decision.allow("engine"), PRINCIPAL)))
    metrics.key_verified(cached=True)
    metrics.request("GET", "/v1/api-keys/<name>", 200, 0.00004)

    text = rendered(metrics)
    for value in PRINCIPAL.__dict__.values():
        if value is not None:
            assert str(value) not in text
    assert samples(metrics, "keyledger_auth_decisions_total") == {
        (("policy", "none"), ("result", "allowed"), ("status", "200")): 1.0
    }


def test_a_denial_is_labelled_by_its_policy_and_status() -> None:
    metrics = WebMetrics(CollectorRegistry())
    denial = Decision.deny("source_ip_allowed", "source 10.9.9.9 not in 10.0.0.0/24", 403)
    metrics.decided(Verdict(AuthResult(denial, None)))

    assert samples(metrics, "keyledger_auth_decisions_total") == {
        (("policy", "source_ip_allowed"), ("result", "denied"), ("status", "403")): 1.0
    }
    assert "10.9.9.9" not in rendered(metrics)


def test_a_rate_limited_request_is_a_denial_by_the_rate_limit() -> None:
    metrics = WebMetrics(CollectorRegistry())
    verdict = Verdict(AuthResult(Decision.allow("engine"), PRINCIPAL), Allowance(False, 0, 30))
    metrics.decided(verdict)

    assert samples(metrics, "keyledger_auth_decisions_total") == {
        (("policy", "rate_limit"), ("result", "denied"), ("status", "429")): 1.0
    }
    assert samples(metrics, "keyledger_rate_limited_total") == {(): 1.0}


def test_a_throttled_request_counts_as_throttled() -> None:
    metrics = WebMetrics(CollectorRegistry())
    metrics.decided(Verdict(AuthResult(Decision.deny("failure_throttle", "too many", 429), None)))
    assert samples(metrics, "keyledger_auth_throttled_total") == {(): 1.0}


def test_an_unknown_method_is_counted_as_other() -> None:
    metrics = WebMetrics(CollectorRegistry())
    metrics.request("BREW", "unmatched", 401, 0.001)
    assert samples(metrics, "keyledger_http_requests_total") == {
        (("method", "other"), ("route", "unmatched"), ("status", "401")): 1.0
    }


def test_durations_land_in_the_buckets_histogram_observe_would_choose() -> None:
    metrics = WebMetrics(CollectorRegistry())
    for seconds in (0.0004, 0.0005, 0.03, 20.0):
        metrics.request("GET", "/v1/", 200, seconds)
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples(
            metrics, "keyledger_http_request_duration_seconds_bucket"
        ).items()
    }
    assert buckets["0.0005"] == 2.0  # le is inclusive
    assert buckets["0.025"] == 2.0
    assert buckets["0.05"] == 3.0
    assert buckets["10.0"] == 3.0
    assert buckets["+Inf"] == 4.0
    (total,) = samples(metrics, "keyledger_http_request_duration_seconds_sum").values()
    assert abs(total - 20.0309) < 1e-9


def test_counts_reach_the_library_only_when_flushed() -> None:
    metrics = WebMetrics(CollectorRegistry(), flush_every=3600)
    metrics.key_verified(cached=False)
    assert samples(metrics, "keyledger_key_verifications_total") == {(("cache", "miss"),): 1.0}


def test_every_metric_keyledger_exports_is_documented_for_operators() -> None:
    """In docs/operators.md, "Observing it" (it was the README's section before the split)."""
    from keyledger.observability import collectors
    from tests.unit.test_alert_rules import documented_metrics

    families = WebMetrics(CollectorRegistry()).registry.collect()
    exported = {f.name + "_total" if f.type == "counter" else f.name for f in families}
    source = Path(collectors.__file__).read_text()
    exported |= set(re.findall(r'gauge\(\s*"(keyledger_[a-z_]+)"', source))
    exported |= {f"{n}_total" for n in re.findall(r'counter\(\s*"(keyledger_[a-z_]+)"', source)}
    assert len(exported) >= 15
    assert exported <= documented_metrics(), exported - documented_metrics()
