"""`make fuzz` runs the hostile-input property in several processes at once: their statistics as one.

    python -m tests.helpers.fuzz_stats OUT SHARD_FILE...   # writes OUT, prints it
"""

from __future__ import annotations

import json
import sys


def merged(documents: list[dict]) -> dict:
    """Counts summed (per reason too), seeds and shards listed, memory per shard kept apart."""
    total: dict = {"shards": [], "rss_mb": {}}
    for document in documents:
        shard = document.get("shard", "1/1")
        total["shards"].append({"shard": shard, "seed": document.get("seed"), "cases": document.get("cases")})
        total["rss_mb"][shard] = document.get("rss_mb", {})
        for name, value in document.items():
            if name in ("shard", "seed", "rss_mb"):
                continue
            if isinstance(value, dict):
                into = total.setdefault(name, {})
                for reason, count in value.items():
                    into[reason] = into.get(reason, 0) + count
            else:
                total[name] = total.get(name, 0) + value
    return total


def main(argv: list[str]) -> None:
    out, *parts = argv
    documents = []
    for path in parts:
        with open(path, encoding="utf-8") as handle:
            documents.append(json.load(handle))
    text = json.dumps(merged(documents), ensure_ascii=False)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
