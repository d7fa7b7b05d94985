// The registry's part for databases with several hosts: one cluster per database, one router per (database, user), one
// host pool per (database, user, host), and what a reload changes in them.

import type { DatabaseConfig } from "../config/schema.ts";
import type { ServerTarget } from "../backend/server-types.ts";
import { log } from "../log.ts";
import { Cluster, type Host } from "./cluster.ts";
import { Pool, type PoolSpec } from "./pool.ts";
import type { Registry } from "./registry.ts";
import { Router } from "./router.ts";

function routerKey(db: string, user: string): string {
  return `${db}\u0000${user}`;
}

/** A host pool's spec: the router's, with the host's address. */
function hostSpec(base: PoolSpec, h: Host): PoolSpec {
  return { ...base, target: { ...base.target, host: h.address.host, port: h.address.port }, host: h };
}

/** NAME_ro, pggat-style: the replicas of database NAME (which lists several hosts), unless a database of that name exists. */
export function replicaAlias(databases: ReadonlyMap<string, DatabaseConfig>, name: string): DatabaseConfig | undefined {
  if (!name.endsWith("_ro")) return undefined;
  const base = databases.get(name.slice(0, -3));
  if (base?.hosts === undefined || base.role === "replica") return undefined;
  return { ...base, name, role: "replica", read_write_split: false };
}

/** The cluster of a database's hosts, shared with its NAME_ro alias. */
export function clusterFor(reg: Registry, db: DatabaseConfig): Cluster {
  const name = reg.config.databases.has(db.name) ? db.name : db.name.replace(/_ro$/, "");
  let c = reg.clusters.get(name);
  if (c === undefined) {
    const base = reg.config.databases.get(name) ?? db;
    c = new Cluster(base, () => reg.settings, () => checkLogin(reg, c!.db));
    reg.clusters.set(name, c);
    log.info("ha", "database with several hosts: checking each host's role", { database: db.name, hosts: c.hosts.map((h) => h.key).join(",") });
  }
  return c;
}

export function routerFor(reg: Registry, db: DatabaseConfig, user: string): Router {
  const key = routerKey(db.name, user);
  let r = reg.routers.get(key);
  if (r !== undefined && !r.draining) {
    // auth_query may have found a new secret since the router was made: new servers log in with it.
    const spec = reg.specFor(db, user);
    if (spec.target.password !== r.spec.target.password) r.update(db, spec, (h) => hostSpec(spec, h));
    return r;
  }
  const spec = reg.specFor(db, user);
  let made: Router | null = null;
  const router = new Router(clusterFor(reg, db), db, spec, () => reg.settings, (h) => {
    const p = new Pool(hostSpec(made?.spec ?? spec, h), () => reg.settings);
    p.hooks = made;
    reg.pools.set(`${key}\u0000${h.key}`, p);
    return p;
  });
  made = router;
  for (const p of router.pools.values()) p.hooks = router;
  reg.routers.set(key, router);
  log.debug("pool", "router created", { pool: db.name, user, mode: router.mode, hosts: router.pools.size });
  return router;
}

/**
 * Whom the role checks log in as: the database's forced user, else the user of one of its routers, else the first
 * configured user; null when there is nobody to log in as yet.
 */
function checkLogin(reg: Registry, db: DatabaseConfig): ServerTarget | null {
  if (db.user !== undefined) return reg.specFor(db, db.user).target;
  for (const r of reg.routers.values()) if (r.name === db.name && !r.draining && r.spec.target.password !== undefined) return r.spec.target;
  for (const user of reg.config.users.keys()) {
    const t = reg.specFor(db, user).target;
    if (t.password !== undefined) return t;
  }
  return null;
}

/** The janitor's tick: role checks that are due, and clients that waited too long for a host. */
export function tickClusters(reg: Registry, now: number): void {
  // Checks start with pgbun, before any client logs in, so /healthz knows the hosts from the start.
  for (const db of reg.config.databases.values()) if (db.hosts !== undefined && !reg.clusters.has(db.name)) clusterFor(reg, db);
  for (const c of reg.clusters.values()) c.tick(now);
  for (const r of reg.routers.values()) r.tick(now);
  dropEmptyHostPools(reg);
}

/** Host pools of removed hosts or routers go once they hold nobody. */
function dropEmptyHostPools(reg: Registry): void {
  for (const [key, p] of reg.pools) if (p.draining && p.spec.host !== undefined && p.clients.size === 0 && p.servers.size === 0) reg.pools.delete(key);
}

/** After a reload: clusters follow their database's new host list, routers their new settings; removed ones drain. */
export function reloadRouters(reg: Registry): void {
  for (const [name, c] of reg.clusters) {
    const db = reg.databaseFor(name);
    if (db === undefined || db.hosts === undefined) {
      for (const h of c.hosts) h.removed = true;
      reg.clusters.delete(name);
      continue;
    }
    c.update(db);
  }
  for (const [key, r] of reg.routers) {
    const db = reg.databaseFor(r.name);
    const gone = db === undefined || db.hosts === undefined || !reg.userStillKnown(db, r.spec.user) || !reg.clusters.has(r.cluster.name);
    if (gone) {
      r.draining = true;
      r.cluster.listeners.delete(r);
      for (const p of r.pools.values()) {
        p.draining = true;
        p.retireAll();
      }
      reg.routers.delete(key);
      continue;
    }
    const spec = reg.specFor(db, r.spec.user);
    r.update(db, spec, (h) => hostSpec(spec, h));
  }
  dropEmptyHostPools(reg);
}
