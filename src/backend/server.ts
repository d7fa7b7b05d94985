// One connection to PostgreSQL: login, then framing its replies, tracking what it owes, forwarding to the linked
// client, and the check-in decision after each reply that may free it. The server owns its read pause.

import type { Socket, SocketHandler } from "bun";
import { clock } from "../clock.ts";
import { log } from "../log.ts";
import { connectSocket } from "../net/address.ts";
import { beginBatch, endBatch, Outbox } from "../net/outbox.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { Framer, type FrameSink } from "../protocol/framer.ts";
import { parseErrorFields, parseParameterStatus, query, startupMessage, TERMINATE } from "../protocol/messages.ts";
import { shapePart } from "../protocol/statements.ts";
import {
  B_AUTHENTICATION,
  B_BACKEND_KEY_DATA,
  B_COMMAND_COMPLETE,
  B_ERROR_RESPONSE,
  B_NO_DATA,
  B_NOTIFICATION_RESPONSE,
  B_PARAMETER_DESCRIPTION,
  B_PARAMETER_STATUS,
  B_READY_FOR_QUERY,
  B_ROW_DESCRIPTION,
  F_QUERY,
  TX_IDLE,
} from "../protocol/tags.ts";
import { readInt32 } from "../protocol/writer.ts";
import { type CheckIn, checkIn, type CheckInFacts } from "./check-in.ts";
import { type CloseReason, closeReason, describeClose } from "./close-reason.ts";
import { type InternalQuery, NO_REPLY, ParamSync, ResetDone } from "./internal-requests.ts";
import { SessionCheck, sessionCheckSql } from "./session-check.ts";
import { changeSql, paramChanges } from "./params.ts";
import { UnnamedStatements } from "./unnamed-reuse.ts";
import { FORWARD, INTERNAL, K_QUERY, KIND, REPLACE, ReplacedError, ReplyTracker, SWALLOW } from "./reply-tracker.ts";
import { ServerAuth, ServerAuthError } from "./server-auth.ts";
import { retryOverTls, serverChannelBinding, serverSocketHandlers } from "./server-tls.ts";
import type { LinkedClient, ServerOwner, ServerState, ServerTarget } from "./server-types.ts";
import { sendCancel } from "./cancel.ts";
import { ShapeCapture, StatementCache } from "./statement-cache.ts";

export type { LinkedClient, ServerOwner, ServerState, ServerTarget } from "./server-types.ts";

let nextServerId = 1;
const UNLISTEN_ALL = query("UNLISTEN *");
const utf8 = new TextDecoder();

const handlers: SocketHandler<ServerConn> = {
  // Plain Uint8Arrays: cheaper to make than Buffers, and all pgbun needs.
  binaryType: "uint8array",
  open(socket) {
    socket.data.opened(socket);
  },
  data(socket, chunk) {
    const began = beginBatch();
    socket.data.onData(chunk);
    endBatch(began);
  },
  drain(socket) {
    socket.data.outbox?.drain();
  },
  close(socket, err) {
    socket.data.onClose(err ? `connection error: ${err.message}` : "server closed the connection");
  },
  error(socket, err) {
    log.debug("server", "socket error", { server: socket.data.id, error: err.message });
  },
  connectError(socket, err) {
    socket.data.onConnectError(err.message);
  },
  end(socket) {
    socket.end();
  },
};

/** One scratch object for check-in facts: the decision runs after every transaction. */
const facts: CheckInFacts = {
  mode: "transaction",
  client: "none",
  quiet: true,
  txStatus: TX_IDLE,
  resetDue: false,
  cancelsInFlight: 0,
  dead: false,
  retire: false,
  draining: false,
  overSize: false,
  expired: false,
  unlistenDue: false,
  pinned: false,
};

export class ServerConn implements FrameSink {
  readonly id = nextServerId++;
  /** Changed only by the owner's changeState(), which also moves the server between its collections. */
  state: ServerState = "connecting";
  socket: Socket<ServerConn> | null = null;
  outbox: Outbox | null = null;
  readonly framer: Framer;
  readonly tracker = new ReplyTracker();
  client: LinkedClient | null = null;
  /** BackendKeyData of the PostgreSQL backend. */
  pid = 0;
  secret = 0;
  /** Values the server reported with ParameterStatus. */
  readonly reported = new Map<string, string>();
  /** Non-reported parameters pgbun SET here for a client. */
  readonly setByUs = new Map<string, string>();
  /** paramsKey() of the settings this server is known to match; null when unknown. */
  syncedKey: string | null = null;
  readonly createdAt = Date.now();
  /** Coarse time of the last state change or request; timeouts measure from it. */
  stateSince = clock.now;
  /** How many clients it has served; more than one means reuse. */
  links = 0;
  cancelsInFlight = 0;
  /** Close instead of returning to the pool (server_lifetime passed, RECONNECT, a reload). */
  retire = false;
  closeReason: CloseReason | null = null;
  /** The server sent FATAL: it is going away and must never be handed out. */
  private dead = false;
  /** A FATAL from the server was forwarded to the linked client, so the client already knows why. */
  private fatalForwarded = false;
  /** The client that just left held session state here: it is reset away before anyone else gets the server. */
  private pinnedLeft = false;
  /** A client ran LISTEN here: UNLISTEN * before anyone else gets the server. */
  private listened = false;
  /** Reading paused because the linked client's outbox is full. */
  private readPaused = false;
  /** The client's requests wait (in the client) until a statement's shape on this server is known. */
  held = false;
  private holdEnded = false;
  private auth: ServerAuth | null;
  private lastError = "";
  /** Named statements prepared here, and how a client's statements are carried out here. */
  readonly statements: StatementCache;
  /** prepare_unnamed: the client's unnamed statement as a statement prepared here. */
  readonly unnamed = new UnnamedStatements(this);
  /** When the client's current request began (performance.now()), for query_time. */
  requestStartedAt = 0;

  constructor(
    readonly owner: ServerOwner,
    readonly target: ServerTarget,
  ) {
    this.framer = new Framer(owner.maxPacketSize);
    this.auth = new ServerAuth(target.user, target.password);
    this.statements = new StatementCache(this);
  }

  connect(): void {
    // With server_tls_sslmode asking for TLS, other handlers settle that first and then call opened().
    const socket = serverSocketHandlers(this, handlers);
    // A host that is a folder means PostgreSQL's Unix socket in it, as in libpq and PgBouncer.
    connectSocket<ServerConn>(this.target.host, this.target.port, socket, this).catch((err: Error) => this.onConnectError(err.message));
  }

  opened(socket: Socket<ServerConn>): void {
    if (this.state === "closed") {
      socket.end();
      return;
    }
    this.socket = socket;
    if (this.auth !== null) this.auth.channelBinding = serverChannelBinding(socket);
    this.outbox = new Outbox(socket as Socket<unknown>, (on) => this.client?.pauseReading(on));
    this.outbox.send(startupMessage({ user: this.target.user, database: this.target.database }));
  }

  onConnectError(message: string): void {
    if (this.state === "closed") return;
    this.owner.changeState(this, "closed");
    this.owner.serverLoginFailed(this, `cannot connect to ${this.target.host}:${this.target.port}: ${message}`);
  }

  onData(chunk: Uint8Array): void {
    if (this.state === "closed") return;
    try {
      this.framer.feed(chunk, this);
    } catch (err) {
      const known = err instanceof ProtocolError || err instanceof ServerAuthError;
      if (!known) log.error("server", "unexpected error", { server: this.id, stack: (err as Error).stack });
      this.close(closeReason(known ? "protocol_error" : "internal_error", (err as Error).message));
    }
  }

  frame(tag: number, buf: Uint8Array, start: number, end: number): void {
    if (this.state === "connecting") {
      this.loginFrame(tag, buf, start, end);
      return;
    }
    const head = this.tracker.headKind;
    switch (tag) {
      case B_PARAMETER_STATUS: {
        const [name, value] = parseParameterStatus(buf, start, end);
        this.reported.set(name, value);
        // PostgreSQL 14+ tells every session when its server leaves recovery (promotion).
        if (name === "in_hot_standby") this.owner.roleHint?.(this, value === "on");
        const c = this.client;
        this.syncedKey = null;
        if (c !== null && c.wanted.has(name) && c.wanted.get(name) !== value) c.setWanted(name, value);
        break;
      }
      case B_ERROR_RESPONSE: {
        const f = parseErrorFields(buf, start, end);
        this.lastError = f.get("M") ?? "";
        const severity = f.get("V") ?? f.get("S");
        if (severity === "FATAL" || severity === "PANIC") this.dead = true;
        // read_only_sql_transaction: the host may be in recovery now; its role is checked again at once.
        if (f.get("C") === "25006") this.owner.roleHint?.(this, null);
        this.statements.onError(f.get("C") ?? "", this.lastError, this.tracker.headAttached);
        if (this.client?.listens?.active) this.client.listens.aborted();
        break;
      }
      case B_NOTIFICATION_RESPONSE:
        // Transaction pooling hands notifications out through the pool's listening connection only.
        if (this.owner.notification(this, buf, start, end)) return;
        break;
      case B_PARAMETER_DESCRIPTION:
      case B_ROW_DESCRIPTION:
      case B_NO_DATA: {
        const a = this.tracker.headAttached;
        if (a instanceof ShapeCapture) a.shape += shapePart(tag, buf, start, end);
        break;
      }
      case B_COMMAND_COMPLETE:
        // LISTEN, UNLISTEN or ROLLBACK, told apart by length and first letter before any decoding ("SELECT 1" is 14 too).
        if ((end - start === 12 && buf[start + 5] === 0x4c) || (end - start === 14 && (buf[start + 5] === 0x55 || buf[start + 5] === 0x52))) {
          this.listenCommand(buf, start, end);
        }
        // DISCARD ALL and DEALLOCATE ALL drop every statement on this server, whoever sent them.
        if (buf[start + 5] === 0x44 && (end - start === 17 || end - start === 20)) {
          const text = utf8.decode(buf.subarray(start + 5, end - 1));
          if (text === "DISCARD ALL" || text === "DEALLOCATE ALL") {
            this.statements.forgetAll();
            if (text === "DISCARD ALL") {
              this.setByUs.clear();
              this.syncedKey = null;
            }
          }
        }
        break;
    }
    if (this.tracker.unexpected(tag, this.dead)) {
      // Never another client's data: whatever went wrong, this server's replies can no longer be trusted to anyone.
      this.close(closeReason("protocol_error", `a '${String.fromCharCode(tag)}' message answered no request`));
      return;
    }
    const ready = tag === B_READY_FOR_QUERY;
    // A reused unnamed statement's first answer: its held ParseComplete goes first, or it failed and is done again.
    const replayed = this.unnamed.open !== null && this.unnamed.reply(tag, buf, start, end, this.dead);
    let action = this.tracker.received(tag, ready ? buf[start + 5]! : 0);
    // pgbun's own Parse or Describe failing is the client's business: PostgreSQL would have failed its request there.
    // A FATAL is the client's too: it is why the connection ends.
    if (action === SWALLOW && tag === B_ERROR_RESPONSE && ((head & KIND) !== K_QUERY || this.dead)) action = FORWARD;
    if (replayed) action = SWALLOW; // (a held ParameterDescription, or the failed first use's error)
    const client = this.client;
    if (action === SWALLOW) {
      if ((head & KIND) === K_QUERY) (this.tracker.headAttachment as InternalQuery | undefined)?.onReply(tag, buf, start, end);
    } else if (client === null) {
      if (tag === B_ERROR_RESPONSE) log.warn("server", "error from unlinked server", { server: this.id, error: this.lastError });
    } else if (action === REPLACE) {
      client.outbox.send((this.tracker.headAttachment as ReplacedError).error);
    } else if (ready) {
      this.readyForClient(buf, start, end);
      return;
    } else {
      if (tag === B_ERROR_RESPONSE && this.dead) this.fatalForwarded = true;
      this.owner.stats.bytes_sent += end - start;
      client.outbox.forward(buf, start, end);
    }
    this.sendMadeUp();
    if (this.holdEnded) this.endHold();
    if (this.tracker.lost) {
      this.close(closeReason("protocol_error", "a COPY failed with Syncs pipelined into its data: its replies cannot be matched to requests"));
      return;
    }
    if (ready || this.dead) this.decide();
  }

  /** A ReadyForQuery for the linked client's request: the moment a transaction may end and the server go back. */
  private readyForClient(buf: Uint8Array, start: number, end: number): void {
    const client = this.client!;
    const status = buf[start + 5]!;
    this.stateSince = clock.now;
    this.owner.stats.query_count++;
    if (this.tracker.owed === 0 && this.requestStartedAt > 0) {
      this.owner.stats.query_time_us += Math.round((performance.now() - this.requestStartedAt) * 1000);
      this.requestStartedAt = 0;
    }
    if (status === TX_IDLE) this.owner.stats.xact_count++;
    client.listens?.ready(status);
    if (status === TX_IDLE && this.owner.mode !== "session") {
      // What the transaction may have left behind is read before the server can go back (the check keeps it linked).
      const due = client.takeSessionCheck();
      if (due !== null) this.sendInternal(query(sessionCheckSql(due)), new SessionCheck(this, client, due));
    }
    const d = this.checkIn();
    if (d.action !== "refuse") {
      this.owner.stats.bytes_sent += end - start;
      client.outbox.forward(buf, start, end);
    }
    this.sendMadeUp();
    this.act(d);
    if (this.client === client) client.readyForwarded(this.tracker.quiet);
  }

  /** CommandComplete of LISTEN, UNLISTEN or ROLLBACK: the client's channels change only if its transaction commits. */
  private listenCommand(buf: Uint8Array, start: number, end: number): void {
    const text = utf8.decode(buf.subarray(start + 5, end - 1));
    if (text === "LISTEN") this.listened = true;
    const l = this.client?.listens;
    if (l == null) return;
    if (text === "LISTEN" || text === "UNLISTEN") l.completed();
    else if (text === "ROLLBACK" && l.active) l.aborted();
  }

  /** Sends the made-up replies that have reached the head of the reply order. */
  private sendMadeUp(): void {
    for (let r = this.tracker.nextMadeUp(); r !== null; r = this.tracker.nextMadeUp()) {
      this.client?.outbox.send(r.bytes(this.tracker.txStatus));
    }
  }

  /** Sends the linked client bytes pgbun made, in order after everything forwarded so far. */
  toClient(bytes: Uint8Array): void {
    this.client?.outbox.send(bytes);
  }

  /** The linked client sent a request while nothing was owed. */
  requestStarted(): void {
    this.stateSince = clock.now;
    this.requestStartedAt = performance.now();
  }

  /** The check-in decision for this server as it is now; production and the table test share checkIn(). */
  checkIn(client: CheckInFacts["client"] = this.client !== null ? "linked" : "none", resetDue = false): CheckIn {
    const t = this.tracker;
    facts.mode = this.owner.mode;
    facts.client = client;
    facts.quiet = t.quiet;
    facts.txStatus = t.txStatus;
    facts.resetDue = resetDue;
    facts.cancelsInFlight = this.cancelsInFlight;
    facts.dead = this.dead;
    facts.retire = this.retire;
    facts.draining = this.owner.draining;
    facts.overSize = this.owner.overSize();
    facts.expired = this.owner.expired(this);
    facts.unlistenDue = this.listened;
    facts.pinned = this.client?.pinned ?? this.pinnedLeft;
    return checkIn(facts);
  }

  /** Decides and acts, for a server that is not between a client's request and its ReadyForQuery. */
  decide(): void {
    if (this.state === "active" || this.state === "cleanup") {
      this.act(this.checkIn());
    } else if (this.state === "idle") {
      // An idle server is already free: only a reason to close it can change that (a FATAL while idle).
      const d = this.checkIn();
      if (d.action === "close") this.act(d);
    }
  }

  private act(d: CheckIn): void {
    switch (d.action) {
      case "keep":
        return;
      case "release":
        this.unlink();
        this.owner.changeState(this, "idle");
        this.owner.serverFree(this);
        return;
      case "refuse": {
        const c = this.client!;
        this.unlink();
        c.errorAndReady("25P01", "transaction blocks not allowed in statement pooling mode");
        this.clean(true, false, this.listened);
        return;
      }
      case "clean":
        this.clean(d.rollback, d.reset, d.unlisten);
        return;
      case "wait":
        this.unlink();
        this.owner.changeState(this, "cleanup");
        return;
      case "close":
        this.close(d.reason);
        return;
    }
  }

  /** Runs the rollback and/or reset query with no client linked; the ReadyForQuery that ends them checks in again. */
  private clean(rollback: boolean, reset: boolean, unlisten: boolean): void {
    this.unlink();
    this.owner.changeState(this, "cleanup");
    if (rollback) this.sendInternal(query("ROLLBACK"), NO_REPLY);
    // A pinned client's session state goes even where no reset query is configured.
    const resetQuery = this.owner.resetQuery || (this.pinnedLeft ? "DISCARD ALL" : "");
    this.pinnedLeft = false;
    if (reset && resetQuery) this.sendInternal(query(resetQuery), new ResetDone(this));
    if (unlisten) {
      this.listened = false;
      this.sendInternal(UNLISTEN_ALL, NO_REPLY);
    }
    if (this.tracker.quiet) this.decide();
  }

  /** The linked client left. Its server is checked in as PgBouncer would: closed mid-request, else cleaned and freed. */
  clientLeft(resetDue: boolean): void {
    this.pinnedLeft = this.client?.pinned ?? false;
    this.client = null;
    this.setReadPause(false);
    this.endHoldQuietly();
    this.unnamed.clientLeft();
    if (this.state === "active") this.act(this.checkIn("left", resetDue && this.owner.resetQuery !== ""));
  }

  private loginFrame(tag: number, buf: Uint8Array, start: number, end: number): void {
    switch (tag) {
      case B_AUTHENTICATION: {
        let reply: Uint8Array | null;
        try {
          reply = this.auth!.handle(buf, start, end);
        } catch (err) {
          this.failLogin(`cannot log in as "${this.target.user}": ${(err as Error).message}`);
          return;
        }
        if (reply) this.outbox!.send(reply);
        return;
      }
      case B_PARAMETER_STATUS: {
        const [name, value] = parseParameterStatus(buf, start, end);
        this.reported.set(name, value);
        return;
      }
      case B_BACKEND_KEY_DATA:
        this.pid = readInt32(buf, start + 5);
        this.secret = readInt32(buf, start + 9);
        return;
      case B_ERROR_RESPONSE: {
        const f = parseErrorFields(buf, start, end);
        if (retryOverTls(this)) return;
        this.failLogin(`${f.get("M") ?? "login failed"} (SQLSTATE ${f.get("C") ?? "?"})`);
        return;
      }
      case B_READY_FOR_QUERY: {
        this.auth = null;
        this.owner.changeState(this, "idle");
        this.owner.serverLoggedIn(this);
        const d = this.checkIn();
        if (d.action === "close") this.act(d);
        else this.owner.serverFree(this);
        return;
      }
      default:
        return; // NoticeResponse, NegotiateProtocolVersion: nothing to decide
    }
  }

  private failLogin(reason: string): void {
    if (this.state === "closed") return;
    this.closeReason = closeReason("login_failed", reason);
    this.owner.changeState(this, "closed");
    this.socket?.end();
    this.owner.serverLoginFailed(this, reason);
  }

  /** Links a client: first brings the server's parameters in line with the client's. */
  link(client: LinkedClient): void {
    this.client = client;
    this.links++;
    this.owner.changeState(this, "active");
    this.setReadPause(client.outbox.pressured);
    // Most clients of a pool want the same settings: skip the comparison when this server already matches them.
    const key = client.paramsKey();
    if (key === this.syncedKey) return;
    const changes = paramChanges(client.wanted, this.reported, this.setByUs);
    for (const c of changes) this.sendInternal(query(changeSql(c)), new ParamSync(this, c, client));
    this.syncedKey = changes.length === 0 ? key : null;
  }

  /** Runs SQL of pgbun's own (the listening connection's LISTEN/UNLISTEN); its replies are swallowed, `done` runs once answered. */
  runInternal(sql: string, done?: () => void): void {
    this.sendInternal(query(sql), done === undefined ? NO_REPLY : { onReply() {}, answered: done });
  }

  /** Sends a Query pgbun makes itself; its replies are swallowed and handed to `req`. */
  private sendInternal(msg: Uint8Array, req: InternalQuery): void {
    this.tracker.sent(F_QUERY, INTERNAL, req);
    this.outbox!.send(msg);
  }

  /** Takes the server away from its client (which stays connected). */
  private unlink(): void {
    const c = this.client;
    if (c === null) return;
    this.client = null;
    this.setReadPause(false);
    c.unlinked();
  }

  /** Backpressure follows the client: a server reads only while its linked client's outbox has room. */
  clientPressure(pressured: boolean): void {
    this.setReadPause(pressured && this.client !== null);
  }

  private setReadPause(on: boolean): void {
    if (on === this.readPaused || this.socket === null) return;
    this.readPaused = on;
    if (on) this.socket.pause();
    else this.socket.resume();
  }

  /** The client's requests wait until the shape check sent ahead of them is answered. */
  hold(): void {
    this.held = true;
    this.holdEnded = false;
  }

  /** Called (from the reply tracker) when the shape check is answered or skipped; acted on once the message is handled. */
  unhold(): void {
    if (this.held) this.holdEnded = true;
  }

  private endHold(): void {
    this.held = false;
    this.holdEnded = false;
    this.client?.resumeHeld();
  }

  private endHoldQuietly(): void {
    this.held = false;
    this.holdEnded = false;
  }

  /** Sends a CancelRequest for whatever this server runs; the server is not handed on until it has landed. */
  cancel(): void {
    this.cancelsInFlight++;
    sendCancel(this.target.host, this.target.port, this.pid, this.secret, () => {
      this.cancelsInFlight--;
      if (this.cancelsInFlight === 0 && this.state === "cleanup") this.decide();
    });
  }

  close(reason: CloseReason): void {
    if (this.state === "closed") return;
    this.closeReason = reason;
    const client = this.client;
    const wasConnecting = this.state === "connecting";
    // A client between requests just loses this server; one in a request, a transaction or a session loses its connection.
    const midRequest = !this.tracker.quiet || this.tracker.txStatus !== TX_IDLE || this.owner.mode === "session";
    this.client = null;
    this.endHoldQuietly();
    this.owner.changeState(this, "closed");
    this.tracker.abandon();
    if (this.outbox && this.socket) {
      if (!this.dead) this.outbox.send(TERMINATE);
      this.outbox.end();
      this.socket.resume();
    } else {
      this.socket?.end();
    }
    if (wasConnecting) this.owner.serverLoginFailed(this, describeClose(reason));
    else this.owner.serverClosed(this, reason);
    if (client !== null) {
      if (midRequest || this.dead) client.serverLost(describeClose(reason), this.fatalForwarded);
      else client.unlinked();
    }
  }

  onClose(why: string): void {
    this.outbox?.dispose();
    if (this.state === "closed") return;
    if (this.state === "connecting") {
      this.owner.changeState(this, "closed");
      this.owner.serverLoginFailed(this, this.lastError || why);
      return;
    }
    const reason = closeReason("server_closed", this.lastError ? `${why}: ${this.lastError}` : why);
    this.closeReason = reason;
    const client = this.client;
    this.client = null;
    this.endHoldQuietly();
    this.owner.changeState(this, "closed");
    this.tracker.abandon();
    this.owner.serverClosed(this, reason);
    if (client !== null) client.serverLost(describeClose(reason), this.fatalForwarded);
  }
}
