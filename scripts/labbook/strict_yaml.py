"""Config files read again, strictly: Snakemake's own YAML parse keeps the last of two equal keys
silently. Runs in Snakemake's own Python (which has PyYAML) before the plan is made."""

import yaml


def refuse_duplicate_keys(paths):
    """Snakemake's YAML parse keeps the last of two equal keys silently; a config is read again
    here with a loader that stops naming the key, the file and the line."""

    class Strict(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    mark = key_node.start_mark
                    raise ValueError(
                        f"{mark.name}, line {mark.line + 1}: key {key!r} is given twice "
                        "in one mapping; keep one"
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    for path in paths:
        with open(path, encoding="utf-8") as text:
            yaml.load(text, Loader=Strict)
