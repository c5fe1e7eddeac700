"""A small data pipeline over ``data/sales.csv``: extract, transform, check.

``extract`` keeps the rows that make sense (a count of units that is a
positive whole number) and tells downstream jobs how many it kept and
dropped; ``transform`` adds up revenue per region; ``check`` recomputes
the total from the raw file by another route and fails unless the result
agrees, so a bug in either step fails the workflow instead of shipping.
"""

import csv
import decimal
import json
import sys

from pinball_examples import DATA_DIR, run_dir

SOURCE = DATA_DIR / "sales.csv"
FIELDS = ("date", "region", "product", "units", "unit_price")


def extract() -> int:
    """Copy the valid rows of the source to ``clean.csv``; 1 if none are."""
    kept, dropped = [], 0
    with SOURCE.open(newline="") as source:
        for row in csv.DictReader(source):
            if row["units"].isdigit() and int(row["units"]) > 0:
                kept.append({key: row[key] for key in FIELDS})
            else:
                print(f"dropping {row['date']} {row['region']}: units {row['units']!r}")
                dropped += 1
    if not kept:
        print(f"no valid rows in {SOURCE}", file=sys.stderr)
        return 1

    with (run_dir() / "clean.csv").open("w", newline="") as clean:
        writer = csv.DictWriter(clean, FIELDS)
        writer.writeheader()
        writer.writerows(kept)
    print(f"PINBALL:EVENT_ATTR:rows={len(kept)}")
    print(f"PINBALL:EVENT_ATTR:dropped={dropped}", flush=True)
    return 0


def transform() -> None:
    """Revenue per region from ``clean.csv`` into ``revenue.json``."""
    revenue: dict[str, decimal.Decimal] = {}
    with (run_dir() / "clean.csv").open(newline="") as clean:
        for row in csv.DictReader(clean):
            amount = int(row["units"]) * decimal.Decimal(row["unit_price"])
            revenue[row["region"]] = revenue.get(row["region"], 0) + amount
    result = {region: str(total) for region, total in sorted(revenue.items())}
    (run_dir() / "revenue.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


def check() -> int:
    """0 if ``revenue.json`` adds up to the valid rows of the source."""
    result = json.loads((run_dir() / "revenue.json").read_text())
    reported = sum(decimal.Decimal(value) for value in result.values())

    expected = decimal.Decimal(0)
    regions = set()
    with SOURCE.open(newline="") as source:
        for row in csv.reader(source):
            if row[0] == "date" or not row[3].isdigit() or int(row[3]) <= 0:
                continue
            expected += int(row[3]) * decimal.Decimal(row[4])
            regions.add(row[1])

    if reported != expected or set(result) != regions:
        print(
            f"revenue.json says {reported} over {sorted(result)}, the source "
            f"gives {expected} over {sorted(regions)}",
            file=sys.stderr,
        )
        return 1
    print(f"checked: total revenue {reported} over {len(regions)} regions")
    return 0
