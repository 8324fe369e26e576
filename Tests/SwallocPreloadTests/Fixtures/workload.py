# Python workload for the preload tests: a million-entry dict, big sorts and a JSON round trip. Each part checks
# itself and prints one line of results that the test compares with known values; the last line is
# `python workload ok`. Deterministic: its own generator, no hash-seed dependence in any printed value.
import hashlib
import json


def numbers(seed, count):
    """A 64-bit LCG (Knuth's MMIX constants), top 31 bits."""
    state = seed
    result = []
    for _ in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        result.append(state >> 33)
    return result


def dict_part():
    table = {}
    for i in range(1_000_000):
        table[f"key-{i}"] = i * 7 % 1_000_003
    total = sum(table.values())
    for i in range(0, 1_000_000, 3):
        del table[f"key-{i}"]
    assert len(table) == 666_666, len(table)
    assert table["key-1"] == 7 and "key-3" not in table
    # Rebuild through a comprehension: another million-entry table, from the survivors.
    inverted = {value: key for key, value in table.items()}
    print(f"dict {total} {len(table)} {len(inverted)} {sum(table.values())}")


def sort_part():
    values = numbers(12345, 1_000_000)
    ordered = sorted(values)
    assert all(a <= b for a, b in zip(ordered, ordered[1:]))
    assert len(ordered) == len(values) and sum(ordered) == sum(values)
    words = sorted(f"{v:x}" for v in values[:300_000])
    assert all(a <= b for a, b in zip(words, words[1:]))
    sample = sum(v * i for i, v in enumerate(ordered[::997])) % (1 << 61)
    print(f"sort {ordered[0]} {ordered[-1]} {sample} {words[0]} {words[-1]}")


def json_part():
    structure = {
        "items": [
            {"id": i, "name": f"item {i}", "tags": [f"t{i % 7}", f"u{i % 11}"], "score": i / 7, "ok": i % 2 == 0}
            for i in range(200_000)
        ],
        "meta": {"count": 200_000, "nested": [[j] * 5 for j in range(1000)]},
    }
    text = json.dumps(structure, sort_keys=True)
    back = json.loads(text)
    assert back == structure
    again = json.dumps(back, sort_keys=True)
    assert again == text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    print(f"json {len(text)} {digest}")


dict_part()
sort_part()
json_part()
print("python workload ok")
