// SHOW HOSTS: each host of the databases with several hosts, with its role, state, lag, ban and pools.

import type { Registry } from "../pool/registry.ts";
import { int8, resultSet, text, type Cell, type Column } from "./result-set.ts";

const ts = (ms: number) => (ms === 0 ? "" : new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"));

const COLUMNS: Column[] = [
  text("database"), text("host"), int8("port"), text("role"), text("state"), int8("lag_bytes"), text("lag_seconds"),
  int8("sv_active"), int8("sv_idle"), int8("sv_login"), int8("cl_active"), int8("cl_waiting"), int8("pools"),
  text("banned_until"), int8("role_changes"), int8("bans"), int8("failovers"), text("last_check"), text("patroni"), text("error"),
];

export function showHosts(reg: Registry): Uint8Array {
  const now = Date.now();
  const rows: Cell[][] = [];
  for (const c of reg.clusters.values()) {
    for (const h of c.hosts) {
      let svActive = 0;
      let svIdle = 0;
      let svLogin = 0;
      let clActive = 0;
      let clWaiting = 0;
      let pools = 0;
      for (const p of reg.pools.values()) {
        if (p.spec.host !== h) continue;
        pools++;
        svActive += p.active.size;
        svIdle += p.idle.length;
        svLogin += p.connecting.size;
        clWaiting += p.waiters.length;
        for (const cl of p.clients) if (cl.state === "active" && cl.server?.owner === p) clActive++;
      }
      rows.push([
        c.name, h.address.host, h.address.port, h.role, h.state(now), h.lagBytes ?? 0, h.lagSeconds === null ? "" : h.lagSeconds.toFixed(3),
        svActive, svIdle, svLogin, clActive, clWaiting, pools,
        h.bannedUntil > now ? ts(h.bannedUntil) : "", h.roleChanges, h.bans, c.failovers, ts(h.lastCheckAt), h.patroniUrl === "" ? "" : h.patroni, h.lastError,
      ]);
    }
  }
  return resultSet(COLUMNS, rows);
}
