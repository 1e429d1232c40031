"""The console's SVG charts: well-formed, scaled, with text for screen readers, escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from app.console.charts import bar_chart, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: object) -> ET.Element:
    return ET.fromstring(str(svg))  # noqa: S314 - our own output


def test_a_bar_chart_has_one_titled_bar_per_day_scaled_to_the_maximum():
    days = ["2026-05-01", "2026-05-02", "2026-05-03"]
    root = parse(bar_chart(days, [0, 5, 10], title="Messages per day"))
    assert root.get("role") == "img"
    label = root.get("aria-label")
    assert label == "Messages per day, 2026-05-01 to 2026-05-03: 15 in all, at most 10 a day, 10 today"
    bars = root.findall(f"{SVG}g/{SVG}rect")
    assert [bar.find(f"{SVG}title").text for bar in bars] == [
        "2026-05-01: 0",
        "2026-05-02: 5",
        "2026-05-03: 10",
    ]
    heights = [float(bar.get("height")) for bar in bars]
    assert heights[0] == 0 and heights[2] == 2 * heights[1] > 0
    assert "10" in [t.text for t in root.iter(f"{SVG}text")]  # the axis shows the maximum


def test_an_all_zero_chart_draws_flat_bars_without_dividing_by_zero():
    root = parse(bar_chart(["d1", "d2"], [0, 0], title="429s"))
    assert all(float(bar.get("height")) == 0 for bar in root.iter(f"{SVG}rect"))


def test_a_sparkline_spans_its_width_and_puts_the_maximum_on_top():
    root = parse(sparkline([0, 4, 2], label="acme", width=100, height=20))
    points = [tuple(map(float, p.split(","))) for p in root.find(f"{SVG}polyline").get("points").split()]
    assert [x for x, _ in points] == [0, 50, 100]
    assert points[1][1] < points[2][1] < points[0][1]  # SVG's y grows downwards
    assert root.get("aria-label") == root.find(f"{SVG}title").text == "acme"


def test_text_in_a_chart_is_escaped():
    chart = str(bar_chart(["<day>"], [1], title='a "title" & <b>'))
    sparkline_svg = str(sparkline([1], label="<script>"))
    assert "<b>" not in chart and "<day>" not in chart and "<script>" not in sparkline_svg
    parse(chart)
    parse(sparkline_svg)
