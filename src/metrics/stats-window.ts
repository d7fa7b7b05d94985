// Averages over the last stats_period, as SHOW STATS_AVERAGES and the periodic stats log line report them.

import { log } from "../log.ts";
import type { Registry } from "../pool/registry.ts";
import { totalsByDatabase, zeroTotals, type Totals } from "./snapshot.ts";

export class StatsWindow {
  private previous = new Map<string, Totals>();
  private last = new Map<string, Totals>();
  private lastAt = performance.now();

  constructor(private readonly reg: Registry) {}

  /** Closes a period: averages become those of the period just ended; logs one line per database. */
  roll(): void {
    const now = performance.now();
    const seconds = Math.max((now - this.lastAt) / 1000, 0.001);
    this.previous = this.last;
    this.last = totalsByDatabase(this.reg);
    this.lastAt = now;
    for (const db of this.last.keys()) {
      const a = this.averages(db, seconds);
      log.info("stats", `${a.xact_count} xact/s, ${a.query_count} query/s, in ${a.bytes_received} B/s, out ${a.bytes_sent} B/s, xact ${a.xact_time} us, query ${a.query_time} us, wait ${a.wait_time} us`, { database: db });
    }
  }

  /** Per-second rates over the last period; times are average microseconds per transaction, query and assignment. */
  averages(db: string, seconds = this.reg.settings.stats_period || 1): Totals {
    const cur = this.last.get(db) ?? zeroTotals();
    const prev = this.previous.get(db) ?? zeroTotals();
    const d = (k: keyof Totals) => cur[k] - prev[k];
    const per = (n: number, by: number) => (by > 0 ? Math.round(n / by) : 0);
    return {
      server_assignment_count: per(d("server_assignment_count"), seconds),
      xact_count: per(d("xact_count"), seconds),
      query_count: per(d("query_count"), seconds),
      bytes_received: per(d("bytes_received"), seconds),
      bytes_sent: per(d("bytes_sent"), seconds),
      xact_time: per(d("xact_time"), d("xact_count")),
      query_time: per(d("query_time"), d("query_count")),
      wait_time: per(d("wait_time"), d("server_assignment_count")),
    };
  }
}
