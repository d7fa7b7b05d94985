// NOTIFY over HTTP: GET /listen/CHANNEL?database=NAME streams a channel's notifications as Server-Sent Events, or over
// a WebSocket when the request asks to upgrade. Each database opts in with its listen_token.

import type { Server, ServerWebSocket } from "bun";
import type { Registry } from "../pool/registry.ts";
import type { PoolStats } from "../pool/stats.ts";
import { readCString } from "../protocol/messages.ts";
import type { ListenHub, Subscriber } from "./hub.ts";

/** What a stream may have queued and unread before it is closed as too slow. */
const MAX_QUEUED_BYTES = 1 << 20;
const utf8 = new TextEncoder();

let nextStreamId = 1;

/** A notification as one JSON object: channel, payload, the sender's pid, and when pgbun received it. */
export function notificationJson(bytes: Uint8Array): string {
  const pid = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getInt32(5);
  const [channel, next] = readCString(bytes, 9, bytes.length);
  const [payload] = readCString(bytes, next, bytes.length);
  return JSON.stringify({ channel, payload, pid, time: new Date().toISOString() });
}

export interface StreamData {
  hub: ListenHub;
  stats: PoolStats;
  channel: string;
  sub?: Subscriber;
}

type Resolved = { hub: ListenHub; stats: PoolStats; channel: string } | Response;

/** Checks the database, its token and the channel of a /listen request. */
function resolve(reg: Registry, req: Request, path: string): Resolved {
  const query = new URLSearchParams(req.url.includes("?") ? req.url.slice(req.url.indexOf("?") + 1) : "");
  let channel: string;
  try {
    channel = decodeURIComponent(path.slice("/listen/".length));
  } catch {
    return new Response("bad request: the channel name is not valid percent-encoding\n", { status: 400 });
  }
  if (channel === "") return new Response("bad request: GET /listen/CHANNEL?database=NAME\n", { status: 400 });
  const dbs = [...reg.config.databases.values()];
  const name = query.get("database") ?? (dbs.length === 1 ? dbs[0]!.name : "");
  const db = reg.config.databases.get(name);
  if (db === undefined) return new Response(`not found: no database "${name}" (add ?database=NAME)\n`, { status: 404 });
  if (db.listen_token === undefined) {
    return new Response(`forbidden: notification streams are off for database "${name}": set listen_token in [databases.${name}]\n`, { status: 403 });
  }
  const auth = req.headers.get("authorization");
  const token = auth?.startsWith("Bearer ") ? auth.slice(7) : query.get("token");
  if (token !== db.listen_token) return new Response("unauthorized: a valid token is needed (Authorization: Bearer, or ?token=)\n", { status: 401 });
  if (db.user === undefined) return new Response(`unavailable: database "${name}" names no user to listen as\n`, { status: 503 });
  // With several hosts, the primary's pool: notifications come from where the writes go.
  const pool = reg.clientPoolFor(db, db.user);
  return { hub: pool.listenHub!(), stats: pool.stats, channel };
}

/** Serves a /listen request: a WebSocket upgrade, or an SSE stream. */
export function listenRequest(reg: Registry, req: Request, path: string, server: Server<StreamData>): Response | undefined {
  const r = resolve(reg, req, path);
  if (r instanceof Response) return r;
  if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
    if (server.upgrade(req, { data: { hub: r.hub, stats: r.stats, channel: r.channel } })) return undefined;
    return new Response("bad request: WebSocket upgrade failed\n", { status: 400 });
  }
  return sse(r.hub, r.stats, r.channel, req.signal);
}

function sse(hub: ListenHub, stats: PoolStats, channel: string, signal: AbortSignal): Response {
  let sub: Subscriber | null = null;
  const stop = () => {
    if (sub !== null) hub.unsubscribe(sub, channel);
    sub = null;
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const s: Subscriber = {
          id: -nextStreamId++,
          notify(bytes) {
            if ((controller.desiredSize ?? 0) < -MAX_QUEUED_BYTES) {
              stats.notification_clients_dropped++;
              stop();
              controller.close();
              return;
            }
            stats.notifications_delivered++;
            controller.enqueue(utf8.encode(`event: notification\ndata: ${notificationJson(bytes)}\n\n`));
          },
          notificationsLost(why) {
            sub = null;
            controller.enqueue(utf8.encode(`event: error\ndata: ${JSON.stringify({ error: `listening connection lost (${why}); notifications may have been missed` })}\n\n`));
            controller.close();
          },
        };
        sub = s;
        hub.subscribe(s, channel);
        hub.whenListening(channel, () => {
          if (sub === s) controller.enqueue(utf8.encode(`event: listening\ndata: ${JSON.stringify({ channel })}\n\n`));
        });
        signal.addEventListener("abort", stop);
      },
      cancel: stop,
    },
    { highWaterMark: 0 },
  );
  return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-store" } });
}

/** WebSocket handlers for /listen: each notification is one text message (JSON); the first says the channel is live. */
export const listenSocket = {
  open(ws: ServerWebSocket<StreamData>): void {
    const { hub, stats, channel } = ws.data;
    const sub: Subscriber = {
      id: -nextStreamId++,
      notify(bytes) {
        if (ws.getBufferedAmount() > MAX_QUEUED_BYTES) {
          stats.notification_clients_dropped++;
          ws.close(1013, "too slow: notifications piled up");
          return;
        }
        stats.notifications_delivered++;
        ws.send(notificationJson(bytes));
      },
      notificationsLost(why) {
        ws.data.sub = undefined;
        ws.close(1011, `listening connection lost (${why}); notifications may have been missed`.slice(0, 120));
      },
    };
    ws.data.sub = sub;
    hub.subscribe(sub, channel);
    hub.whenListening(channel, () => {
      if (ws.data.sub === sub) ws.send(JSON.stringify({ listening: channel }));
    });
  },
  message(): void {},
  close(ws: ServerWebSocket<StreamData>): void {
    if (ws.data.sub !== undefined) ws.data.hub.unsubscribe(ws.data.sub, ws.data.channel);
    ws.data.sub = undefined;
  },
};
