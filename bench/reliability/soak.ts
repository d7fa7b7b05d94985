// Entry of `bun run soak`: many clients through pgbun for a long time with backends killed; prints a JSON summary.

import { runSoak, type SoakSummary } from "../../tests/reliability/soak-run.ts";
import { ensureFileLimit } from "../system.ts";
import { tolerateDriverBug } from "./driver-guard.ts";
import { decimal, parseOptions, whole } from "./options.ts";

process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

const USAGE = `Usage: bun run soak [-- --duration SECONDS --clients N ...]

Runs clients through pgbun in transaction mode: postgres.js with and without prepared statements, raw-protocol
pipelines, slow readers, clients that vanish mid-transaction, and the lost-write ledger while a backend is killed
every 0.2 s. Every answer is checked. Samples pgbun's RSS from /proc and prints a JSON summary: transactions, errors,
lost and phantom writes, RSS over time and whether it stayed flat. Exits 1 when anything was found.`;

const v = parseOptions(Bun.argv.slice(2), USAGE, {
  duration: { default: "600", help: "seconds to run" },
  clients: { default: "1000", help: "client connections" },
  "pool-size": { default: "20", help: "pgbun's default_pool_size" },
  seed: { default: "1", help: "seed of every client's choices" },
  "think-ms": { default: "50,450", help: "each client's pause between operations, MIN,MAX" },
  "op-timeout": { default: "30", help: "seconds before an operation with no outcome counts as hung" },
  ramp: { help: "seconds over which clients start (default a tenth of the run, at most 10)" },
  "ledger-writers": { default: "20", help: "lost-write ledger writers (0: no ledger)" },
  "ledger-driver-every": { default: "4", help: "one ledger writer in this many uses postgres.js (0: none)" },
  "kill-every-ms": { default: "200", help: "pg_terminate_backend on a random server this often (0: never)" },
  "proxy-fault-every-ms": { default: "1000", help: "a fault proxy resets a server connection this often (0: no proxy)" },
  "rss-every": { default: "5", help: "seconds between RSS samples" },
  "flat-ratio": { default: "1.2", help: "RSS is flat when the last quarter's median is within this ratio of the second's" },
  "prepare-unnamed": { boolean: true, help: "run pgbun with prepare_unnamed = true" },
  quiet: { boolean: true, help: "no progress lines on stderr" },
  "pgbun-root": { help: "checkout whose src/main.ts runs (default: this one, or $PGBUN_ROOT)" },
});

const think = (v["think-ms"] ?? "").split(",").map(Number);
if (think.length !== 2 || !think.every((n) => Number.isInteger(n) && n >= 0) || think[0]! > think[1]!) {
  console.error(`--think-ms must be MIN,MAX in whole milliseconds, got ${JSON.stringify(v["think-ms"])}`);
  process.exit(2);
}
const clients = whole(v, "clients", 1);
const ledgerWriters = whole(v, "ledger-writers");
// Each client holds a socket here and one in pgbun, and the ledger and the proxy hold more.
ensureFileLimit(2 * (clients + ledgerWriters) + 500);
const driverFaults = tolerateDriverBug();

const s: SoakSummary = await runSoak({
  durationMs: decimal(v, "duration", 1) * 1000,
  clients,
  seed: whole(v, "seed"),
  poolSize: whole(v, "pool-size", 1),
  thinkMs: [think[0]!, think[1]!],
  opTimeoutMs: decimal(v, "op-timeout", 1) * 1000,
  rampMs: v.ramp === undefined ? undefined : decimal(v, "ramp") * 1000,
  ledgerWriters,
  ledgerDriverEvery: whole(v, "ledger-driver-every"),
  killEveryMs: whole(v, "kill-every-ms"),
  proxyFaultEveryMs: whole(v, "proxy-fault-every-ms"),
  rssEveryMs: decimal(v, "rss-every", 0.1) * 1000,
  flatRatio: decimal(v, "flat-ratio", 1),
  pgbunRoot: v["pgbun-root"],
  pgbunArgs: v["prepare-unnamed"] === "true" ? ["--prepare-unnamed"] : undefined,
  progress: v.quiet === "true" ? undefined : (line) => console.error(`soak: ${line}`),
});
const l = s.ledger;
const found = [
  s.wrongAnswers > 0 && "wrong answers",
  s.hungOperations > 0 && "hung operations",
  s.errors.unexpected > 0 && "unexpected errors",
  l !== null && l.lost + l.phantom + l.failedButPresent + l.hung > 0 && "ledger",
  !s.rss.flatness.flat && "RSS not flat",
  !s.end.pgbunAlive && "pgbun died",
  !s.end.probe.ok && "final check",
  s.end.strandedServers !== null && "stranded servers",
].filter((x): x is string => typeof x === "string");
console.log(JSON.stringify({ ok: found.length === 0, found, driverFaultsTolerated: driverFaults(), ...s }, null, 2));
process.exit(found.length === 0 ? 0 : 1);
