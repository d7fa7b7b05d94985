// Message tag bytes of the PostgreSQL v3 protocol, named as the protocol documentation names them.

// Frontend (client -> server)
export const F_QUERY = 0x51; // 'Q'
export const F_PARSE = 0x50; // 'P'
export const F_BIND = 0x42; // 'B'
export const F_DESCRIBE = 0x44; // 'D'
export const F_EXECUTE = 0x45; // 'E'
export const F_CLOSE = 0x43; // 'C'
export const F_FLUSH = 0x48; // 'H'
export const F_SYNC = 0x53; // 'S'
export const F_TERMINATE = 0x58; // 'X'
export const F_COPY_DATA = 0x64; // 'd'
export const F_COPY_DONE = 0x63; // 'c'
export const F_COPY_FAIL = 0x66; // 'f'
export const F_FUNCTION_CALL = 0x46; // 'F'
export const F_PASSWORD = 0x70; // 'p' (also SASLInitialResponse and SASLResponse)

// Backend (server -> client)
export const B_AUTHENTICATION = 0x52; // 'R'
export const B_PARAMETER_STATUS = 0x53; // 'S'
export const B_BACKEND_KEY_DATA = 0x4b; // 'K'
export const B_READY_FOR_QUERY = 0x5a; // 'Z'
export const B_ERROR_RESPONSE = 0x45; // 'E'
export const B_NOTICE_RESPONSE = 0x4e; // 'N'
export const B_NOTIFICATION_RESPONSE = 0x41; // 'A'
export const B_PARSE_COMPLETE = 0x31; // '1'
export const B_BIND_COMPLETE = 0x32; // '2'
export const B_CLOSE_COMPLETE = 0x33; // '3'
export const B_PARAMETER_DESCRIPTION = 0x74; // 't'
export const B_ROW_DESCRIPTION = 0x54; // 'T'
export const B_NO_DATA = 0x6e; // 'n'
export const B_DATA_ROW = 0x44; // 'D'
export const B_COMMAND_COMPLETE = 0x43; // 'C'
export const B_EMPTY_QUERY_RESPONSE = 0x49; // 'I'
export const B_PORTAL_SUSPENDED = 0x73; // 's'
export const B_COPY_IN_RESPONSE = 0x47; // 'G'
export const B_COPY_OUT_RESPONSE = 0x48; // 'H'
export const B_COPY_BOTH_RESPONSE = 0x57; // 'W'
export const B_COPY_DATA = 0x64; // 'd'
export const B_COPY_DONE = 0x63; // 'c'
export const B_NEGOTIATE_PROTOCOL_VERSION = 0x76; // 'v'
export const B_FUNCTION_CALL_RESPONSE = 0x56; // 'V'

// Authentication request codes inside 'R'
export const AUTH_OK = 0;
export const AUTH_CLEARTEXT = 3;
export const AUTH_MD5 = 5;
export const AUTH_SASL = 10;
export const AUTH_SASL_CONTINUE = 11;
export const AUTH_SASL_FINAL = 12;

// Untagged startup-phase request codes
export const PROTOCOL_3_0 = 196608; // 3 << 16
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

// Transaction status byte of ReadyForQuery
export type TxStatus = "I" | "T" | "E";
export const TX_IDLE = 0x49; // 'I'
export const TX_IN_BLOCK = 0x54; // 'T'
export const TX_FAILED = 0x45; // 'E'
