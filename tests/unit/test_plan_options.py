"""The options' one definition (labbook/plan/options.py): the README's tables of training,
analysis and predict options are generated from it, so the docs cannot drift."""

import pytest
from builders import REPO
from labbook.plan import options


@pytest.mark.parametrize(
    "kind", [options.TrainOptions, options.AnalysisOptions, options.PredictOptions], ids=lambda k: k.__name__
)
def test_the_readme_lists_each_kind_of_options_from_its_one_definition(kind):
    """The README's table of each kind of options is options_table(kind) verbatim."""
    readme = (REPO / "README.md").read_text()
    assert options.options_table(kind) in readme, "regenerate with: python -m labbook.plan.options"
