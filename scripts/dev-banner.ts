// What `npm run dev` prints: how to reach the stack it started, and what to do without PostgreSQL's binaries.
// Every command in it must work with only Node.js and npm installed (bun comes from npm: `npx bun`).

import { STACK_DATABASES, STACK_PASSWORD, STACK_USER } from "../tests/harness/stack.ts";

export interface DevAddresses {
  pgPort: number;
  /** host:port pgbun listens on. */
  listen: string;
  /** host:port of pgbun's HTTP endpoint. */
  statsListen: string;
}

/** A client cannot connect to a wildcard listen address: it reaches that listener on loopback. */
const reachable = (host: string) => (host === "0.0.0.0" || host === "::" || host === "[::]" ? "127.0.0.1" : host);

/** The commands to try once the stack is up, one per line. */
export function devBanner(a: DevAddresses): string {
  const at = a.listen.lastIndexOf(":");
  const [host, port] = [reachable(a.listen.slice(0, at)), a.listen.slice(at + 1)];
  const sat = a.statsListen.lastIndexOf(":");
  const stats = `http://${reachable(a.statsListen.slice(0, sat))}:${a.statsListen.slice(sat + 1)}`;
  const connect = (db: string) => `psql "postgres://${STACK_USER}:${STACK_PASSWORD}@${host}:${port}/${db}"`;
  // The load scripts default to 127.0.0.1:6432 and :6480; other addresses are passed along.
  const target = [a.listen === "127.0.0.1:6432" ? "" : ` --host=${host} --port=${port}`, stats === "http://127.0.0.1:6480" ? "" : ` --stats-url=${stats}`].join("");
  return [
    "",
    `PostgreSQL  127.0.0.1:${a.pgPort}, data in volumes/pgdata    psql "postgres://${STACK_USER}:${STACK_PASSWORD}@127.0.0.1:${a.pgPort}/pgbun_test"`,
    `pgbun       ${a.listen} (bun --watch: an edit in src/ restarts it), config volumes/pgbun.dev.toml`,
    ...STACK_DATABASES.map((db) => `  ${db.replace("pgbun_", "").padEnd(12)} ${connect(db)}`),
    `  admin        ${connect("pgbun")} -c "SHOW POOLS"`,
    `  stats        curl ${stats}/stats`,
    `  load test    npx bun tests/load-test.js --mode=transaction${target}`,
    `  boundaries   npx bun tests/transaction-test.js --mode=transaction${target}`,
    "Ctrl-C stops pgbun and PostgreSQL.",
    "",
  ].join("\n");
}

/** Printed when initdb, pg_ctl, postgres or psql cannot be found. */
export function missingBinaries(missing: string[]): string {
  return (
    `pgbun dev: PostgreSQL's ${missing.join(", ")} not found (looked on PATH and in /usr/lib/postgresql/*/bin).\n` +
    "  Install them: apt-get install -y postgresql (Debian, Ubuntu), brew install postgresql (macOS), or put their bin folder on PATH.\n" +
    "  Or run pgbun against a server you already have:\n" +
    "    npx bun src/main.ts --upstream postgres://USER:PASSWORD@HOST:5432/DB --pool-mode transaction --pool-size 5\n" +
    "  Or use Docker: docker compose up -d --build\n"
  );
}
