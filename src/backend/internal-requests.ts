// Queries pgbun sends a server on its own (SET for a client's settings, ROLLBACK, the reset query): attached to their
// entry in the reply tracker, they see the replies (which the client never does) and are told when they are answered.

import { log } from "../log.ts";
import { parseErrorFields } from "../protocol/messages.ts";
import { B_ERROR_RESPONSE } from "../protocol/tags.ts";
import type { ParamChange } from "./params.ts";
import type { Attachment } from "./reply-tracker.ts";
import type { ServerConn } from "./server.ts";
import type { LinkedClient } from "./server-types.ts";

export interface InternalQuery extends Attachment {
  onReply(tag: number, buf: Uint8Array, start: number, end: number): void;
}

/** Replies to a SET/RESET pgbun sent so the linked client sees its own settings. */
export class ParamSync implements InternalQuery {
  private failed = "";
  constructor(
    private readonly server: ServerConn,
    private readonly change: ParamChange,
    private readonly client: LinkedClient,
  ) {}
  onReply(tag: number, buf: Uint8Array, start: number, end: number): void {
    if (tag === B_ERROR_RESPONSE) this.failed = parseErrorFields(buf, start, end).get("M") ?? "error";
  }
  answered(): void {
    const server = this.server;
    const { key, value } = this.change;
    if (this.failed) {
      log.warn("server", "could not apply a client's parameter", { server: server.id, client: this.client.id, key, error: this.failed });
    } else if (value === null) {
      server.setByUs.delete(key);
    } else if (!server.reported.has(key)) {
      server.setByUs.set(key, value);
    }
    // Settle the client on what the server now holds, so a value PostgreSQL normalises is not SET again each time.
    const now = server.reported.get(key) ?? server.setByUs.get(key);
    if (this.client.wanted.get(key) !== now) this.client.setWanted(key, now);
    server.syncedKey = null;
  }
}

/** A query whose replies do not matter (ROLLBACK after a client left). */
export const NO_REPLY: InternalQuery = { onReply() {} };

/** server_reset_query (DISCARD ALL) also undoes every SET pgbun made. */
export class ResetDone implements InternalQuery {
  constructor(private readonly server: ServerConn) {}
  onReply(): void {}
  answered(): void {
    this.server.setByUs.clear();
    this.server.syncedKey = null;
  }
}
