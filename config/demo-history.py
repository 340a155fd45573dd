#!/usr/bin/env python3
"""Writes data/demo-history.csv: two years of a small bakery chain's legacy program (400
members, their purchases, a few refunds, opening balances), for the README's analytics
walk-through (`loyalty import data/demo-history.csv --points none`). Deterministic: the same
file on every run. Members buy at their own rate; about a third drift away after a while."""
import datetime
import random

random.seed(2026)
rows = ["type,member_id,occurred_at,store,transaction_id,amount,category,refund_id,points,balance_id,expires_at"]
stores = ["paris-marais", "paris-opera"]
categories = ["pastry", "coffee", "coffee-beans"]
for m in range(400):
    member = f"hist-{m:03d}"
    start = random.randint(0, 540)  # enrolled between January 2024 and June 2025
    base = datetime.date(2024, 1, 1)
    enrolled = base + datetime.timedelta(days=start)
    rows.append(f"member,{member},{enrolled},,,,,,,,")
    gap = random.choice([7, 10, 14, 21, 30, 45, 60])
    lapses = random.random() < 0.35
    stop = start + (random.randint(60, 300) if lapses else 10_000)
    t = start + random.randint(0, 20)
    n = 0
    end = (datetime.date(2026, 11, 1) - base).days
    while t < min(stop, end):
        amount = f"{random.randint(3, 40)}.{random.choice(['00', '50', '90'])}"
        rows.append(
            f"purchase,{member},{base + datetime.timedelta(days=t)},{random.choice(stores)},"
            f"h{m}-{n},{amount},{random.choice(categories)},,,,"
        )
        if random.random() < 0.03:
            rows.append(
                f"refund,{member},{base + datetime.timedelta(days=t + 1)},{rows[-1].split(',')[3]},"
                f"h{m}-{n},1.00,,hr{m}-{n},,,"
            )
        n += 1
        t += max(1, int(random.expovariate(1 / gap)))
    if random.random() < 0.8:
        rows.append(f"balance,{member},2026-11-01,,,,,,{random.randint(20, 900)},,2027-10-31")
import os

os.makedirs("data", exist_ok=True)
with open("data/demo-history.csv", "w") as f:
    f.write("\n".join(rows) + "\n")
print(f"{len(rows) - 1} rows")
