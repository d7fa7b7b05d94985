// `bun run bench:floor`: the CPU a bare Bun relay (bench/relay.ts) spends per transaction, beside pgbun's and
// PgBouncer's, at points where every client has its own server connection. The relay parses nothing and pools
// nothing, so its figure is what Bun's sockets cost before pgbun does any work: the floor under pgbun's own cost.

import { pointName } from "./plan.ts";
import { median } from "./report.ts";
import { DB, PASSWORD, startBenchDatabase, USER } from "./database.ts";
import { runPgbench, type PgbenchPoint } from "./pgbench.ts";
import { cpuTimeMs } from "./system.ts";
import { findPgbouncer, startPgbouncer, startPgbunTarget, startRelay, type RunningPooler } from "./targets.ts";

const ROUNDS = 3;
const SECONDS = 3;
const POINTS: PgbenchPoint[] = [
  { script: "select-only", mode: "simple", clients: 10 },
  { script: "select-only", mode: "extended", clients: 10 },
  { script: "tpcb", mode: "simple", clients: 10 },
];

process.on("SIGINT", () => process.exit(130));

const { pg, secret } = await startBenchDatabase({ maxConnections: 200, scale: 10, auth: "md5" });
const settings = { poolSize: 20, maxClientConn: 200, auth: "md5" as const };
const bouncerBin = findPgbouncer();
const targets: RunningPooler[] = [await startRelay(pg.port), await startPgbunTarget(pg.port, settings)];
if (bouncerBin) targets.push(await startPgbouncer(bouncerBin, pg.port, secret, settings));
else console.log("PgBouncer not found (apt-get install -y pgbouncer): measuring the relay and pgbun only");

const login = { user: USER, password: PASSWORD, db: DB };
// Unmeasured first runs: JIT, caches and the poolers' server connections warm up.
for (const t of targets) for (const p of POINTS) await runPgbench(p, 1, { port: t.port, ...login });

const usPerXact = new Map<string, number[]>();
const tps = new Map<string, number[]>();
for (let round = 1; round <= ROUNDS; round++) {
  for (const p of POINTS) {
    if (p.script === "tpcb") {
      await pg.psql("VACUUM pgbench_branches, pgbench_tellers");
      await pg.psql("TRUNCATE pgbench_history");
    }
    for (const t of targets) {
      const before = cpuTimeMs(t.pid);
      const r = await runPgbench(p, SECONDS, { port: t.port, ...login });
      const after = cpuTimeMs(t.pid);
      if (!r.ok || before === null || after === null || !r.transactions) {
        console.log(`[${round}/${ROUNDS}] ${pointName(p)} through ${t.name} failed: ${r.error ?? "no CPU reading"}`);
        continue;
      }
      const us = ((after - before) * 1000) / r.transactions;
      push(usPerXact, key(p, t), us);
      push(tps, key(p, t), r.tps!);
      console.log(`[${round}/${ROUNDS}] ${pointName(p).padEnd(18)} ${t.name.padEnd(10)} ${r.tps!.toFixed(0).padStart(6)} tps  ${us.toFixed(1).padStart(6)} µs CPU per transaction`);
    }
  }
}
for (const t of targets) await t.stop();
await pg.stop();

const names = targets.map((t) => t.name);
console.log(`\nPooler CPU per transaction, µs (median of ${ROUNDS} rounds of ${SECONDS} s; pool size 20, md5 logins), and median TPS:\n`);
console.log(`| point | ${names.map((n) => `${n} µs`).join(" | ")} | ${names.map((n) => `${n} TPS`).join(" | ")} |`);
console.log(`|---|${names.map(() => "---:").join("|")}|${names.map(() => "---:").join("|")}|`);
for (const p of POINTS) {
  const cells = (m: Map<string, number[]>, digits: number) => targets.map((t) => median(m.get(key(p, t)) ?? [])?.toFixed(digits) ?? "-");
  console.log(`| ${pointName(p)} | ${cells(usPerXact, 1).join(" | ")} | ${cells(tps, 0).join(" | ")} |`);
}

function key(p: PgbenchPoint, t: RunningPooler): string {
  return `${pointName(p)}\0${t.name}`;
}
function push(m: Map<string, number[]>, k: string, v: number): void {
  const list = m.get(k) ?? [];
  list.push(v);
  m.set(k, list);
}
