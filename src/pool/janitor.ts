// The one periodic tick that enforces every timeout and keeps min_pool_size servers warm.

import { closeReason } from "../backend/close-reason.ts";
import { clock } from "../clock.ts";
import { TX_IDLE } from "../protocol/tags.ts";
import type { ClientConn } from "../frontend/client.ts";
import { tickClusters } from "./ha-registry.ts";
import type { Registry } from "./registry.ts";

/** PgBouncer and PgDog both check a few times a second; timeouts are in seconds, so this is precise enough. */
export const TICK_MS = 250;

export function startJanitor(reg: Registry, sweep?: (c: ClientConn) => void): () => void {
  const timer = setInterval(() => {
    clock.now = Date.now();
    tick(reg, clock.now);
    if (sweep) for (const c of [...reg.clients]) sweep(c);
  }, TICK_MS);
  return () => clearInterval(timer);
}

export function tick(reg: Registry, now: number): void {
  const s = reg.settings;
  const ms = (seconds: number) => seconds * 1000;

  for (const c of reg.clients) {
    const age = now - c.since;
    switch (c.state) {
      case "login":
        if (s.client_login_timeout > 0 && now - c.connectedAt > ms(s.client_login_timeout)) {
          c.fatal("08P01", "pgbun: client_login_timeout: login not completed in time");
        }
        break;
      case "idle":
        if (s.client_idle_timeout > 0 && age > ms(s.client_idle_timeout)) {
          c.fatal("57P05", `pgbun: client_idle_timeout: connection idle for more than ${s.client_idle_timeout}s`);
        }
        break;
      case "waiting":
        if (s.query_wait_timeout > 0 && age > ms(s.query_wait_timeout)) {
          if (c.pool) (c.pool as { stats: { wait_timeouts: number } }).stats.wait_timeouts++;
          c.fatal(
            "08P01",
            `pgbun: query_wait_timeout: no server connection became free within ${s.query_wait_timeout}s; raise default_pool_size or query_wait_timeout`,
          );
        }
        break;
      case "active": {
        const sv = c.server;
        if (sv === null) break;
        if (s.idle_transaction_timeout > 0 && sv.tracker.owed === 0 && sv.tracker.txStatus !== TX_IDLE && now - sv.stateSince > ms(s.idle_transaction_timeout)) {
          c.fatal("25P03", `pgbun: idle_transaction_timeout: transaction idle for more than ${s.idle_transaction_timeout}s`);
        } else if (s.query_timeout > 0 && sv.tracker.owed > 0 && now - sv.stateSince > ms(s.query_timeout)) {
          c.fatal("57014", `pgbun: query_timeout: query ran for more than ${s.query_timeout}s`);
        }
        break;
      }
    }
  }

  for (const pool of reg.pools.values()) {
    // Every state a server passes through on its way somewhere has a time limit: none stays anywhere forever.
    if (s.server_connect_timeout > 0) {
      for (const sv of pool.connecting) {
        if (now - sv.createdAt > ms(s.server_connect_timeout)) {
          sv.close(closeReason("server_connect_timeout", `no login within ${s.server_connect_timeout}s`));
        }
      }
      for (const sv of pool.cleanup) {
        if (now - sv.stateSince > ms(s.server_connect_timeout)) {
          sv.close(closeReason("cleanup_timeout", `rollback, reset or cancel not done within server_connect_timeout (${s.server_connect_timeout}s)`));
        }
      }
    }
    // Idle servers: the oldest-used are at the front of the LIFO stack.
    while (pool.idle.length > 0) {
      const sv = pool.idle[0]!;
      const idleTooLong = s.server_idle_timeout > 0 && now - sv.stateSince > ms(s.server_idle_timeout) && pool.servers.size > pool.spec.minSize;
      const tooOld = s.server_lifetime > 0 && now - sv.createdAt > ms(s.server_lifetime);
      if (!idleTooLong && !tooOld) break;
      sv.close(closeReason(tooOld ? "server_lifetime" : "server_idle_timeout"));
    }
    pool.tickHub(now);
    if (!pool.paused && !pool.draining && pool.welcome !== null) {
      while (pool.servers.size < pool.spec.minSize && pool.lastErrorAt < now - 1000) pool.launch();
    }
  }
  // Databases with several hosts: role checks, and clients waiting for a primary past primary_wait_timeout.
  tickClusters(reg, now);
}
