"""Metric labels stay bounded: a tenant explosion cannot explode Prometheus."""

from app.metrics import TenantLabels


def test_tenant_labels_are_capped_and_the_rest_is_other():
    labels = TenantLabels(cap=3)
    assert [labels(t) for t in ("a", "b", "c")] == ["a", "b", "c"]
    assert labels("d") == "other" and labels("e") == "other"
    assert labels("b") == "b"  # a tenant that got a label keeps it
