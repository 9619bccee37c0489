from conduit.scanning.findings import REGISTRY, Severity
from conduit.scanning.scoring import score


def _finding(check_id: str, severity: Severity | None = None):
    return REGISTRY[check_id].finding(evidence="x", location="tools[0]", severity=severity)


def test_no_findings_scores_a() -> None:
    result = score([], partial=False)
    assert (result.total, result.grade) == (100, "A")
    assert result.breakdown["runtime"] is None


def test_a_critical_finding_caps_the_grade_at_f() -> None:
    result = score([_finding("CND-TR-009"), _finding("CND-PI-002")], partial=False)
    assert result.grade == "F"
    assert result.capped_by == "a critical finding"


def test_a_high_finding_caps_the_grade_at_c() -> None:
    result = score([_finding("CND-CMP-003", Severity.high)], partial=False)
    assert result.grade == "C"
    assert result.total <= 79


def test_a_partial_scan_is_never_graded_a() -> None:
    assert score([], partial=True).grade == "B"


def test_runtime_is_an_input_and_weighs_in() -> None:
    assert score([], partial=False, runtime=None).breakdown["runtime"] is None
    low = score([], partial=False, runtime=20)
    assert low.breakdown["runtime"] == 20
    assert low.total < 100


def test_categories_not_observed_are_null() -> None:
    result = score([], partial=False, applicable={"security", "compliance"})
    assert result.breakdown["auth"] is None
    assert result.breakdown["performance"] is None


def test_repeated_findings_of_one_check_cost_less_each_time() -> None:
    one = score([_finding("CND-CMP-001")], partial=False).breakdown["compliance"]
    many = score([_finding("CND-CMP-001")] * 10, partial=False).breakdown["compliance"]
    assert one is not None
    assert many is not None
    assert 100 - many < 10 * (100 - one)
