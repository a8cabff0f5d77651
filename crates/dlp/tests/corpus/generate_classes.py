#!/usr/bin/env python3
"""Regenerates data_classes.txt: ordinary text that looks like the data
classes (card numbers, IBANs, seed phrases) without being any: order and
tracking numbers, phone numbers, ISBNs, UUIDs, timestamps, integrity hashes,
git SHAs. Deterministic. Run from this directory: python3 generate_classes.py
"""
import base64, hashlib, random, uuid

rng = random.Random(4242)
out = []

def digits(n):
    return "".join(rng.choice("0123456789") for _ in range(n))

out.append("# Orders and invoices")
for i in range(40):
    out.append(f"Order #{digits(10)} placed 2025-{rng.randint(1,12):02d}-{rng.randint(1,28):02d}; "
               f"Amazon order {rng.choice(['111','112','113','114'])}-{digits(7)}-{digits(7)}; "
               f"invoice INV-{2024 + i % 3}-{digits(6)}; ref ORD-{digits(4)}-{digits(4)}-{digits(4)}")
out.append("# Shipment tracking")
for i in range(30):
    out.append(f"USPS 9400 1{digits(3)} {digits(4)} {digits(4)} {digits(4)} {digits(2)}; "
               f"UPS 1Z{digits(3)}AA1{digits(10)}; FedEx {digits(12)}; DHL JJD{digits(18)}")
out.append("# Phone numbers")
for i in range(40):
    out.append(f"+1 ({rng.randint(201,989)}) 555-{digits(4)}, +44 20 {digits(4)} {digits(4)}, "
               f"+49 30 {digits(6)}, +33 1 {digits(2)} {digits(2)} {digits(2)} {digits(2)}, "
               f"+81 3-{digits(4)}-{digits(4)}, tel:+1{digits(10)}")
out.append("# ISBNs")
def isbn13():
    d = "978" + digits(9)
    c = (10 - sum(int(x) * (1 if k % 2 == 0 else 3) for k, x in enumerate(d)) % 10) % 10
    return d + str(c)
for i in range(40):
    b = isbn13()
    out.append(f"ISBN {b[:3]}-{b[3]}-{b[4:7]}-{b[7:12]}-{b[12]} (ISBN-13 {b}), ISBN-10 {digits(9)}X")
out.append("# UUIDs and timestamps")
for i in range(60):
    t = 1700000000 + rng.randint(0, 80000000)
    out.append(f"id={uuid.UUID(int=rng.getrandbits(128), version=4)} ts={t} ts_ms={t}{digits(3)} "
               f"ts_ns={t}{digits(9)} at={2025}-{rng.randint(1,12):02d}-{rng.randint(1,28):02d}T"
               f"{rng.randint(0,23):02d}:{rng.randint(0,59):02d}:{rng.randint(0,59):02d}.{digits(6)}Z "
               f"snowflake={rng.randint(10**17, 2**63 - 1)} u64={rng.getrandbits(64)}")
out.append("# Hashes")
for i in range(40):
    h = hashlib.sha512(f"pkg{i}".encode()).digest()
    sha = hashlib.sha1(f"commit{i}".encode()).hexdigest()
    out.append(f"\"integrity\": \"sha512-{base64.b64encode(h).decode()}\", commit {sha} ({sha[:7]}), "
               f"sha256:{hashlib.sha256(sha.encode()).hexdigest()}")
out.append("# Amounts and versions")
for i in range(40):
    out.append(f"total {rng.randint(1,99999)}.{digits(2)} EUR, account no. {digits(10)}, sort code {digits(2)}-{digits(2)}-{digits(2)}, "
               f"pi {3.14159265358979 * rng.random():.15f}, version 1.{rng.randint(0,99)}.{rng.randint(0,999)}")
open("data_classes.txt", "w").write("\n".join(out) + "\n")
