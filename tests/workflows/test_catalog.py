"""What lets others reuse and find labbook: an MIT license, and the Snakemake workflow catalog's
file in the documented format, with claims the repository backs."""

import re

import yaml
from builders import REPO


def test_license_is_mit():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_catalog_file_has_the_documented_keys_and_true_claims():
    settings = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = settings["usage"]
    assert set(usage) <= {"mandatory-flags", "software-stack-deployment"}
    assert set(usage["mandatory-flags"]) == {"desc", "flags"}
    deployment = usage["software-stack-deployment"]
    assert set(deployment) <= {"conda", "apptainer", "apptainer+conda", "report"}
    assert all(isinstance(value, bool) for value in deployment.values())
    rules = "\n".join(path.read_text() for path in (REPO / "rules").glob("*.smk"))
    # --sdm conda: every rule names an env (workflows/test_envs.py checks the envs themselves)
    assert deployment["conda"]
    assert len(re.findall(r"^rule \w+:", rules, re.M)) == len(re.findall(r"^    conda:", rules, re.M)) > 0
    assert deployment["report"] and "report(" in rules  # figures registered for snakemake --report
    assert not deployment["apptainer"] and "container:" not in rules
    # what the catalog's crawler looks for to list a repository at all
    readme = (REPO / "README.md").read_text().lower()
    assert "snakemake" in readme and "workflow" in readme and (REPO / "Snakefile").is_file()
