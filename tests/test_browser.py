"""The lab report in a real browser: headless Chromium opens it from disk with networking off."""

import browser
import pytest
import report_demo
from test_report import SECTIONS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not browser.available(), reason=f"no Chromium at {browser.CHROMIUM}"),
]


@pytest.fixture(scope="module")
def demo_report(demo_data, tmp_path_factory):
    return report_demo.build(demo_data, tmp_path_factory.mktemp("report"))


def test_report_renders_offline_in_chromium(demo_report, tmp_path):
    screenshot = tmp_path / "report.png"
    seen = browser.inspect(demo_report, screenshot)
    print(f"\nscreenshot of the report's first screen: {screenshot}")
    assert seen["console_errors"] == []
    assert seen["images"] and all(image["complete"] and image["width"] > 0 for image in seen["images"])
    # samples, counts, curves, accuracy, then four figures per analyzed job (3 jobs)
    assert len(seen["images"]) == 4 + 4 * 3
    assert seen["headings"][0] == "Fabricated runs" and seen["headings"][1:] == SECTIONS
    assert seen["external"] == []  # nothing points at the network
    assert all(url.startswith("file://") for url in seen["requests"])
    assert screenshot.stat().st_size > 10_000
