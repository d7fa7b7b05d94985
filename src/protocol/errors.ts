// Errors raised while decoding bytes from a peer; the connection edge turns them into an ErrorResponse.

export class ProtocolError extends Error {
  readonly code = "PROTOCOL_ERROR";
  constructor(
    message: string,
    readonly sqlstate = "08P01",
  ) {
    super(message);
  }
}
