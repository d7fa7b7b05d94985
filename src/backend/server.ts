// One connection to PostgreSQL: login, then framing its replies, tracking what it owes, and forwarding to the linked client.

import type { Socket, SocketHandler } from "bun";
import { clock } from "../clock.ts";
import { log } from "../log.ts";
import { ForwardRange } from "../net/forward-range.ts";
import { beginBatch, endBatch, Outbox } from "../net/outbox.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { Framer, type FrameSink } from "../protocol/framer.ts";
import { cancelRequest, parseErrorFields, parseParameterStatus, query, startupMessage, TERMINATE } from "../protocol/messages.ts";
import {
  B_AUTHENTICATION,
  B_BACKEND_KEY_DATA,
  B_ERROR_RESPONSE,
  B_PARAMETER_STATUS,
  B_READY_FOR_QUERY,
  B_CLOSE_COMPLETE,
  B_COMMAND_COMPLETE,
  B_PARSE_COMPLETE,
  F_QUERY,
} from "../protocol/tags.ts";
import { readInt32 } from "../protocol/writer.ts";
import { changeSql, paramChanges } from "./params.ts";
import { NO_REPLY, ParamSync, RESET } from "./internal-requests.ts";
import type { InternalRequest, LinkedClient, ServerOwner, ServerState, ServerTarget } from "./server-types.ts";
import { StatementCache } from "./statement-cache.ts";

export type { InternalRequest, LinkedClient, ServerOwner, ServerState, ServerTarget } from "./server-types.ts";
import {
  HAS_OP,
  INTERNAL,
  K_QUERY,
  KIND,
  R_POPPED,
  R_READY,
  R_REPLACE,
  R_SWALLOW,
  REPLACE_ERROR,
  ReplyTracker,
} from "./reply-tracker.ts";
import { ServerAuth, ServerAuthError } from "./server-auth.ts";

let nextServerId = 1;
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

export class ServerConn implements FrameSink {
  readonly id = nextServerId++;
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
  /** Coarse time of the last state change; timeouts measure from it. */
  since = clock.now;
  /** Linked to a client at least once: later links count as reuse. */
  everLinked = false;
  cancelsInFlight = 0;
  /** Close instead of returning to the pool (server_lifetime passed, RECONNECT, a reload). */
  retire = false;
  closeReason = "";
  private auth: ServerAuth | null;
  private internal: InternalRequest[] = [];
  /** Replies gathered for the client, sent as one slice. */
  private readonly fwd = new ForwardRange();
  private lastError = "";
  /** Named statements prepared here, and the replies pgbun makes up for them. */
  readonly statements: StatementCache;
  /** When the client's current request began (performance.now()), for query_time. */
  requestStartedAt = 0;

  constructor(
    readonly owner: ServerOwner,
    readonly target: ServerTarget,
  ) {
    this.framer = new Framer(owner.maxPacketSize);
    this.auth = new ServerAuth(target.user, target.password);
    this.statements = new StatementCache(this);
    this.tracker.dropHook = (entry) => this.statements.skipped(entry);
  }

  connect(): void {
    Bun.connect<ServerConn>({ hostname: this.target.host, port: this.target.port, socket: handlers, data: this }).catch(
      (err: Error) => this.onConnectError(err.message),
    );
  }

  opened(socket: Socket<ServerConn>): void {
    if (this.state === "closed") {
      socket.end();
      return;
    }
    this.socket = socket;
    this.outbox = new Outbox(socket as Socket<unknown>, (on) => this.onPressure(on));
    this.outbox.send(startupMessage({ user: this.target.user, database: this.target.database }));
  }

  /** Our queue towards the server is full: stop reading from the client that fills it. */
  private onPressure(on: boolean): void {
    this.client?.pauseReading(on);
  }

  onConnectError(message: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.owner.serverLoginFailed(this, `cannot connect to ${this.target.host}:${this.target.port}: ${message}`);
  }

  onData(chunk: Uint8Array): void {
    try {
      this.framer.feed(chunk, this);
    } catch (err) {
      this.flushForward();
      this.close(err instanceof ProtocolError ? `protocol error from server: ${err.message}` : `internal error: ${(err as Error).message}`);
      if (!(err instanceof ProtocolError) && !(err instanceof ServerAuthError)) log.error("server", "unexpected error", { server: this.id, stack: (err as Error).stack });
      return;
    }
    this.flushForward();
  }

  frame(tag: number, buf: Uint8Array, start: number, end: number): void {
    if (this.state === "connecting") {
      this.loginFrame(tag, buf, start, end);
      return;
    }
    const head = this.tracker.headKind;
    let replacement: Uint8Array | undefined;
    switch (tag) {
      case B_PARAMETER_STATUS: {
        const [name, value] = parseParameterStatus(buf, start, end);
        this.reported.set(name, value);
        const c = this.client;
        this.syncedKey = null;
        if (c !== null && c.wanted.has(name) && c.wanted.get(name) !== value) c.setWanted(name, value);
        break;
      }
      case B_ERROR_RESPONSE: {
        const f = parseErrorFields(buf, start, end);
        this.lastError = f.get("M") ?? "";
        if (head & REPLACE_ERROR) replacement = this.statements.replacement();
        this.statements.onError(f.get("C") ?? "", this.lastError);
        break;
      }
      case B_PARSE_COMPLETE:
      case B_CLOSE_COMPLETE:
        if (head & HAS_OP) this.statements.confirmed();
        break;
      case B_COMMAND_COMPLETE:
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
    const status = tag === B_READY_FOR_QUERY ? buf[start + 5]! : 0;
    const flags = this.tracker.received(tag, status);
    if (flags & R_REPLACE && replacement !== undefined) {
      this.flushForward();
      this.client?.outbox.send(replacement);
      return;
    }
    if (flags & R_SWALLOW && (head & KIND) !== K_QUERY) {
      // pgbun's own Parse or Close: its completion is swallowed, an error is the client's business.
      if (tag !== B_ERROR_RESPONSE) {
        if (flags & R_POPPED) this.statements.emitSynth();
        return;
      }
    } else if (flags & R_SWALLOW) {
      this.flushForward();
      const req = this.internal[0];
      req?.onReply(tag, buf, start, end);
      // Internal requests are whole Query messages: each ends at its ReadyForQuery.
      if (flags & R_READY && req !== undefined) {
        this.internal.shift();
        req.done(this);
      }
      if (flags & R_POPPED) this.statements.emitSynth();
      if (flags & R_READY) this.afterReady();
      return;
    }
    const client = this.client;
    if (client === null) {
      if (tag === B_ERROR_RESPONSE) log.warn("server", "error from unlinked server", { server: this.id, error: this.lastError });
      if (flags & R_READY) this.afterReady();
      return;
    }
    if (flags & R_READY) {
      this.since = clock.now;
      this.owner.stats.query_count++;
      if (this.tracker.owed === 0 && this.requestStartedAt > 0) {
        this.owner.stats.query_time_us += Math.round((performance.now() - this.requestStartedAt) * 1000);
        this.requestStartedAt = 0;
      }
      if (status === 0x49) this.owner.stats.xact_count++;
      if (this.owner.mode === "statement" && status !== 0x49 && this.tracker.quiet) {
        // Hold back this ReadyForQuery: the client gets an error and an idle status instead.
        this.flushForward();
        this.owner.transactionRefused(this, client);
        return;
      }
    }
    const before = this.fwd.add(buf, start, end);
    if (before !== null) this.deliver(before);
    if (flags & R_POPPED) this.statements.emitSynth();
    if (flags & R_READY) this.afterReady();
  }

  /** The linked client sent a request while nothing was owed. */
  requestStarted(): void {
    this.since = clock.now;
    this.requestStartedAt = performance.now();
  }

  /** After a ReadyForQuery: hand the server back if nothing ties it to its client any more. */
  private afterReady(): void {
    if (this.internal.length > 0 || !this.tracker.quiet) return;
    if (this.state === "cleanup") {
      this.flushForward();
      this.owner.serverReleasable(this);
      return;
    }
    if (this.state !== "active" || this.owner.mode === "session") return;
    if (this.tracker.txStatus !== 0x49) return;
    this.flushForward();
    this.owner.serverReleasable(this);
  }

  /** Sends the replies gathered so far to the client. */
  flushForward(): void {
    const bytes = this.fwd.take();
    if (bytes !== null) this.deliver(bytes);
  }

  private deliver(bytes: Uint8Array): void {
    const client = this.client;
    if (client === null) return;
    this.owner.stats.bytes_sent += bytes.length;
    client.outbox.send(bytes);
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
        this.failLogin(`${f.get("M") ?? "login failed"} (SQLSTATE ${f.get("C") ?? "?"})`);
        return;
      }
      case B_READY_FOR_QUERY:
        this.auth = null;
        this.state = "idle";
        this.since = clock.now;
        this.owner.serverReady(this);
        return;
      default:
        return; // NoticeResponse, NegotiateProtocolVersion: nothing to decide
    }
  }

  private failLogin(reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.closeReason = reason;
    this.socket?.end();
    this.owner.serverLoginFailed(this, reason);
  }

  /** Links a client: first brings the server's parameters in line with the client's. */
  link(client: LinkedClient): void {
    this.client = client;
    this.state = "active";
    this.since = clock.now;
    // Most clients of a pool want the same settings: skip the comparison when this server already matches them.
    const key = client.paramsKey();
    if (key === this.syncedKey) return;
    const changes = paramChanges(client.wanted, this.reported, this.setByUs);
    for (const c of changes) this.sendInternal(query(changeSql(c)), new ParamSync(c, client));
    this.syncedKey = changes.length === 0 ? key : null;
  }

  /** Sends a Query pgbun makes itself; its replies are swallowed and handed to `req`. */
  sendInternal(msg: Uint8Array, req: InternalRequest): void {
    this.internal.push(req);
    this.tracker.sent(F_QUERY, INTERNAL);
    this.outbox!.send(msg);
  }

  /** Takes the server away from its client. */
  unlink(): void {
    this.flushForward();
    const c = this.client;
    this.client = null;
    if (c !== null) c.unlinked();
  }

  /**
   * The linked client left. A server in the middle of anything is closed; one idle in a transaction is rolled back;
   * in session mode (or with server_reset_query_always) the reset query runs before anyone else gets it.
   */
  clientLeft(resetQuery: string): void {
    this.flushForward();
    this.client = null;
    if (this.state !== "active") return;
    if (!this.tracker.quiet || this.internal.length > 0) {
      this.close("client disconnected with a request in flight");
      return;
    }
    this.state = "cleanup";
    this.since = clock.now;
    if (this.tracker.txStatus !== 0x49) this.sendInternal(query("ROLLBACK"), NO_REPLY);
    if (resetQuery) this.sendInternal(query(resetQuery), RESET);
    if (this.internal.length === 0) this.owner.serverReleasable(this);
  }

  /** Statement mode refused a transaction block: roll it back, then return the server. */
  rollbackAndRelease(): void {
    this.client = null;
    this.state = "cleanup";
    this.sendInternal(query("ROLLBACK"), NO_REPLY);
  }

  /** Sends a CancelRequest for whatever this server runs, on a new connection. */
  cancel(): void {
    this.cancelsInFlight++;
    const done = () => {
      this.cancelsInFlight--;
      // A server held back after its client's transaction until the cancel landed can now serve others.
      if (this.cancelsInFlight === 0 && this.state === "cleanup" && this.internal.length === 0 && this.tracker.quiet) {
        this.owner.serverReleasable(this);
      }
    };
    let finished = false;
    const finish = () => {
      if (!finished) {
        finished = true;
        done();
      }
    };
    Bun.connect({
      hostname: this.target.host,
      port: this.target.port,
      socket: {
        open: (s) => {
          s.write(cancelRequest(this.pid, this.secret));
          s.flush();
        },
        data: () => {},
        close: finish,
        connectError: finish,
        error: finish,
      },
    }).catch(finish);
  }

  close(reason: string): void {
    if (this.state === "closed") return;
    this.closeReason = reason;
    this.flushForward();
    const wasLinked = this.client;
    const wasConnecting = this.state === "connecting";
    this.state = "closed";
    this.client = null;
    if (this.outbox && this.socket) {
      this.outbox.send(TERMINATE);
      this.outbox.end();
    } else {
      this.socket?.end();
    }
    if (wasConnecting) this.owner.serverLoginFailed(this, reason);
    else this.owner.serverClosed(this, reason);
    if (wasLinked) wasLinked.serverLost(reason);
  }

  onClose(reason: string): void {
    this.outbox?.dispose();
    if (this.state === "closed") return;
    if (this.state === "connecting") {
      this.state = "closed";
      this.owner.serverLoginFailed(this, this.lastError || reason);
      return;
    }
    const why = this.lastError ? `${reason}: ${this.lastError}` : reason;
    this.closeReason = why;
    const wasLinked = this.client;
    this.state = "closed";
    this.client = null;
    this.owner.serverClosed(this, why);
    if (wasLinked) wasLinked.serverLost(why);
  }
}

