// The TLS points of `bun run bench`: pgbench over TLS beside plain text through pgbun and PgBouncer, both with client TLS
// on (prefer: each client picks), at -S c=10 and c=100, and the rate of new TLS logins (pgbench -C).

import { makeCertificates } from "../tests/harness/tls.ts";
import { runMatrix, warmUp, type MatrixOptions, type MatrixTarget } from "./matrix.ts";
import type { PgbenchPoint } from "./pgbench.ts";
import type { PointResult } from "./report.ts";
import { type PoolerSettings, type RunningPooler, startPgbouncer, startPgbunTarget } from "./targets.ts";

/** -S simple at 10 and 100 clients, and -C (a login, and a handshake, per transaction) at 10 clients. */
export const TLS_POINTS: PgbenchPoint[] = [
  { script: "select-only", mode: "simple", clients: 10 },
  { script: "select-only", mode: "simple", clients: 100 },
  { script: "select-only", mode: "simple", clients: 10, reconnect: true },
];

/** Target keys: "pgbun" and "PgBouncer" in plain text, with " TLS" for sslmode=require through the same process. */
export const TLS_SUFFIX = " TLS";

export async function runTlsPoints(pgPort: number, secret: string, s: PoolerSettings, bouncerBin: string | null, o: MatrixOptions, warmSeconds: number): Promise<PointResult[]> {
  const certs = makeCertificates();
  const files = { cert: certs.serverCert, key: certs.serverKey };
  const poolers: Array<[string, RunningPooler]> = [["pgbun", await startPgbunTarget(pgPort, s, 1, files)]];
  if (bouncerBin) poolers.push(["PgBouncer", await startPgbouncer(bouncerBin, pgPort, secret, s, files)]);
  const targets: MatrixTarget[] = poolers.flatMap(([key, p]) =>
    ["disable", "require"].map((sslmode) => ({
      key: sslmode === "require" ? key + TLS_SUFFIX : key,
      port: p.port,
      exclude: () => null,
      alive: p.alive,
      logTail: p.logTail,
      pid: p.pid,
      sslmode,
    })),
  );
  try {
    await warmUp(targets, o, warmSeconds, ["simple"]);
    return await runMatrix(TLS_POINTS, targets, o);
  } finally {
    for (const [, p] of poolers) await p.stop();
  }
}
