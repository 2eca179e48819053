// One process's argon2id verifications with @node-rs/argon2, for bench/argon2/compare.sh.
// usage: node verify.js MODULE_DIR M T P SECONDS [COUNT]
// Hashes one password at (M KiB, T, P), then verifies it with verifySync in a loop for SECONDS
// (or exactly COUNT times) and prints {"n":..,"secs":..,"cpu_s":..} on one line (cpu_s: the
// process's user + system CPU time over the loop).
'use strict';
const [dir, m, t, p, secs, count] = process.argv.slice(2);
const { hashSync, verifySync, Algorithm } = require(require('path').join(dir, 'node_modules/@node-rs/argon2'));
const password = 'bench-password-123';
const hash = hashSync(password, {
  memoryCost: Number(m), timeCost: Number(t), parallelism: Number(p), algorithm: Algorithm.Argon2id,
});
const limit = count === undefined ? Infinity : Number(count);
let n = 0;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
while (n < limit && (count !== undefined || elapsed() < Number(secs))) {
  if (!verifySync(hash, password)) throw new Error('the benchmark password must verify');
  n++;
}
const secsDone = elapsed();
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ n, secs: secsDone, cpu_s: (cpu.user + cpu.system) / 1e6 }));
