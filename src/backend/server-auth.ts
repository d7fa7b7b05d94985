// pgbun logging into PostgreSQL: answers the server's authentication requests with the configured password.

import { md5Response, isMd5Hash } from "../protocol/md5.ts";
import { passwordMessage, saslInitialResponse, saslResponse } from "../protocol/messages.ts";
import { ScramClientExchange, type ScramClientKeys } from "../protocol/scram.ts";
import { scramKeysFor } from "./scram-keys.ts";
import { isScramVerifier } from "../protocol/scram.ts";
import { AUTH_CLEARTEXT, AUTH_MD5, AUTH_OK, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL } from "../protocol/tags.ts";
import { readCString, decodeText } from "../protocol/messages.ts";
import { readInt32 } from "../protocol/writer.ts";

export class ServerAuthError extends Error {
  readonly code = "SERVER_AUTH";
}

export class ServerAuth {
  private scram: ScramClientExchange | null = null;
  /** On a TLS connection: gives the server certificate's tls-server-end-point data, for SCRAM-SHA-256-PLUS. */
  channelBinding: (() => Uint8Array | null) | null = null;

  constructor(
    private readonly user: string,
    private readonly password: string | undefined,
  ) {}

  /** Handles one AuthenticationXXX message; returns the reply to send, or null when none is due. */
  handle(buf: Uint8Array, start: number, end: number): Uint8Array | null {
    const code = readInt32(buf, start + 5);
    switch (code) {
      case AUTH_OK:
        return null;
      case AUTH_CLEARTEXT:
        return passwordMessage(this.plain("cleartext password"));
      case AUTH_MD5: {
        const pw = this.password;
        if (pw === undefined) throw this.missing("md5");
        if (isScramVerifier(pw)) throw new ServerAuthError(`the server asks for md5 but only a SCRAM verifier is configured for user "${this.user}": configure the plain password`);
        const salt = buf.slice(start + 9, start + 13);
        return passwordMessage(md5Response(this.user, pw, salt));
      }
      case AUTH_SASL: {
        const mechs: string[] = [];
        let at = start + 9;
        while (at < end && buf[at] !== 0) {
          const [m, next] = readCString(buf, at, end);
          mechs.push(m);
          at = next;
        }
        if (!mechs.includes("SCRAM-SHA-256")) {
          throw new ServerAuthError(`the server offers SASL mechanisms ${mechs.join(", ")}; pgbun supports SCRAM-SHA-256`);
        }
        this.scram = new ScramClientExchange(this.scramSecret());
        // Over TLS, bind to the server's certificate when it offers PLUS; "y" tells it we could have, had it offered.
        const plus = mechs.includes("SCRAM-SHA-256-PLUS");
        const data = plus && this.channelBinding !== null ? this.channelBinding() : null;
        if (data !== null) return saslInitialResponse("SCRAM-SHA-256-PLUS", this.scram.clientFirst(data));
        return saslInitialResponse("SCRAM-SHA-256", this.scram.clientFirst(this.channelBinding !== null && !plus ? "y" : "n"));
      }
      case AUTH_SASL_CONTINUE: {
        if (!this.scram) throw new ServerAuthError("SASLContinue before SASL");
        return saslResponse(this.scram.serverFirst(decodeText(buf, start + 9, end)));
      }
      case AUTH_SASL_FINAL: {
        if (!this.scram) throw new ServerAuthError("SASLFinal before SASL");
        this.scram.serverFinal(decodeText(buf, start + 9, end));
        return null;
      }
      default:
        throw new ServerAuthError(`the server asks for an unsupported authentication method (code ${code})`);
    }
  }

  /** The plain password, or for a stored SCRAM verifier the keys a client's proof gave (see scram-keys.ts). */
  private scramSecret(): string | ScramClientKeys {
    const pw = this.password;
    if (pw === undefined || !isScramVerifier(pw)) return this.plain("SCRAM-SHA-256");
    const keys = scramKeysFor(pw);
    if (keys === null) {
      throw new ServerAuthError(
        `the server asks for SCRAM-SHA-256 and pgbun holds only a SCRAM secret for user "${this.user}": it can log in with it once ` +
          "that user has logged in to pgbun with SCRAM (its proof gives the keys); to log in before that, configure the plain password",
      );
    }
    return keys;
  }

  private plain(method: string): string {
    const pw = this.password;
    if (pw === undefined) throw this.missing(method);
    if (isMd5Hash(pw) || isScramVerifier(pw)) {
      throw new ServerAuthError(
        `the server asks for ${method} but the password configured for user "${this.user}" is a hash: configure the plain password`,
      );
    }
    return pw;
  }

  private missing(method: string): ServerAuthError {
    return new ServerAuthError(
      `the server asks for a ${method} password for user "${this.user}" but none is configured: set password in [users.${this.user}] or the database entry`,
    );
  }
}
