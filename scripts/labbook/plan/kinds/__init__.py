"""The dataset kinds, one module each: what the workflow knows of a kind while it builds the job
graph. plan/datasets.py lists them; this file imports none, so a step that needs one kind's facts
does not depend on the others' code."""
