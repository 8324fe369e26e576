"""python workload: dicts, lists, strings and JSON, checked by computing each result two ways.

Usage: python3 pywork.py SCALE. Prints 'python-check ok'; any mismatch raises and exits non-zero.
The driver runs it with PYTHONMALLOC=malloc so that every object goes through the allocator under test.
"""
import json
import random
import sys

WORDS = [f"w{i:04d}" for i in range(3000)]


def make_records(rng, count):
    return [
        {
            "id": i,
            "name": f"user{rng.randrange(10**6)}",
            "tags": [rng.choice(WORDS) for _ in range(rng.randrange(1, 6))],
            "score": rng.random(),
            "nested": {"values": [i, i * 2, str(i)], "flag": i % 3 == 0},
        }
        for i in range(count)
    ]


def one_round(rng, count):
    records = make_records(rng, count)

    # JSON round trip.
    text = json.dumps(records)
    back = json.loads(text)
    if back != records:
        raise SystemExit("json round trip differs")

    # Tag counts two ways: a dict, and sorting.
    counts = {}
    for record in back:
        for tag in record["tags"]:
            counts[tag] = counts.get(tag, 0) + 1
    ordered = sorted(tag for record in records for tag in record["tags"])
    runs = {}
    for tag in ordered:
        runs[tag] = runs.get(tag, 0) + 1
    if runs != counts or sum(counts.values()) != len(ordered):
        raise SystemExit("tag counts differ")

    # Strings: join, split, format, slicing.
    names = sorted((record["name"] for record in records), key=lambda s: (len(s), s))
    joined = ",".join(names)
    if joined.split(",") != names:
        raise SystemExit("join/split differs")
    lines = [f"{r['id']:>8}|{r['name']:<12}|{r['score']:.6f}" for r in records]
    if sum(len(line) for line in lines) != len("\n".join(lines)) - (len(lines) - 1):
        raise SystemExit("line lengths differ")

    # Index of lists, sets, and a dict comprehension rebuilt.
    index = {}
    for record in records:
        index.setdefault(record["tags"][0], []).append(record["id"])
    if sum(len(ids) for ids in index.values()) != len(records):
        raise SystemExit("index lost records")
    seen = set()
    for ids in index.values():
        seen.update(ids)
    if len(seen) != len(records):
        raise SystemExit("set lost ids")
    inverted = {record_id: tag for tag, ids in index.items() for record_id in ids}
    if len(inverted) != len(records):
        raise SystemExit("inverted index differs")

    # Many short-lived tuples and small lists.
    pairs = sorted(((r["score"], r["id"]) for r in records), reverse=True)[: count // 10]
    if len(pairs) != count // 10:
        raise SystemExit("top pairs differ")
    return len(text) + len(joined)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, round(6 * scale))
    count = 20000 if scale >= 0.1 else max(500, int(200000 * scale))
    rng = random.Random(12345)
    total = 0
    for _ in range(rounds):
        total += one_round(rng, count)
    print(f"rounds {rounds}")
    print(f"characters {total}")
    print("python-check ok")


if __name__ == "__main__":
    main()
