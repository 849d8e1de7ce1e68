from __future__ import annotations

from pathlib import Path

from governance.monitoring.tables import tables_markdown


def test_docs_table_reference_is_generated_from_the_declarations() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "monitoring.md").read_text()
    begin = "<!-- BEGIN generated: governance.monitoring.tables.tables_markdown() -->\n"
    section = doc[doc.index(begin) + len(begin) : doc.index("<!-- END generated -->")]
    assert section == tables_markdown() + "\n"
