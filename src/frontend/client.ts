// One client connection: login, then framing its requests and forwarding them to the server it is linked to.

import type { Socket } from "bun";
import type { ServerConn, LinkedClient } from "../backend/server.ts";
import { TRACKED_PARAMS, parseOptions } from "../backend/params.ts";
import { clock } from "../clock.ts";
import { log } from "../log.ts";
import { ForwardRange } from "../net/forward-range.ts";
import { HIGH_WATER, Outbox, type PressureSink } from "../net/outbox.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { Framer, type FrameSink } from "../protocol/framer.ts";
import { readInt32 } from "../protocol/writer.ts";
import { backendKeyData, errorResponse, READY_IDLE } from "../protocol/messages.ts";
import { TX_IDLE } from "../protocol/tags.ts";
import type { PreparedInfo } from "../protocol/statements.ts";
import { protocolStatementAction, runStatementAction, sqlStatementCommand, type StatementAction } from "./statements.ts";
import {
  F_BIND,
  F_CLOSE,
  F_COPY_DATA,
  F_COPY_DONE,
  F_COPY_FAIL,
  F_DESCRIBE,
  F_EXECUTE,
  F_FLUSH,
  F_FUNCTION_CALL,
  F_PARSE,
  F_QUERY,
  F_SYNC,
  F_TERMINATE,
} from "../protocol/tags.ts";
import type { ClientContext, ClientPool } from "./context.ts";
import { Login } from "./login.ts";
import { paramsKeyOf, shareParams } from "./shared-params.ts";
import { cameViaUnixSocket } from "./unix-clients.ts";
import { ClientListens, MAX_PENDING_NOTIFICATIONS } from "../notify/client-listens.ts";
import type { ListenHub } from "../notify/hub.ts";
import { type Effects, SqlWatch } from "./sql-watch.ts";
import { endsRequest, type ReadKind, readKindOf, type ReadRoute, routeCut } from "./read-route.ts";


export type ClientState = "login" | "idle" | "waiting" | "active" | "closed";

let nextClientId = 1;


/** Startup parameters that are not session settings. */
const NOT_SETTINGS = new Set(["user", "database", "options", "replication"]);

/** What a client's startup parameters become once it is welcomed: it needs them no more. */
const NO_PARAMS: ReadonlyMap<string, string> = new Map();

export class ClientConn implements FrameSink, LinkedClient, PressureSink {
  readonly id = nextClientId++;
  state: ClientState = "login";
  readonly outbox: Outbox;
  readonly framer: Framer;
  pool: ClientPool | null = null;
  server: ServerConn | null = null;
  pid = 0;
  secret = 0;
  user = "";
  database = "";
  /** The startup packet's parameters, from login until the client is welcomed (a replication client keeps them). */
  startupParams: ReadonlyMap<string, string> = NO_PARAMS;
  /**
   * The session parameters this client has set and must see on any server it is linked to. From login on it is
   * shared with the pool's other clients of the same parameters (shared-params.ts): change it only with setWanted().
   */
  wanted: Map<string, string> = NO_PARAMS as Map<string, string>;
  private wantedShared = true;
  private wantedKey: string | null = null;
  private seedKey: string | null = null;
  private seed: number | bigint = 0;
  readonly connectedAt = Date.now();
  /** Time of the last state change, for the timeouts. */
  since = clock.now;
  waitStartedAt = 0;
  linkedAt = 0;
  closeReason = "";
  /** Accepted beyond max_client_conn: refused once its startup packet can be answered. */
  overLimit = false;
  private login: Login | null;
  /** A replication connection, passed through to a server of its own (replication.ts): its bytes go there as they are. */
  relay: { fromClient(chunk: Uint8Array): void; pressure(on: boolean): void; close(): void } | null = null;
  /** What waits for a server: slices of one or more whole messages, and statement actions, in order. */
  private pending: Array<Uint8Array | StatementAction> = [];
  /** Messages arriving while no server is linked, gathered per chunk before they join `pending`. */
  private readonly waiting = new ForwardRange();
  /** Transaction and statement mode: the pool's listening connection, which LISTEN goes through. */
  private hub: ListenHub | null = null;
  /** This client's LISTENs; null until it sends one. */
  listens: ClientListens | null = null;
  /** It sent Terminate behind requests still unanswered: it closes once they are answered, and sends nothing more. */
  terminating = false;
  /** Channels its LISTEN waits for the listening connection to listen on: what it sends meanwhile waits too. */
  private gate = 0;
  /** Transaction and statement mode: what its SQL does beyond results (LISTEN, session state, SET). */
  private watch: SqlWatch | null = null;
  /** Its server holds session state of its (advisory lock, temporary table, WITH HOLD cursor): it keeps that server. */
  pinned = false;
  private pinCheckDue = false;
  /** Settings it SET or RESET at session level in the current transaction: read back and followed on every server. */
  private settingsDue: Set<string> | null = null;
  /** Transaction and statement mode: protocol-level named statements are renamed and followed across servers. */
  private rewrite = false;
  /** prepare_unnamed: unnamed statements seen before are bound as statements prepared on the server. */
  prepareUnnamed = false;
  lastUnnamed: { body: Uint8Array; seed: number | bigint; name: string } | null = null;
  /** This client's named statements: its name -> the server-side name and the Parse that creates it. */
  readonly statements = new Map<string, PreparedInfo>();
  private pendingBytes = 0;
  private readPaused = false;
  /** read_write_split: linked to a replica, what of what it sends may follow its request there; null otherwise. */
  route: ReadRoute | null = null;

  constructor(
    readonly socket: Socket<ClientConn>,
    readonly ctx: ClientContext,
  ) {
    this.outbox = new Outbox(socket as Socket<unknown>, this);
    this.framer = new Framer(ctx.settings.max_packet_size, true);
    this.login = new Login(this, ctx);
    this.overLimit = !ctx.clientOpened(this);
  }

  get remote(): string {
    // A Unix-socket client has no address; PgBouncer shows it as "unix".
    return cameViaUnixSocket(this) ? "unix" : `${this.socket.remoteAddress}`;
  }

  paramsKey(): string {
    return (this.wantedKey ??= paramsKeyOf(this.wanted));
  }

  /**
   * What server statement names are seeded with: a hash of paramsKey() without application_name (which changes no
   * statement's meaning), kept while paramsKey() stays the same.
   */
  statementSeed(): number | bigint {
    const key = this.paramsKey();
    if (this.seedKey !== key) {
      const app = this.wanted.get("application_name");
      const scope = app === undefined ? key : key.replace("application_name=" + app + "\u0000", "");
      this.seed = scope === "" ? 0 : Bun.hash(scope);
      this.seedKey = key;
    }
    return this.seed;
  }

  parseAnswerable(serverName: string): boolean {
    return this.server === null && this.nothingPending && this.pool!.statementKnown?.(serverName) === true;
  }

  setWanted(name: string, value: string | undefined): void {
    if (this.wantedShared) {
      this.wanted = new Map(this.wanted);
      this.wantedShared = false;
    }
    if (value === undefined) this.wanted.delete(name);
    else this.wanted.set(name, value);
    this.wantedKey = null;
  }

  /** Our queue towards this client is full (it reads slowly): its server, whichever it is, stops reading. */
  onPressure(on: boolean): void {
    if (this.relay !== null) return this.relay.pressure(on);
    this.server?.clientPressure(on);
    if (!on && this.server === null) this.deliverHeld();
  }

  /** A statement with effects beyond its result is on its way to the server. */
  effects(e: Effects): void {
    if (e.listen !== null && this.hub !== null) {
      const hub = this.hub;
      (this.listens ??= new ClientListens(hub, this)).sent(e.listen);
      // The LISTEN waits until the listening connection listens too: from the client's ReadyForQuery on, nothing is missed.
      for (const op of e.listen) {
        if (!op.listen || hub.isListening(op.channel)) continue;
        this.gate++;
        hub.whenListening(op.channel, () => this.openGate());
      }
    }
    const se = e.session;
    if (se === null) return;
    if (se.mayPin) this.pinCheckDue = true;
    if (se.settings !== null) for (const name of se.settings) (this.settingsDue ??= new Set()).add(name);
  }

  private openGate(): void {
    if (--this.gate > 0 || this.state === "closed") return;
    const server = this.server;
    if (server !== null) {
      if (!server.held) this.sendPending(server);
    } else if (!this.nothingPending && this.state === "idle") {
      this.waitStartedAt = performance.now();
      this.pool!.acquire(this);
    }
  }

  /** After a transaction: whether a session-state check is owed (the server then reads it back before release). */
  takeSessionCheck(): { pin: boolean; settings: string[] } | null {
    if (!this.pinCheckDue && !this.pinned && this.settingsDue === null) return null;
    const out = { pin: this.pinCheckDue || this.pinned, settings: this.settingsDue === null ? [] : [...this.settingsDue] };
    this.pinCheckDue = false;
    this.settingsDue = null;
    return out;
  }

  /** A notification for one of this client's channels: at once when it is between transactions, else when it is. */
  notify(bytes: Uint8Array): void {
    if (this.state === "closed") return;
    if (this.server === null && !this.outbox.pressured) {
      this.pool!.stats.notifications_delivered++;
      this.outbox.send(bytes);
      return;
    }
    if (this.listens!.hold(bytes)) return;
    this.pool!.stats.notification_clients_dropped++;
    this.fatal(
      "54000",
      `pgbun: more than ${MAX_PENDING_NOTIFICATIONS} notifications or 1 MiB of them waited for this client (it reads too slowly or stays in a transaction); reconnect and LISTEN again`,
    );
  }

  notificationsLost(why: string): void {
    this.listens?.leave();
    this.fatal("08006", `pgbun: the connection that listens for notifications was lost (${why}); notifications may have been missed: reconnect and LISTEN again`);
  }

  private deliverHeld(): void {
    const held = this.listens?.takeHeld();
    if (held == null) return;
    this.pool!.stats.notifications_delivered += held.length;
    for (const b of held) this.outbox.send(b);
  }

  pauseReading(on: boolean): void {
    if (on === this.readPaused) return;
    this.readPaused = on;
    if (on) this.socket.pause();
    else this.socket.resume();
  }

  onData(chunk: Uint8Array): void {
    if (this.state === "closed") return;
    if (this.relay !== null) return this.relay.fromClient(chunk);
    // Counted on the pool of the server it goes to: with several hosts, each host's pool has its own counters.
    if (this.pool) (this.server?.owner ?? this.pool).stats.bytes_received += chunk.length;
    try {
      this.framer.feed(chunk, this);
    } catch (err) {
      if (err instanceof ProtocolError && this.framer.startup && err.message.startsWith("invalid startup packet length")) {
        // PostgreSQL closes without a word on a startup packet of impossible length (a Terminate sent first, a stray byte).
        log.debug("client", "invalid startup packet", { client: this.id, error: err.message });
        this.close(err.message);
        return;
      }
      if (err instanceof ProtocolError) {
        log.warn("client", "protocol violation", { client: this.id, error: err.message });
        this.fatal(err.sqlstate, err.message);
      } else {
        log.error("client", "unexpected error", { client: this.id, stack: (err as Error).stack });
        this.fatal("XX000", "pgbun internal error");
      }
      return;
    }
  }

  frame(tag: number, buf: Uint8Array, start: number, end: number): void {
    if (this.state === "login") {
      this.login!.frame(buf, start, end);
      return;
    }
    if (this.state === "closed" || this.terminating) return;
    switch (tag) {
      case F_QUERY:
      case F_PARSE:
      case F_BIND:
      case F_DESCRIBE:
      case F_EXECUTE:
      case F_CLOSE:
      case F_FLUSH:
      case F_FUNCTION_CALL:
        break;
      case F_SYNC:
        // A lone Sync from an unlinked client: the answer is known without borrowing a server.
        if (this.server === null && this.nothingPending && !this.pool!.local) {
          this.outbox.send(READY_IDLE);
          return;
        }
        break;
      case F_COPY_DATA:
      case F_COPY_DONE:
      case F_COPY_FAIL:
        // Left over from a COPY that already failed: PostgreSQL would drop them too. Behind a COPY still waiting for a
        // server, though, they are its data and wait with it.
        if (this.server === null && this.nothingPending) return;
        break;
      case F_TERMINATE:
        // PostgreSQL answers everything sent before a Terminate, then closes: so does pgbun.
        if (!this.nothingPending || (this.server !== null && !this.server.tracker.quiet)) this.terminating = true;
        else this.close("client sent Terminate");
        return;
      default:
        throw new ProtocolError(`invalid frontend message type ${tag} ('${String.fromCharCode(tag)}')`);
    }
    if (this.watch !== null && (tag === F_QUERY || tag === F_PARSE || tag === F_BIND || tag === F_EXECUTE)) this.watch.see(tag, buf, start, end);
    if (this.rewrite && (tag === F_PARSE || tag === F_BIND || tag === F_DESCRIBE || tag === F_CLOSE || tag === F_QUERY)) {
      const action = tag === F_QUERY ? sqlStatementCommand(this, buf, start, end) : protocolStatementAction(this, tag, buf, start, end);
      if (action !== null) {
        this.dispatch(action, tag, end - start);
        return;
      }
    }
    // The common case in transaction mode: a new request and an idle server: link now and forward in place.
    if (this.server === null && this.state === "idle" && this.nothingPending) this.pool!.tryLink(this);
    const server = this.server;
    if (server !== null && this.mayForward(server, tag)) {
      if (server.tracker.owed === 0) server.requestStarted();
      if (server.unnamed.open === null) {
        server.tracker.sent(tag);
        server.outbox!.forward(buf, start, end);
        return;
      }
      // A reused unnamed statement awaits its outcome: what it may send again goes, the rest waits.
      if (server.unnamed.other(tag, buf, start, end)) return;
    }
    const before = this.waiting.add(buf, start, end);
    if (before !== null) this.pending.push(before);
    this.pendingBytes += end - start;
    if (this.pendingBytes > HIGH_WATER) this.pauseReading(true);
    this.acquireFor(tag);
  }

  /** Whether a message may go straight to the linked server (no hold, no LISTEN gate; on a replica, its route allows). */
  private mayForward(server: ServerConn, tag: number): boolean {
    return !server.held && this.gate === 0 && (this.route === null || (this.nothingPending && this.route.pass(tag, server.tracker.quiet)));
  }

  /** Asks for a server; a pool that routes reads decides on a whole request, so that waits for the request's end. */
  private acquireFor(tag: number): void {
    if (this.state !== "idle" || (this.pool!.splitsReads && !endsRequest(tag))) return;
    this.waitStartedAt = performance.now();
    this.pool!.acquire(this);
  }

  private dispatch(action: StatementAction, tag: number, size: number): void {
    const server = this.server;
    if (server !== null && this.mayForward(server, tag)) {
      if (!runStatementAction(server, action)) this.keep(action, size);
      return;
    }
    if (action.kind === "reply" && this.nothingPending && server === null) {
      // Nothing is owed: answer at once, without borrowing a server.
      this.outbox.send(action.reply.bytes(TX_IDLE));
      return;
    }
    this.gatherWaiting();
    this.keep(action, size);
    this.acquireFor(tag);
  }

  /** An action waits for its server: it counts against the bound on what a client may have waiting, as bytes do. */
  private keep(action: StatementAction, size: number): void {
    this.pending.push(action);
    this.pendingBytes += size;
    if (this.pendingBytes > HIGH_WATER) this.pauseReading(true);
  }

  /** read_write_split: whether the request waiting for a server may go to a replica, and as what. */
  readRequest(): ReadKind | null {
    this.gatherWaiting();
    return readKindOf(this.pending);
  }

  private get nothingPending(): boolean {
    return this.pending.length === 0 && this.waiting.empty;
  }

  private gatherWaiting(): void {
    const slice = this.waiting.take();
    if (slice !== null) this.pending.push(slice);
  }

  /** The messages that waited for a server, for a pool that answers them itself (the admin console). */
  takePending(): Uint8Array[] {
    this.gatherWaiting();
    const out: Uint8Array[] = [];
    for (const slice of this.pending) {
      if (!(slice instanceof Uint8Array)) continue;
      for (let at = 0; at < slice.length; ) {
        const end = at + 1 + readInt32(slice, at + 1);
        out.push(slice.subarray(at, end));
        at = end;
      }
    }
    this.pending = [];
    this.pendingBytes = 0;
    if (this.state === "waiting" || this.state === "idle") this.state = "idle";
    if (this.readPaused) this.pauseReading(false);
    return out;
  }

  /** Called by the pool once the server is ours (after server.link()): sends what waited for it. */
  linked(server: ServerConn): void {
    this.server = server;
    this.state = "active";
    this.since = clock.now;
    this.linkedAt = performance.now();
    server.requestStarted();
    this.sendPending(server);
  }

  /** The server's hold ended: what waited behind it goes now (up to the next hold). */
  resumeHeld(): void {
    if (this.server !== null) this.sendPending(this.server);
  }

  /** Sends what waited for the server, in order; stops where an action makes the server hold the client again. */
  private sendPending(server: ServerConn): void {
    const out = server.outbox!;
    this.gatherWaiting();
    let i = 0;
    for (; i < this.pending.length && !server.held && this.gate === 0; i++) {
      const msg = this.pending[i]!;
      if (msg instanceof Uint8Array && server.unnamed.open !== null) {
        // A reused unnamed statement awaits its outcome: message by message, up to what must wait for it.
        let at = 0;
        while (at < msg.length) {
          const end = at + 1 + readInt32(msg, at + 1);
          if (!server.unnamed.other(msg[at]!, msg, at, end)) break;
          at = end;
        }
        this.pendingBytes -= at;
        if (at < msg.length) {
          this.pending[i] = msg.subarray(at);
          break;
        }
      } else if (msg instanceof Uint8Array) {
        // A slice may hold several messages: each one owes its replies. On a replica, only those its route lets through.
        const cut = routeCut(msg, this.route, server.tracker.quiet);
        for (let at = 0; at < cut; at += 1 + readInt32(msg, at + 1)) server.tracker.sent(msg[at]!);
        const part = cut === msg.length ? msg : msg.subarray(0, cut);
        if (part.length > 0) out.send(part);
        this.pendingBytes -= part.length;
        if (cut < msg.length) {
          this.pending[i] = msg.subarray(cut);
          break;
        }
      } else if ((this.route !== null && !this.route.pass(msg.kind === "parse" ? F_PARSE : msg.kind === "use" || msg.kind === "unnamed" ? msg.tag : 0, server.tracker.quiet)) || !runStatementAction(server, msg)) {
        break; // held: this action runs again when the hold ends
      }
    }
    this.pending = i === this.pending.length ? [] : this.pending.slice(i);
    if (this.pending.length === 0) this.pendingBytes = 0;
    if (this.readPaused && this.pendingBytes <= HIGH_WATER && !server.outbox!.pressured) this.pauseReading(false);
  }

  unlinked(): void {
    if (this.pool) (this.server?.owner ?? this.pool).stats.xact_time_us += Math.round((performance.now() - this.linkedAt) * 1000);
    this.server = null;
    this.route = null;
    // The server's queue may have paused us (a fast COPY); that server is no longer ours to wait for.
    if (this.readPaused && this.pendingBytes <= HIGH_WATER) this.pauseReading(false);
    if (this.listens !== null && !this.outbox.pressured) this.deliverHeld();
    if (this.state === "active") {
      this.state = "idle";
      this.since = clock.now;
    }
    if (this.terminating && this.nothingPending) this.close("client sent Terminate");
    // A graceful shutdown lets a transaction finish, not the next one begin.
    else if (this.ctx.shuttingDown && this.state === "idle" && this.nothingPending) this.fatal("57P01", "pgbun is shutting down");
    // read_write_split: what waited behind a request sent to a replica is routed afresh (a write to the primary).
    else if (this.pool?.splitsReads && this.state === "idle" && !this.nothingPending) queueMicrotask(() => this.nothingPending || this.acquireFor(F_SYNC));
  }

  /** After a ReadyForQuery forwarded to it: a client that sent Terminate closes once nothing it sent is unanswered. */
  readyForwarded(serverQuiet: boolean): void {
    if (this.terminating && serverQuiet && this.nothingPending) this.close("client sent Terminate");
    // On a replica inside a read-only transaction: everything before is answered, so the next request may follow.
    else if (this.route !== null && serverQuiet && this.server !== null && !this.nothingPending) {
      this.route.reopen();
      this.sendPending(this.server);
    }
  }

  /** Called by Login once the client has proven who it is and the pool is known. */
  authenticated(pool: ClientPool): void {
    this.login = null;
    this.pool = pool;
    this.rewrite = pool.mode !== "session" && this.ctx.settings.max_prepared_statements > 0;
    this.prepareUnnamed = this.rewrite && this.ctx.settings.prepare_unnamed;
    if (pool.mode !== "session" && pool.listenHub !== undefined) {
      this.hub = pool.listenHub();
      this.watch = new SqlWatch(this);
    }
    pool.clientJoined(this);
    if (pool.welcome) this.welcomed(pool.welcome);
    else pool.awaitWelcome(this);
  }

  /** Finishes login: the server's parameters as this client will see them, its cancel key, and ReadyForQuery. */
  welcomed(welcome: Map<string, string>): void {
    if (this.state !== "login") return;
    const wanted = new Map<string, string>();
    for (const name of TRACKED_PARAMS) {
      const v = this.startupParams.get(name) ?? welcome.get(name);
      if (v !== undefined) wanted.set(name, v);
    }
    for (const [k, v] of this.startupParams) {
      if (NOT_SETTINGS.has(k) || k.startsWith("_pq_.")) continue;
      wanted.set(k, v);
    }
    const options = this.startupParams.get("options");
    if (options) for (const [k, v] of parseOptions(options)) wanted.set(k, v);
    this.startupParams = NO_PARAMS;
    const shared = shareParams(welcome, wanted);
    this.wanted = shared.wanted;
    this.wantedShared = true;
    this.wantedKey = shared.key;
    this.outbox.send(shared.status);
    const key = this.ctx.cancelKeys.allocate(this);
    this.pid = key.pid;
    this.secret = key.secret;
    this.outbox.send(backendKeyData(this.pid, this.secret));
    this.outbox.send(READY_IDLE);
    this.state = "idle";
    this.since = clock.now;
    if (this.ctx.settings.log_connections) {
      log.info("client", "login", { client: this.id, user: this.user, database: this.database, addr: this.remote });
    }
  }

  cancelQuery(): void {
    const s = this.server;
    if (s !== null) s.cancel();
  }

  /** Sends a statement-level error and a ReadyForQuery, keeping the connection. */
  errorAndReady(code: string, message: string): void {
    this.outbox.send(errorResponse({ severity: "ERROR", code, message }));
    this.outbox.send(READY_IDLE);
  }

  /** The server died under this client. When PostgreSQL's FATAL already reached it, the connection just closes, as it would directly. */
  serverLost(reason: string, told: boolean): void {
    this.server = null;
    if (told) this.close(`server connection lost (${reason})`);
    else this.fatal("08006", `pgbun: server connection lost (${reason})`);
  }

  /** Sends a FATAL error and closes. */
  fatal(code: string, message: string): void {
    if (this.state === "closed") return;
    this.outbox.send(errorResponse({ severity: "FATAL", code, message }));
    this.close(message);
  }

  close(reason: string): void {
    if (this.state === "closed") return;
    this.closeReason = reason;
    // Detach first: ending the socket may run the close handler at once.
    this.detach();
    this.outbox.end();
  }

  /** The socket is gone. */
  onClose(): void {
    this.outbox.dispose();
    if (this.state !== "closed") {
      this.closeReason ||= "client closed the connection";
      this.detach();
    }
  }

  private detach(): void {
    const wasLoggedIn = this.state !== "login";
    this.state = "closed";
    this.relay?.close();
    this.pending = [];
    this.waiting.clear();
    if (this.pid !== 0) this.ctx.cancelKeys.release(this.pid);
    this.listens?.leave();
    if (this.pool) this.pool.clientLeft(this);
    this.server = null;
    this.ctx.clientClosed(this);
    if (wasLoggedIn && this.ctx.settings.log_disconnections) {
      log.info("client", "disconnect", { client: this.id, user: this.user, database: this.database, reason: this.closeReason });
    }
  }
}
