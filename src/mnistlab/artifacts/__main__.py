"""``python -m mnistlab.artifacts``: print the table of artifacts (as in the README)."""

from mnistlab.artifacts import markdown_table

print(markdown_table())
