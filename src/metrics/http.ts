// The HTTP endpoint on stats_listen: /metrics (Prometheus), /healthz (per component, 200 or 503), /stats (JSON).

import type { Server } from "bun";
import type { Registry } from "../pool/registry.ts";
import { VERSION } from "../version.ts";
import { log } from "../log.ts";
import { HealthMonitor, type HealthStatus } from "./health.ts";
import { renderMetrics } from "./prometheus.ts";
import { snapshotAll } from "./snapshot.ts";
import { listenRequest, listenSocket, type StreamData } from "../notify/http-stream.ts";

/** When this pgbun started, and a random id per start: a client polling /stats sees a restart even when the pid is reused. */
export interface RunIdentity {
  run_id: string;
  started_at: string;
}

/** The supervisor of several workers passes its own identity in this variable, so every worker reports one start. */
export const RUN_ENV = "PGBUN_RUN";

export const RUN: RunIdentity = inheritedRun(process.env[RUN_ENV]) ?? { run_id: crypto.randomUUID(), started_at: new Date().toISOString() };

function inheritedRun(text: string | undefined): RunIdentity | null {
  if (!text) return null;
  try {
    const r = JSON.parse(text) as Partial<RunIdentity>;
    return typeof r.run_id === "string" && typeof r.started_at === "string" ? { run_id: r.run_id, started_at: r.started_at } : null;
  } catch {
    return null;
  }
}

export interface HealthSource {
  readonly registry: Registry;
  listening(): boolean;
}

/** host, IPv4 or [IPv6], then an optional port: anything else (two Host lines joined by ", ", spaces, "@") is refused. */
const HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{0,5}))?$/;
const PLAIN = { "content-type": "text/plain; charset=utf-8" };

/**
 * The request's path, or null when its Host header is missing or malformed. Bun builds req.url from the Host header
 * and leaves it relative ("/healthz") when it cannot, so `new URL(req.url)` would throw on what a client sent.
 */
export function requestPath(req: Request): string | null {
  const host = req.headers.get("host");
  const m = host === null ? null : HOST.exec(host);
  if (m === null || (m[1] !== undefined && m[1] !== "" && Number(m[1]) > 65535)) return null;
  const url = req.url;
  const origin = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url);
  const rest = origin === null ? url : url.slice(origin[0].length);
  if (!rest.startsWith("/") && rest !== "") return null;
  const cut = rest.search(/[?#]/);
  return (cut < 0 ? rest : rest.slice(0, cut)) || "/";
}

/** /healthz: the listener, and each database as the health monitor last saw it; never a connection of its own. */
export function health(src: HealthSource, monitor: HealthMonitor): { ok: boolean; body: unknown } {
  const upstreams = monitor.report();
  const listener = src.listening() ? "up" : "down";
  const worst = (s: HealthStatus) => upstreams.some((u) => u.status === s);
  const status = listener === "down" || worst("down") ? "down" : worst("starting") ? "starting" : "up";
  return { ok: status === "up", body: { status, components: { listener: { status: listener }, upstreams } } };
}

export function startHttp(src: HealthSource, host: string, port: number): Server<StreamData> {
  const reg = src.registry;
  const monitor = new HealthMonitor(reg);
  monitor.start();
  return Bun.serve<StreamData>({
    hostname: host,
    port,
    websocket: listenSocket,
    // Never Bun's development error page: it shows source paths and stacks to whoever asks.
    development: false,
    error(err) {
      log.error("http", "request failed", { error: err.message, stack: err.stack ?? "" });
      return new Response("internal error\n", { status: 500, headers: PLAIN });
    },
    fetch(req, server) {
      const path = requestPath(req);
      if (path === null) return new Response("bad request: missing or malformed Host header\n", { status: 400, headers: PLAIN });
      if (path.startsWith("/listen/")) return listenRequest(reg, req, path, server);
      switch (path) {
        case "/metrics":
          return new Response(renderMetrics(reg, { openClientSockets: reg.clients.size, uptimeSeconds: (Date.now() - reg.startedAt) / 1000 }), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        case "/healthz": {
          const h = health(src, monitor);
          return Response.json(h.body, { status: h.ok ? 200 : 503 });
        }
        case "/stats":
          return Response.json({
            version: VERSION,
            started_at: RUN.started_at,
            run_id: RUN.run_id,
            uptime_seconds: (Date.now() - reg.startedAt) / 1000,
            pid: process.pid,
            pools: snapshotAll(reg),
          });
        case "/stats/reset-peak":
          if (req.method !== "POST") return new Response("use POST\n", { status: 405 });
          for (const p of reg.pools.values()) p.stats.server_connections_peak = p.servers.size;
          return Response.json({ ok: true });
      }
      return new Response("pgbun: try /metrics, /healthz or /stats\n", { status: 404, headers: PLAIN });
    },
  });
}
