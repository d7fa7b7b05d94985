// workers = N: N pgbun processes share the listen port with SO_REUSEPORT; the first process supervises them.

import type { Subprocess } from "bun";
import type { Config, Settings } from "./config/schema.ts";
import { log } from "./log.ts";
import { RUN, RUN_ENV } from "./metrics/http.ts";

export const WORKER_ENV = "PGBUN_WORKER_INDEX";

export interface WorkerRole {
  index: number;
  count: number;
  /** Bits of a process id that name its worker. */
  bits: number;
}

export function workerRole(env: Record<string, string | undefined>, settings: Settings): WorkerRole | null {
  const raw = env[WORKER_ENV];
  if (raw === undefined) return null;
  const count = settings.workers;
  return { index: Number(raw), count, bits: bitsFor(count) };
}

function bitsFor(n: number): number {
  return n <= 1 ? 0 : Math.ceil(Math.log2(n));
}

/** Each worker gets its share of the pool sizes and the client limit, so N workers together keep the configured totals. */
export function shareOf(config: Config, count: number): Config {
  const share = (n: number, min: number) => Math.max(min, Math.floor(n / count));
  const s = config.settings;
  const settings: Settings = {
    ...s,
    default_pool_size: share(s.default_pool_size, 1),
    min_pool_size: share(s.min_pool_size, 0),
    max_client_conn: share(s.max_client_conn, 1),
  };
  const databases = new Map(
    [...config.databases].map(([k, d]) => [
      k,
      { ...d, pool_size: d.pool_size === undefined ? undefined : share(d.pool_size, 1), min_pool_size: d.min_pool_size === undefined ? undefined : share(d.min_pool_size, 0) },
    ]),
  );
  return { ...config, settings, databases };
}

/**
 * The supervisor: picks the port (when 0), starts the workers with the same command line, relays signals,
 * tells every worker where the others take forwarded cancel requests, and prints one "listening" line.
 */
export async function superviseWorkers(settings: Settings): Promise<void> {
  const count = settings.workers;
  let port = settings.listen.port;
  if (port === 0) {
    const probe = Bun.listen({ hostname: settings.listen.host, port: 0, socket: { data() {} } });
    port = probe.port;
    probe.stop(true);
  }
  const cancelPorts: Array<number | null> = Array.from({ length: count }, () => null);
  const children: Subprocess[] = [];
  let ready = 0;
  let exited = 0;
  // In a compiled binary argv[1] is the bundle's virtual path, not an argument to pass on.
  const compiled = process.argv[1]?.startsWith("/$bunfs/") ?? false;
  const args = process.argv.slice(compiled ? 2 : 1).filter((a, i, all) => a !== "--listen" && all[i - 1] !== "--listen" && !a.startsWith("--listen="));
  for (let i = 0; i < count; i++) {
    const child: Subprocess = Bun.spawn([process.execPath, ...args, "--listen", `${settings.listen.host}:${port}`], {
      // One run identity for all workers, so /stats pollers do not take a different worker for a restart.
      env: { ...process.env, [WORKER_ENV]: String(i), [RUN_ENV]: JSON.stringify(RUN) },
      stdin: "ignore",
      stdout: "inherit",
      stderr: "inherit",
      ipc(message) {
        const m = message as { type: string; index: number; cancelPort: number };
        if (m.type !== "ready") return;
        cancelPorts[m.index] = m.cancelPort;
        ready++;
        if (ready === count) {
          for (const c of children) c.send({ type: "peers", cancelPorts });
          process.stdout.write(`pgbun listening on ${settings.listen.host}:${port}\n`);
          log.info("main", "workers started", { workers: count, port });
        }
      },
      onExit(_p, code) {
        exited++;
        if (exited === count) process.exit(code ?? 0);
      },
    });
    children.push(child);
  }
  for (const sig of ["SIGHUP", "SIGTERM", "SIGINT"] as const) {
    process.on(sig, () => {
      for (const c of children) c.kill(sig);
    });
  }
}
