// Encodes a small result set (RowDescription, DataRows, CommandComplete) for the admin console, as PostgreSQL would.

import { B_COMMAND_COMPLETE, B_DATA_ROW, B_ROW_DESCRIPTION } from "../protocol/tags.ts";
import { Writer } from "../protocol/writer.ts";

export type Cell = string | number | bigint | boolean | null;
export type ColumnType = "text" | "int8" | "int4" | "numeric";

const OID: Record<ColumnType, number> = { text: 25, int8: 20, int4: 23, numeric: 1700 };

export interface Column {
  name: string;
  type: ColumnType;
}

export const text = (name: string): Column => ({ name, type: "text" });
export const int8 = (name: string): Column => ({ name, type: "int8" });

export function resultSet(columns: Column[], rows: Cell[][], command = `SHOW`): Uint8Array {
  const w = new Writer(4096);
  w.start(B_ROW_DESCRIPTION).int16(columns.length);
  for (const c of columns) {
    const size = c.type === "int8" ? 8 : c.type === "int4" ? 4 : -1;
    w.cstr(c.name).int32(0).int16(0).int32(OID[c.type]).int16(size).int32(-1).int16(0);
  }
  w.end();
  const enc = new TextEncoder();
  for (const row of rows) {
    w.start(B_DATA_ROW).int16(columns.length);
    for (const cell of row) {
      if (cell === null) {
        w.int32(-1);
        continue;
      }
      const b = enc.encode(typeof cell === "boolean" ? (cell ? "1" : "0") : String(cell));
      w.int32(b.length).bytes(b);
    }
    w.end();
  }
  w.start(B_COMMAND_COMPLETE).cstr(command === "SHOW" ? "SHOW" : command).end();
  return w.take();
}

export function commandComplete(tag: string): Uint8Array {
  return new Writer(64).start(B_COMMAND_COMPLETE).cstr(tag).end().take();
}
