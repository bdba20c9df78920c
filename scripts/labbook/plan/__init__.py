"""The plan: everything the workflow decides while Snakemake builds the job graph, in Snakemake's
own Python, with the standard library only (a test imports it with numpy and torch made
unimportable). Step modules import the plan, never the reverse.

    from labbook.plan.config import load
    plan = load(config, validate=..., config_dir=...)   # every check, naming the failing key
    plan.jobs                                           # [(run, seed)], sweeps expanded
    plan.train_options(run), plan.limits(step, threads, run)
    plan.predict_candidates(run_dir)                    # which trained runs predict chooses from

rules/common.smk adapts it to Snakemake (paths, params, resources). config.py loads and checks
a config into a Plan; runs.py expands sweeps into runs and jobs; options.py defines every
step's options; files.py names the files each step writes; record.py is the report's job
record; datasets.py and kinds/ are the dataset kinds; checks.py what the schema cannot see;
limits.py what a job asks a cluster for; images.py the images predict reads; sources.py lists
and hashes source files; code.py finds which library code each step runs.

This file imports nothing: a step that imports one plan module does not depend on the others.
"""
