// Who a login is and where it goes: the user's secret ([users], auth_file, a database's forced user, or auth_query), the
// method it must prove it with (auth_type, the user's own auth_type, or the first matching auth_hba_file line), and
// the pool or, for a replication connection, the server it is passed to.

import { ADMIN_DATABASES } from "../admin/databases.ts";
import type { DatabaseConfig } from "../config/schema.ts";
import { lookUpUser, type AuthQueryTarget } from "../frontend/auth-query.ts";
import type { ClientAuthMethod, LoginFrom, LoginTarget } from "../frontend/context.ts";
import { matchHba, type HbaMethod } from "../frontend/hba.ts";
import type { Registry } from "./registry.ts";

export function resolveLogin(reg: Registry, database: string, user: string, from: LoginFrom): LoginTarget | Promise<LoginTarget> {
  const method = methodFor(reg, database, user, from);
  const cfg = reg.config;
  if (ADMIN_DATABASES.has(database) && !cfg.databases.has(database)) {
    const adminPool = reg.admin?.(user) ?? null;
    const secret = reg.staticSecret(user) ?? forcedUserPassword(reg, user);
    return {
      password: secret,
      userKnown: reg.staticallyKnown(user) || secret !== undefined,
      method,
      pool: () => adminPool,
      server: () => null,
      // Details stay out of the message: whether the console exists for others is nobody's business.
      refusal: () => (adminPool === null ? ["42501", "permission denied"] : null),
    };
  }
  const db = reg.databaseFor(database);
  const forced = db?.user === user;
  const secret = reg.staticSecret(user) ?? (forced ? db.password : undefined);
  const known = reg.staticallyKnown(user) || forced;
  const target = (password: string | undefined, userKnown: boolean): LoginTarget => ({
    password,
    userKnown,
    method,
    pool: () => (db === undefined ? null : reg.clientPoolFor(db, user)),
    server: () => (db === undefined ? null : reg.specFor(db, user).target),
    refusal: () =>
      reg.disabled.has(database) ? ["57P03", `pgbun: database "${database}" is disabled (DISABLE on the admin console; ENABLE reverses it)`] : null,
  });
  const lookup = known || db === undefined || typeof method !== "string" ? null : authQueryTarget(reg, db);
  if (lookup === null) return target(secret, known);
  return lookUpUser(lookup, user).then((answer) => {
    if (answer.kind === "error") {
      // Fails alike for every user, so it tells nothing about who exists.
      const t = target(undefined, false);
      t.method = { refuse: ["08006", `pgbun: cannot look up user "${user}": auth_query failed (pgbun's log says why)`] };
      return t;
    }
    if (answer.kind === "none") return target(undefined, false);
    if (answer.secret !== null) reg.learned.set(user, answer.secret);
    return target(answer.secret ?? undefined, true);
  });
}

/** auth_user's connection for a database: its own or the global auth_user, in auth_dbname or the database itself. */
function authQueryTarget(reg: Registry, db: DatabaseConfig): AuthQueryTarget | null {
  const s = reg.settings;
  const authUser = db.auth_user ?? s.auth_user;
  if (authUser === "") return null;
  return {
    host: db.host,
    port: db.port,
    database: db.auth_dbname ?? (s.auth_dbname || db.dbname),
    user: authUser,
    password: reg.staticSecret(authUser) ?? (db.user === authUser ? db.password : undefined),
    query: db.auth_query ?? s.auth_query,
  };
}

function forcedUserPassword(reg: Registry, user: string): string | undefined {
  for (const d of reg.config.databases.values()) if (d.user === user && d.password !== undefined) return d.password;
  return undefined;
}

const FROM_HBA: Record<Exclude<HbaMethod, "reject">, ClientAuthMethod> = {
  trust: "trust",
  password: "plain",
  md5: "md5",
  "scram-sha-256": "scram-sha-256",
  cert: "cert",
};

/**
 * The user's own auth_type replaces auth_type; with auth_type = hba the first matching line decides, and a user's own
 * auth_type replaces that line's method, never a reject or the refusal when no line matches.
 */
function methodFor(reg: Registry, database: string, user: string, from: LoginFrom): LoginTarget["method"] {
  const s = reg.settings;
  const own = reg.config.users.get(user)?.auth_type;
  if (s.auth_type !== "hba") return own ?? s.auth_type;
  const rule = matchHba(reg.config.hba ?? [], { ...from, database, user });
  const conn = from.local ? "the Unix socket" : `host "${from.addr}"${from.tls ? ", TLS" : ", no TLS"}`;
  const what = `${conn}, user "${user}", database "${database}"${from.replication === "physical" ? ", replication" : ""}`;
  if (rule === null) return { refuse: ["28000", `pgbun: no auth_hba_file line matches ${what}`] };
  if (rule.method === "reject") return { refuse: ["28000", `pgbun: auth_hba_file rejects ${what}`] };
  return own ?? FROM_HBA[rule.method];
}
