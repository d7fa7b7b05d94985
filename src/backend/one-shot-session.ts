// A short session outside any pool (health check, auth_query, role check): log in as a server connection does, run
// at most one request, leave. What each caller makes of the outcome is its own business.

import { oneShot } from "../net/one-shot.ts";
import { Framer } from "../protocol/framer.ts";
import { dataRowValues, parseErrorFields, startupMessage, TERMINATE } from "../protocol/messages.ts";
import { B_AUTHENTICATION, B_DATA_ROW, B_ERROR_RESPONSE, B_READY_FOR_QUERY } from "../protocol/tags.ts";
import { ServerAuth } from "./server-auth.ts";
import type { ServerTarget } from "./server-types.ts";

export type SessionOutcome =
  | { ok: true; /** The first row of the request's answer; null without one (or without a request). */ row: Array<string | null> | null }
  | {
      ok: false;
      /** connect: the connection failed or timed out; auth: pgbun has no usable secret; login / request: PostgreSQL said no. */
      stage: "connect" | "auth" | "login" | "request";
      message: string;
      /** SQLSTATE, when PostgreSQL sent an error. */
      code: string | null;
    };

/** Logs in to `target`, sends `request` (whole messages ending in a Sync or a Query) if any, and returns its first row. */
export function oneShotSession(target: ServerTarget, applicationName: string, timeoutMs: number, request: Uint8Array | null): Promise<SessionOutcome> {
  const auth = new ServerAuth(target.user, target.password);
  const framer = new Framer(1 << 20);
  let loggedIn = false;
  let row: Array<string | null> | null = null;
  let error: { message: string; code: string | null } | null = null;
  return oneShot<SessionOutcome>(target.host, target.port, timeoutMs, {
    hello: startupMessage({ user: target.user, database: target.database, application_name: applicationName }),
    failed: (why) => ({ ok: false, stage: "connect", message: why, code: null }),
    data(chunk, send, finish) {
      framer.feed(chunk, {
        frame(tag, buf, start, end) {
          switch (tag) {
            case B_AUTHENTICATION: {
              let reply: Uint8Array | null;
              try {
                reply = auth.handle(buf, start, end);
              } catch (err) {
                finish({ ok: false, stage: "auth", message: (err as Error).message, code: null });
                return;
              }
              if (reply !== null) send(reply);
              return;
            }
            case B_DATA_ROW:
              row ??= dataRowValues(buf, start, end);
              return;
            case B_ERROR_RESPONSE: {
              const f = parseErrorFields(buf, start, end);
              error ??= { message: f.get("M") ?? "no message", code: f.get("C") ?? null };
              // A login error, or a FATAL, ends the conversation: the server closes. Otherwise ReadyForQuery follows.
              const fatal = f.get("V") === "FATAL" || f.get("S") === "FATAL";
              if (!loggedIn || fatal) finish({ ok: false, stage: loggedIn ? "request" : "login", ...error });
              return;
            }
            case B_READY_FOR_QUERY:
              // The first ends the login; the second, the request.
              if (!loggedIn && request !== null) {
                loggedIn = true;
                send(request);
                return;
              }
              send(TERMINATE);
              finish(error === null ? { ok: true, row } : { ok: false, stage: "request", ...error });
              return;
          }
        },
      });
    },
  });
}
