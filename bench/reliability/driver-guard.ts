// Keeps a long run alive through one known postgres.js-on-Bun fault, and counts it; any other uncaught error still ends the run.

/**
 * When a connection is killed, postgres.js on Bun sometimes writes to the socket it has just dropped (a write queued
 * with setImmediate runs after the close): an uncaught TypeError from its connection.js. It happens against
 * PostgreSQL directly too, so it is the driver's, not pgbun's. Returns how many were caught so far.
 */
export function tolerateDriverBug(): () => number {
  let caught = 0;
  process.on("uncaughtException", (err) => {
    if (err instanceof TypeError && /postgres\/src\/connection\.js/.test(err.stack ?? "")) {
      caught++;
      return;
    }
    console.error(err);
    process.exit(1);
  });
  return () => caught;
}
