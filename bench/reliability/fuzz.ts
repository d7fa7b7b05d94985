// Entry of `bun run fuzz`: the long protocol fuzz run against a real pgbun and PostgreSQL; prints a JSON summary.

import { FUZZ_SETUP_SQL, runFuzz } from "../../tests/reliability/fuzz-run.ts";
import { Target } from "../../tests/reliability/target.ts";
import { decimal, parseOptions, whole } from "./options.ts";

// Ctrl-C or a kill still runs the exit hooks that stop PostgreSQL and pgbun.
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

const USAGE = `Usage: bun run fuzz [-- --inputs N --seed S ...]

Sends malformed and mutated PostgreSQL traffic (startup packets, SSLRequest, bad lengths, truncated and mutated
Parse/Bind/Execute/Query/COPY sequences, huge declared lengths) to pgbun before and after login. After each batch it
checks that pgbun is alive, that a well-behaved client gets correct answers and that no server is left busy, and it
samples pgbun's RSS. Prints a JSON summary; exits 1 when anything was found. Any input can be replayed alone:
--seed S --first-id ID --inputs 1.`;

const v = parseOptions(Bun.argv.slice(2), USAGE, {
  inputs: { default: "100000", help: "inputs to send" },
  seed: { help: "seed of the input generator (default: random, printed in the summary)" },
  "first-id": { default: "0", help: "id of the first input (replay part of a run)" },
  concurrency: { default: "32", help: "connections sending inputs at once" },
  batch: { default: "500", help: "inputs between two health checks" },
  "session-share": { default: "0.6", help: "share of inputs sent after login" },
  "differential-share": { default: "0.1", help: "share of session inputs also sent straight to PostgreSQL, whose answers pgbun's must match" },
  "sentinel-wait-ms": { default: "150", help: "how long a session waits for its sentinel query's answer" },
  "pool-mode": { default: "transaction", help: "pgbun's pool_mode" },
  "pool-size": { default: "4", help: "pgbun's default_pool_size (small, so a stranded server shows)" },
  "max-packet-size": { help: "pgbun's max_packet_size (default: pgbun's own)" },
  "prepare-unnamed": { boolean: true, help: "run pgbun with prepare_unnamed = true" },
  only: { help: "comma-separated kinds to send, matched as prefixes (e.g. huge-declared,mutated:copy-in)" },
  "max-seconds": { help: "stop starting batches after this long" },
  "rss-ceiling-mb": { default: "4096", help: "kill and restart pgbun past this RSS, and report it" },
  "no-isolate": { boolean: true, help: "do not replay a crashing batch to find the input" },
  quiet: { boolean: true, help: "no progress lines on stderr" },
  "pgbun-root": { help: "checkout whose src/main.ts runs (default: this one, or $PGBUN_ROOT)" },
});

const seed = v.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : whole(v, "seed");
const poolMode = v["pool-mode"];
if (poolMode !== "session" && poolMode !== "transaction" && poolMode !== "statement") {
  console.error(`--pool-mode must be session, transaction or statement, got ${JSON.stringify(poolMode)}`);
  process.exit(2);
}
const pgbunArgs = v["max-packet-size"] === undefined ? [] : ["--max-packet-size", String(whole(v, "max-packet-size", 1024))];
if (v["prepare-unnamed"] === "true") pgbunArgs.push("--prepare-unnamed");

const target = await Target.start({ poolMode, poolSize: whole(v, "pool-size", 1), setupSql: FUZZ_SETUP_SQL, pgbunArgs, pgbunRoot: v["pgbun-root"] });
let code = 0;
try {
  const s = await runFuzz(target, {
    inputs: whole(v, "inputs", 1),
    seed,
    firstId: whole(v, "first-id"),
    concurrency: whole(v, "concurrency", 1),
    batchSize: whole(v, "batch", 1),
    sessionShare: decimal(v, "session-share"),
    differentialShare: decimal(v, "differential-share"),
    sentinelWaitMs: whole(v, "sentinel-wait-ms", 1),
    only: v.only?.split(",").map((k) => k.trim()),
    maxMs: v["max-seconds"] === undefined ? undefined : decimal(v, "max-seconds") * 1000,
    rssCeilingKb: whole(v, "rss-ceiling-mb", 64) * 1024,
    isolate: v["no-isolate"] !== "true",
    progress: (p) => {
      if (v.quiet !== "true" && p.batches % 10 === 0) {
        console.error(`fuzz: ${p.inputsSent} inputs, ${Math.round(p.elapsedMs / 1000)} s, ${p.findings.length} findings, RSS ${p.rss.endKb} kB`);
      }
    },
  });
  const found = s.crashes + s.hungChecks + s.wrongAnswers + s.strandedChecks + s.framingErrors + s.foreignReplies + s.rssCeilingHits;
  console.log(JSON.stringify({ ok: found === 0, poolMode, pgbunArgs, ...s }, null, 2));
  code = found === 0 ? 0 : 1;
} finally {
  await target.stop();
}
process.exit(code);
