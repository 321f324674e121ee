"""The parameters: declared once (`catalog`), parsed (`parse`), and the template surface generated from
them (`metadata` for metadata.json, `docs` for the README's table). Imports nothing else of ours."""
