"""One process's argon2id verifications with argon2-cffi, for bench/argon2/compare.sh.

usage: python verify.py M T P SECONDS [COUNT]
argon2-cffi calls the reference C implementation (phc-winner-argon2). Hashes one password at
(M KiB, T, P), verifies it in a loop for SECONDS (or exactly COUNT times), prints
{"n":..,"secs":..,"cpu_s":..} on one line (cpu_s: the process's CPU time over the loop).
"""
import json
import sys
import time

from argon2 import PasswordHasher, Type

m, t, p, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
count = int(sys.argv[5]) if len(sys.argv) > 5 else None
ph = PasswordHasher(time_cost=t, memory_cost=m, parallelism=p, type=Type.ID)
password = "bench-password-123"
h = ph.hash(password)
n, t0, cpu0 = 0, time.perf_counter(), time.process_time()
while (count is None and time.perf_counter() - t0 < secs) or (count is not None and n < count):
    ph.verify(h, password)
    n += 1
secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
print(json.dumps({"n": n, "secs": secs, "cpu_s": cpu}))
