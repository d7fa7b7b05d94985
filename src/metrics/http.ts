// The HTTP endpoint on stats_listen: /metrics (Prometheus), /healthz (per component, 200 or 503), /stats (JSON).

import type { Server } from "bun";
import type { Registry } from "../pool/registry.ts";
import { VERSION } from "../version.ts";
import { renderMetrics } from "./prometheus.ts";
import { snapshotAll } from "./snapshot.ts";

/** Process start, and a random id per start: a client polling /stats sees a restart even when the pid is reused. */
const STARTED_AT = new Date().toISOString();
const RUN_ID = crypto.randomUUID();

export interface HealthSource {
  readonly registry: Registry;
  listening(): boolean;
}

/** Whether a TCP connection to host:port opens within the timeout. */
async function reachable(host: string, port: number, timeoutMs = 1000): Promise<string | null> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (err: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(err);
    };
    const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open(s) {
          s.end();
          finish(null);
        },
        data() {},
        connectError(_s, e) {
          finish(e.message);
        },
      },
    }).catch((e: Error) => finish(e.message));
  });
}

export async function health(src: HealthSource): Promise<{ ok: boolean; body: unknown }> {
  const reg = src.registry;
  const dbs = [...reg.config.databases.values()];
  const checks = await Promise.all(dbs.map((d) => reachable(d.host, d.port)));
  const upstreams = dbs.map((d, i) => {
    const pools = [...reg.pools.values()].filter((p) => p.spec.name === d.name);
    const lastError = pools.map((p) => p.lastError).find((e) => e) ?? null;
    const err = checks[i] ?? null;
    return { database: d.name, host: d.host, port: d.port, status: err === null ? "up" : "down", error: err, last_error: lastError };
  });
  const listener = src.listening() ? "up" : "down";
  const ok = listener === "up" && upstreams.every((u) => u.status === "up");
  return { ok, body: { status: ok ? "up" : "down", components: { listener: { status: listener }, upstreams } } };
}

export function startHttp(src: HealthSource, host: string, port: number): Server<undefined> {
  const reg = src.registry;
  return Bun.serve({
    hostname: host,
    port,
    async fetch(req) {
      const url = new URL(req.url);
      switch (url.pathname) {
        case "/metrics":
          return new Response(renderMetrics(reg, { openClientSockets: reg.clients.size, uptimeSeconds: (Date.now() - reg.startedAt) / 1000 }), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        case "/healthz": {
          const h = await health(src);
          return Response.json(h.body, { status: h.ok ? 200 : 503 });
        }
        case "/stats":
          return Response.json({
            version: VERSION,
            started_at: STARTED_AT,
            run_id: RUN_ID,
            uptime_seconds: (Date.now() - reg.startedAt) / 1000,
            pid: process.pid,
            pools: snapshotAll(reg),
          });
        case "/stats/reset-peak":
          if (req.method !== "POST") return new Response("use POST\n", { status: 405 });
          for (const p of reg.pools.values()) p.stats.server_connections_peak = p.servers.size;
          return Response.json({ ok: true });
      }
      return new Response("pgbun: try /metrics, /healthz or /stats\n", { status: 404 });
    },
  });
}
