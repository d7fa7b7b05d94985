// The admin console: virtual database "pgbun" (or "pgbouncer"), SHOW and control commands over the simple query protocol.

import type { PoolMode } from "../config/schema.ts";
import type { ClientConn } from "../frontend/client.ts";
import type { ClientPool } from "../frontend/context.ts";
import { errorResponse, READY_IDLE } from "../protocol/messages.ts";
import { F_QUERY, F_SYNC } from "../protocol/tags.ts";
import { readCString } from "../protocol/messages.ts";
import { PoolStats } from "../pool/stats.ts";
import type { Registry } from "../pool/registry.ts";
import type { StatsWindow } from "../metrics/stats-window.ts";
import { log } from "../log.ts";
import { commandComplete } from "./result-set.ts";
import { showHosts } from "./show-hosts.ts";
import { showClients, showConfig, showDatabases, showLists, showPools, showServers, showStats, showUsers, showVersion } from "./show.ts";

export { ADMIN_DATABASES } from "./databases.ts";

/** What the console may ask of the running process. */
export interface Controller {
  readonly registry: Registry;
  readonly statsWindow: StatsWindow;
  /** Re-reads the config; returns an error message when the new one is refused. */
  reload(): string | null;
  /** Resolves once no server of the matching pools is linked to a client. */
  pause(db: string | null): Promise<void>;
  resume(db: string | null): void;
  reconnect(db: string | null): void;
  kill(db: string): void;
  shutdown(waitForClients: boolean): void;
}

const SHOW = ["POOLS", "STATS", "STATS_TOTALS", "STATS_AVERAGES", "CLIENTS", "SERVERS", "DATABASES", "HOSTS", "USERS", "LISTS", "CONFIG", "VERSION"];
const CONTROL = ["PAUSE [db]", "RESUME [db]", "RECONNECT [db]", "DISABLE db", "ENABLE db", "KILL db", "RELOAD", "SHUTDOWN", "SHUTDOWN WAIT_FOR_CLIENTS"];
const HELP = `available: ${SHOW.map((s) => "SHOW " + s).join(", ")}; ${CONTROL.join(", ")}`;

const WELCOME = new Map([
  ["server_version", "15.0 (pgbun admin)"],
  ["server_encoding", "UTF8"],
  ["client_encoding", "UTF8"],
  ["DateStyle", "ISO, MDY"],
  ["TimeZone", "UTC"],
  ["integer_datetimes", "on"],
  ["standard_conforming_strings", "on"],
  ["application_name", ""],
]);

export class AdminPool implements ClientPool {
  readonly mode: PoolMode = "session";
  readonly stats = new PoolStats();
  readonly name = "pgbun";
  readonly local = true;
  readonly welcome = WELCOME;
  /** The last reply queued per client; the next one goes out after it. */
  private readonly replies = new WeakMap<ClientConn, Promise<void>>();

  constructor(
    private readonly ctl: Controller,
    /** stats_users may only SHOW. */
    private readonly readOnly: boolean,
  ) {}

  awaitWelcome(c: ClientConn): void {
    c.welcomed(WELCOME);
  }
  clientJoined(): void {}
  tryLink(): boolean {
    return false;
  }
  clientLeft(): void {}

  acquire(c: ClientConn): void {
    let skipping = false;
    for (const m of c.takePending()) {
      const tag = m[0];
      if (tag === F_QUERY) {
        const sql = readCString(m, 5, m.length)[0];
        this.reply(c, () => this.run(sql));
      } else if (tag === F_SYNC) {
        skipping = false;
        this.reply(c, () => [READY_IDLE]);
      } else if (!skipping) {
        skipping = true;
        this.reply(c, () => [
          errorResponse({ severity: "ERROR", code: "0A000", message: "the pgbun admin console supports only the simple query protocol" }),
        ]);
      }
    }
  }

  /**
   * Queues a reply behind the client's earlier ones: PAUSE waits for transactions to finish, and a SHOW sent in the
   * same packet must not overtake it. Each client has its own queue, so one client's PAUSE holds up no one else.
   */
  private reply(c: ClientConn, produce: () => Promise<Uint8Array[]> | Uint8Array[]): void {
    const next = (this.replies.get(c) ?? Promise.resolve())
      .then(produce)
      .then((out) => {
        for (const bytes of out) c.outbox.send(bytes);
      })
      .catch((err: Error) => log.error("admin", "reply failed", { error: err.message }));
    this.replies.set(c, next);
  }

  private async run(sql: string): Promise<Uint8Array[]> {
    let out: Uint8Array;
    try {
      out = await this.execute(sql.trim().replace(/;\s*$/, ""));
    } catch (err) {
      out = errorResponse({ severity: "ERROR", code: (err as AdminError).sqlstate ?? "XX000", message: (err as Error).message });
    }
    return [out, READY_IDLE];
  }

  private async execute(sql: string): Promise<Uint8Array> {
    const words = sql.split(/\s+/).filter(Boolean);
    const verb = (words[0] ?? "").toUpperCase();
    const arg = words[1];
    if (verb === "") return commandComplete("EMPTY");
    if (verb === "SHOW") return this.show((arg ?? "").toUpperCase());
    if (this.readOnly) throw new AdminError("42501", "permission denied: stats_users may only use SHOW");
    const ctl = this.ctl;
    const db = arg ?? null;
    if (db !== null && !["WAIT_FOR_CLIENTS"].includes(db.toUpperCase()) && !ctl.registry.config.databases.has(db)) {
      throw new AdminError("3D000", `no such database: ${db}`);
    }
    log.info("admin", "command", { command: sql });
    switch (verb) {
      case "PAUSE":
        await ctl.pause(db);
        return commandComplete("PAUSE");
      case "RESUME":
        ctl.resume(db);
        return commandComplete("RESUME");
      case "RECONNECT":
        ctl.reconnect(db);
        return commandComplete("RECONNECT");
      case "DISABLE":
      case "ENABLE":
        if (db === null) throw new AdminError("42601", `${verb} needs a database name`);
        if (verb === "DISABLE") ctl.registry.disabled.add(db);
        else ctl.registry.disabled.delete(db);
        return commandComplete(verb);
      case "KILL":
        if (db === null) throw new AdminError("42601", "KILL needs a database name");
        ctl.kill(db);
        return commandComplete("KILL");
      case "RELOAD": {
        const err = ctl.reload();
        if (err) throw new AdminError("F0000", `new config refused, the running one stays: ${err}`);
        return commandComplete("RELOAD");
      }
      case "SHUTDOWN":
        ctl.shutdown((arg ?? "").toUpperCase() === "WAIT_FOR_CLIENTS");
        return commandComplete("SHUTDOWN");
    }
    throw new AdminError("42601", `unknown command "${sql}"; ${HELP}`);
  }

  private show(what: string): Uint8Array {
    const reg = this.ctl.registry;
    switch (what) {
      case "POOLS":
        return showPools(reg);
      case "STATS":
      case "STATS_TOTALS":
      case "STATS_AVERAGES":
        return showStats(reg, this.ctl.statsWindow, what);
      case "CLIENTS":
        return showClients(reg);
      case "SERVERS":
        return showServers(reg);
      case "DATABASES":
        return showDatabases(reg, reg.disabled);
      case "USERS":
        return showUsers(reg);
      case "LISTS":
        return showLists(reg);
      case "HOSTS":
        return showHosts(reg);
      case "CONFIG":
        return showConfig(reg);
      case "VERSION":
        return showVersion();
    }
    throw new AdminError("42601", `unknown SHOW item "${what}"; ${HELP}`);
  }
}

class AdminError extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
  }
}
