// After a transaction that may have left session state: one internal query tells whether the server still holds any
// (the client then keeps its server) and reads back the settings the client SET, which pgbun then keeps for it.

import { PIN_CHECK_SQL } from "../frontend/session-state.ts";
import { quoteLiteral } from "./params.ts";
import { dataRowValues } from "../protocol/messages.ts";
import { B_DATA_ROW } from "../protocol/tags.ts";
import type { InternalQuery } from "./internal-requests.ts";
import type { ServerConn } from "./server.ts";
import type { LinkedClient } from "./server-types.ts";

export interface SessionCheckWanted {
  pin: boolean;
  settings: string[];
}

export function sessionCheckSql(w: SessionCheckWanted): string {
  const cols = [w.pin ? `(${PIN_CHECK_SQL})` : "0"];
  for (const name of w.settings) cols.push(`pg_catalog.current_setting(${quoteLiteral(name)}, true)`);
  return "SELECT " + cols.join(", ");
}

export class SessionCheck implements InternalQuery {
  private values: Array<string | null> = [];
  constructor(
    private readonly server: ServerConn,
    private readonly client: LinkedClient,
    private readonly wanted: SessionCheckWanted,
  ) {}

  onReply(tag: number, buf: Uint8Array, start: number, end: number): void {
    if (tag === B_DATA_ROW) this.values = dataRowValues(buf, start, end);
  }

  answered(): void {
    if (this.values.length === 0) return; // the query failed: leave things as they were
    if (this.wanted.pin) this.client.pinned = Number(this.values[0] ?? "0") > 0;
    const s = this.server;
    this.wanted.settings.forEach((name, i) => {
      const value = this.values[i + 1];
      if (value == null) return;
      if (!s.reported.has(name)) s.setByUs.set(name, value);
      if (this.client.wanted.get(name) !== value) this.client.setWanted(name, value);
    });
    s.syncedKey = null;
  }
}
