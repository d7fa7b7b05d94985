// `bun run bench:floor`: the CPU a bare Bun relay (bench/relay.ts) spends per transaction, beside pgbun's and
// PgBouncer's, at points where every client has its own server connection. The relay parses nothing and pools
// nothing, so its figure is what Bun's sockets cost before pgbun does any work: the floor under pgbun's own cost.

import { LOGIN, resetTpcb, startBenchDatabase } from "./database.ts";
import { runMatrix, warmUp, type MatrixTarget } from "./matrix.ts";
import type { PgbenchPoint } from "./pgbench.ts";
import { layout, type TargetResult } from "./report.ts";
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
const poolers: RunningPooler[] = [await startRelay(pg.port), await startPgbunTarget(pg.port, settings)];
if (bouncerBin) poolers.push(await startPgbouncer(bouncerBin, pg.port, secret, settings));
else console.log("PgBouncer not found (apt-get install -y pgbouncer): measuring the relay and pgbun only");

const targets: MatrixTarget[] = poolers.map((p) => ({ key: p.name, port: p.port, pid: p.pid, exclude: () => null, alive: p.alive, logTail: p.logTail }));
const options = {
  rounds: ROUNDS,
  seconds: () => SECONDS,
  ...LOGIN,
  beforeTpcb: () => resetTpcb(pg),
};
await warmUp(targets, options, 1, ["simple", "extended"]);
const results = await runMatrix(POINTS, targets, options);
for (const p of poolers) await p.stop();
await pg.stop();

const names = poolers.map((p) => p.name);
const fixed = (x: number | null | undefined, digits: number) => (x == null ? "-" : x.toFixed(digits));
const row = (p: (typeof results)[number], value: (t: TargetResult | undefined) => string) => names.map((n) => value(p.targets[n]));
console.log(`\nPooler CPU per transaction, µs (median of ${ROUNDS} rounds of ${SECONDS} s; pool size 20, md5 logins), and median TPS:\n`);
console.log(
  layout(
    ["point", ...names.map((n) => `${n} µs`), ...names.map((n) => `${n} TPS`)],
    results.map((p) => [p.name, ...row(p, (t) => fixed(t?.medianCpuUsPerXact, 1)), ...row(p, (t) => fixed(t?.medianTps, 0))]),
  ),
);
